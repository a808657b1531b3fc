/**
 * One password check against the KDC, as the original's auth_krb5 does it, in its own
 * krb5_context:
 *   krb5_parse_name → krb5_get_init_creds_password → krb5_kt_resolve (krb5_keytab) →
 *   krb5_sname_to_principal(krb5_servername, krb5_verify_principal) →
 *   krb5_verify_init_creds against the keytab with ap_req_nofail,
 * so a KDC that was not issued this host's key (a rogue one) cannot make a password pass.
 *
 * The calls that wait on the network run on libuv's pool (koffi `.async`). The caller may
 * stop waiting (its deadline) and answer the client at once: `abandon()` then makes the run
 * stop at its next step, and whatever it holds (context, principals, credentials, the copy
 * of the password) is freed when the call in progress returns, never earlier, so a late
 * return cannot touch freed memory and nothing is shared with the next request.
 */
import {
  CREDS_SIZE,
  VERIFY_OPT_SIZE,
  type Krb5Context,
  type Krb5InitCredsOpt,
  type Krb5Keytab,
  type Krb5Principal,
  type LibKrb5,
} from '../../native/libkrb5.js';
import type { MechanismLog } from '../types.js';
import type { Krb5Settings } from './settings.js';

/** Where a run is: it decides the reply when the caller's deadline passes first. */
export type Stage = 'start' | 'initial-credentials' | 'verification' | 'done';

export const REPLY_OK = 'OK';
export const REPLY_INTERNAL_ERROR = 'NO saslauthd internal error';
export const REPLY_PRINCIPAL_ERROR = 'NO saslauthd principal name error';
export const REPLY_INIT_CREDS_FAILED = 'NO krb5_get_init_creds_password failed';
export const REPLY_VERIFY_FAILED = 'NO krb5_verify_init_creds failed';

/** The reply for a run that did not finish in time, by the step it was waiting in. */
export function timeoutReply(stage: Stage): string {
  return stage === 'verification' ? REPLY_VERIFY_FAILED : REPLY_INIT_CREDS_FAILED;
}

function nulTerminated(bytes: Buffer): Buffer {
  const copy = Buffer.alloc(bytes.length + 1);
  bytes.copy(copy);
  return copy;
}

export class Verification {
  private stageNow: Stage = 'start';
  private abandoned = false;
  private context: Krb5Context | null = null;
  private client: Krb5Principal | null = null;
  private server: Krb5Principal | null = null;
  private keytab: Krb5Keytab | null = null;
  private options: Krb5InitCredsOpt | null = null;
  /** krb5_creds filled by libkrb5: its contents are freed with krb5_free_cred_contents. */
  private creds: Buffer | null = null;

  constructor(
    private readonly krb5: LibKrb5,
    private readonly settings: Krb5Settings,
    private readonly log: MechanismLog,
  ) {}

  get stage(): Stage {
    return this.stageNow;
  }

  /** The caller answered without us: stop at the next step (resources are freed by run()). */
  abandon(): void {
    this.abandoned = true;
  }

  /** Runs the check for `principalName` (NUL-free bytes); resolves with the reply. Never rejects. */
  async run(principalName: Buffer, password: Buffer): Promise<string> {
    // Our own copy: the worker wipes the request's buffer as soon as we answer, and an
    // abandoned call may still be reading this one.
    const passwordCopy = nulTerminated(password);
    try {
      return await this.steps(principalName, passwordCopy);
    } catch (error) {
      this.log.error(`auth_krb5: ${error instanceof Error ? error.message : String(error)}`);
      return REPLY_INTERNAL_ERROR;
    } finally {
      passwordCopy.fill(0);
      this.stageNow = 'done';
      this.release();
    }
  }

