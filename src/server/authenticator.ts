/**
 * The C daemon's do_auth(), in the primary: from a decoded request to the reply text.
 * Applies `-r`, consults the cache, hands the job to the worker pool (the same credentials
 * refused a moment ago go to the back: repeat-failures.ts), checks what the mechanism answered,
 * applies a requested failure delay to this reply only, and writes the one log line per
 * outcome that admins and fail2ban read:
 *   auth success: [user=…] [service=…] [realm=…] [mech=…]            (verbose only)
 *   auth failure: [user=…] [service=…] [realm=…] [mech=…] [reason=…]  (always)
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { REPLY, cString, type WireRequest } from '../protocol/codec.js';
import { printable, type Logger } from '../log/logger.js';
import type { JobLane, JobOutcome, PoolJob } from '../workers/pool.js';
import { RepeatFailures } from './repeat-failures.js';
import type { CacheKeyParts, CredentialCache } from './credential-cache.js';

export interface AuthenticatorOptions {
  /** `-a`, as given (log lines show it). */
  readonly mechanism: string;
  /** `-r`: append `@realm` to the login when the realm is not empty. */
  readonly appendRealm: boolean;
  readonly log: Logger;
  readonly runJob: (job: PoolJob, lane: JobLane) => Promise<JobOutcome>;
  /** `-c`: the credential cache, consulted before the mechanism. */
  readonly cache?: CredentialCache | undefined;
}

export class Authenticator {
  private counters = { ok: 0, no: 0 };
  private readonly repeatFailures = new RepeatFailures();
  /** Aborted at shutdown: the clients waiting out a failure delay get their NO at once. */
  private readonly delays = new AbortController();

  constructor(private readonly options: AuthenticatorOptions) {}

  /** Shutdown: answer the clients that wait out a failure delay now, rather than not at all. */
  cutFailureDelays(): void {
    this.delays.abort();
  }

  get stats(): { ok: number; no: number } {
    return { ...this.counters };
  }

  /**
   * Answers one complete request. Fields are taken as C strings (cut at the first NUL), as
   * the original's mechanisms see them. Never throws; the password buffer is zeroed.
   */
  async authenticate(request: WireRequest): Promise<string> {
    const password = cString(request.password);
    try {
      const login = cString(request.login);
      if (login.length === 0) return this.refuse(REPLY.nullLogin, 'NULL login received');
      if (password.length === 0) return this.refuse(REPLY.nullPassword, 'NULL password received');
      const service = cString(request.service);
      const realm = cString(request.realm);
      const user =
        this.options.appendRealm && realm.length > 0 ? Buffer.concat([login, Buffer.from('@'), realm]) : login;
      const remoteHost = clientHost(request.clientAddress);
      // Rendered only for a line that is written: most requests log nothing without -d/-V.
      const fields = (): string => `[user=${printable(user)}] [service=${printable(service)}] [realm=${printable(realm)}]`;
      const remote = (): string => (remoteHost.length > 0 ? ` [remote=${printable(remoteHost)}]` : '');
      const cache = this.options.cache;
      const key = { user, realm, service, remote: remoteHost };
      if (cache && this.answeredFromCache(cache, key, password, () => `${fields()}${remote()}`)) return 'OK';

      const repeat = this.repeatFailures.isRepeat(key, password);
      const outcome = await this.options.runJob(
        { login: user, password, service, realm, remoteHost },
        repeat ? 'repeat' : 'normal',
      );
      let reply = outcome.reply;
      if (!reply.startsWith('OK') && !reply.startsWith('NO')) {
        this.options.log.error(`mechanism returned unknown response: ${printable(Buffer.from(reply, 'latin1'))}`);
        reply = REPLY.internalFailure;
      }
      if (reply.startsWith('OK')) {
        cache?.remember(key, password);
        if (repeat) this.repeatFailures.recordSuccess(key, password);
        this.counters.ok++;
        if (this.options.log.verbose) this.options.log.debug(`auth success: ${fields()}${remote()} [mech=${this.options.mechanism}]`);
      } else if (!outcome.fromMechanism) {
        // Busy, timed out, worker died, shutting down: nothing was learnt about these
        // credentials, so neither the cache nor the repeat list changes, and the line is not
        // an `auth failure:` (fail2ban must not ban a user for the daemon's trouble).
        this.counters.no++;
        this.options.log.error(`auth not checked: ${fields()}${remote()} [mech=${this.options.mechanism}] [reason=${reply.slice(3)}]`);
      } else {
        cache?.forget(key); // a changed password stops the old one now, not at expiry
        this.repeatFailures.recordFailure(key, password);
        this.counters.no++;
        const reason = reply.length > 3 ? reply.slice(3) : 'Unknown';
        this.options.log.info(`auth failure: ${fields()}${remote()} [mech=${this.options.mechanism}] [reason=${reason}]`);
        // PAM asked for a delay after this failure; it is served here, to this client
        // only, while the worker is already free for the next job.
        if (outcome.failDelayMs > 0) await sleep(outcome.failDelayMs, undefined, { signal: this.delays.signal }).catch(() => {});
      }
      if (this.options.log.verbose && reply.length === 2) this.options.log.debug(`response: ${reply}`);
      return reply;
    } finally {
      request.password.fill(0);
    }
  }

  /** A cache hit answers `OK` without the mechanism (the original's semantics, and log lines). */
  private answeredFromCache(cache: CredentialCache, key: CacheKeyParts, password: Buffer, fields: () => string): boolean {
    const found = cache.lookup(key, password);
    const verbose = this.options.log.verbose;
    const where = (): string => `[login=${printable(key.user)}] [service=${printable(key.service)}] [realm=${printable(key.realm)}]`;
    if (found === 'hit') {
      this.counters.ok++;
      if (verbose) {
        this.options.log.debug(`${where()}: found with valid passwd`);
        this.options.log.debug(`auth success (cached): ${fields()}`);
        this.options.log.debug('response: OK');
      }
      return true;
    }
    if (verbose && found !== 'uncacheable') {
      this.options.log.debug(`${where()}: ${found === 'mismatch' ? 'found with invalid passwd' : 'not found'}, update pending`);
    }
    return false;
  }

  private refuse(reply: string, logText: string): string {
    this.counters.no++;
    this.options.log.error(logText);
    return reply;
  }
}

/** The host part of a 5th field `ip;port` (what PAM_RHOST gets), or empty. */
function clientHost(address: Buffer | undefined): Buffer {
  if (!address) return Buffer.alloc(0);
  const field = cString(address);
  const semicolon = field.indexOf(0x3b);
  return semicolon === -1 ? field : field.subarray(0, semicolon);
}