  private async steps(principalName: Buffer, password: Buffer): Promise<string> {
    const krb5 = this.krb5;
    const contextOut: [Krb5Context | null] = [null];
    if (krb5.initContext(contextOut) !== 0 || contextOut[0] === null) {
      this.log.error('auth_krb5: krb5_init_context');
      return REPLY_INTERNAL_ERROR;
    }
    const context = (this.context = contextOut[0]);

    const clientOut: [Krb5Principal | null] = [null];
    let rc = krb5.parseName(context, nulTerminated(principalName), clientOut);
    if (rc !== 0 || clientOut[0] === null) return this.fail(rc, 'krb5_parse_name', REPLY_INTERNAL_ERROR);
    this.client = clientOut[0];

    const optionsOut: [Krb5InitCredsOpt | null] = [null];
    rc = krb5.initCredsOptAlloc(context, optionsOut);
    if (rc !== 0 || optionsOut[0] === null) return this.fail(rc, 'krb5_get_init_creds_opt_alloc', REPLY_INTERNAL_ERROR);
    this.options = optionsOut[0];

    this.stageNow = 'initial-credentials';
    const creds = Buffer.alloc(CREDS_SIZE);
    rc = await new Promise<number>((resolve, reject) =>
      krb5.getInitCredsPasswordAsync(context, creds, this.client!, password, this.options!, (error, code) =>
        error ? reject(error) : resolve(code),
      ),
    );
    password.fill(0);
    krb5.initCredsOptFree(context, this.options);
    this.options = null;
    if (rc !== 0) return this.fail(rc, 'krb5_get_init_creds_password', REPLY_INIT_CREDS_FAILED);
    this.creds = creds;
    if (this.abandoned) return REPLY_INIT_CREDS_FAILED;

    this.stageNow = 'verification';
    if (this.settings.keytab !== undefined) {
      const keytabOut: [Krb5Keytab | null] = [null];
      rc = krb5.keytabResolve(context, nulTerminated(Buffer.from(this.settings.keytab, 'utf8')), keytabOut);
      if (rc !== 0 || keytabOut[0] === null) return this.fail(rc, 'krb5_kt_resolve', REPLY_INTERNAL_ERROR);
      this.keytab = keytabOut[0];
    }

    const serverOut: [Krb5Principal | null] = [null];
    const host = this.settings.serverName === undefined ? null : nulTerminated(Buffer.from(this.settings.serverName, 'utf8'));
    const service = nulTerminated(Buffer.from(this.settings.verifyPrincipal, 'utf8'));
    rc = await new Promise<number>((resolve, reject) =>
      krb5.snameToPrincipalAsync(context, host, service, serverOut, (error, code) => (error ? reject(error) : resolve(code))),
    );
    if (serverOut[0] !== null) this.server = serverOut[0];
    if (rc !== 0 || this.server === null) return this.fail(rc, 'krb5_sname_to_principal', REPLY_INTERNAL_ERROR);
    if (this.abandoned) return REPLY_VERIFY_FAILED;

    const verifyOptions = Buffer.alloc(VERIFY_OPT_SIZE);
    krb5.initVerifyOptNoFail(verifyOptions);
    rc = await new Promise<number>((resolve, reject) =>
      krb5.verifyInitCredsAsync(context, creds, this.server!, this.keytab, verifyOptions, (error, code) =>
        error ? reject(error) : resolve(code),
      ),
    );
    if (rc !== 0) return this.fail(rc, 'krb5_verify_init_creds', REPLY_VERIFY_FAILED);
    return REPLY_OK;
  }

  /** Logs libkrb5's reason (as the original's k5support_log_err) and gives `reply`. */
  private fail(code: number, step: string, reply: string): string {
    const reason = this.context === null ? `error ${code}` : this.krb5.errorMessage(this.context, code);
    this.log.error(`auth_krb5: ${step}: ${reason} (${code})${this.abandoned ? ' (after the client was answered)' : ''}`);
    return reply;
  }

  /** Frees everything this run holds, context last. Runs once, after the last native call returned. */
  private release(): void {
    const context = this.context;
    if (context === null) return;
    const krb5 = this.krb5;
    if (this.creds !== null) krb5.freeCredContents(context, this.creds);
    if (this.options !== null) krb5.initCredsOptFree(context, this.options);
    if (this.client !== null) krb5.freePrincipal(context, this.client);
    if (this.server !== null) krb5.freePrincipal(context, this.server);
    if (this.keytab !== null) krb5.keytabClose(context, this.keytab);
    krb5.freeContext(context);
    this.creds = this.options = this.client = this.server = this.keytab = this.context = null;
  }
}
