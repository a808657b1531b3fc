/**
 * The `ldap` mechanism (saslauthd's auth_ldap + lak.c) over ldapts. Asynchronous: it runs on
 * the worker's event loop, one request at a time.
 *
 * Replies are only `OK` and `NO`, as the original's; the reason goes to the debug log as the
 * original's `Authentication failed for LOGIN[/REALM]: TEXT (CODE)`. A server-down failure is
 * retried once on fresh connections when `ldap_restart` is on (`Retrying authentication`).
 *
 * The config file is read and checked in the primary at start (`check`): an invalid file or
 * a key we cannot honour stops the daemon with the reason, where the original started and
 * answered every request `NO`. Each request has its own deadline below `--job-timeout`, so a
 * stalled server gets `NO` from here and the worker stays.
 */
import type { AuthRequest, AuthResult, Mechanism, MechanismFactory, MechanismLog, MechanismOptions } from '../types.js';
import { configPathFor, readConfigFile } from '../config-file.js';
import { loadLibCrypt } from '../../native/libcrypt.js';
import { ldapConfigFrom, unknownLdapKeys, type LdapConfig } from './config.js';
import { Authenticator, LakResult, outcomeOfError, type LakOutcome } from './authenticator.js';
import { Deadline } from './connection.js';
import { FilterParser } from 'ldapts';
import { escapeFilterValue, expand } from './tokens.js';

/** Used when the caller does not say (unit tests); the daemon's --job-timeout default. */
const DEFAULT_JOB_TIMEOUT_MS = 30_000;
/** Time kept back from --job-timeout for the reply to reach the primary before it gives up on the worker. */
const JOB_TIMEOUT_MARGIN_MS = 1_000;
/** Below this a request cannot do even one round trip. */
const MIN_REQUEST_BUDGET_MS = 500;

/** The per-request deadline: below --job-timeout by a margin. */
export function requestBudgetMs(jobTimeoutMs: number | undefined): number {
  return (jobTimeoutMs ?? DEFAULT_JOB_TIMEOUT_MS) - JOB_TIMEOUT_MARGIN_MS;
}

/** Reads and checks the config file; throws with the file, key and reason. */
export function loadLdapConfig(mechOption: string | undefined): LdapConfig {
  const path = configPathFor(mechOption);
  const entries = readConfigFile(path);
  try {
    return ldapConfigFrom(entries);
  } catch (error) {
    throw new Error(`${path}: ${(error as Error).message}`);
  }
}

/** A login or realm for a log line: printable ASCII kept, anything else as \xNN. */
function printable(bytes: Buffer): string {
  let out = '';
  for (const byte of bytes) out += byte >= 0x20 && byte < 0x7f && byte !== 0x5c ? String.fromCharCode(byte) : `\\x${byte.toString(16).padStart(2, '0')}`;
  return out;
}

/** Values the filter templates are tried with at start (each token gives a value). */
const SAMPLE_TOKENS = {
  login: Buffer.from('user@example.org'),
  service: Buffer.from('imap'),
  realm: Buffer.from('example.org'),
  userDn: 'uid=user,dc=example,dc=org',
};

/** A filter template that cannot become a valid filter stops the daemon at start, naming its key. */
function checkFilterTemplates(config: LdapConfig, path: string): void {
  const templates: [string, string][] = [['ldap_group_filter', config.groupFilter]];
  // With fastbind (and SASL) ldap_filter is a DN, not a filter.
  if (config.authMethod !== 'fastbind') templates.push(['ldap_filter', config.filter]);
  for (const [key, template] of templates) {
    if (template === '') continue;
    const filter = expand(template, SAMPLE_TOKENS, escapeFilterValue)!;
    try {
      // ldapts closes what is left open; libldap refuses it, so we refuse it here, at start.
      if (filter.split('(').length !== filter.split(')').length) throw new Error('unbalanced parentheses');
      FilterParser.parseString(filter);
    } catch (error) {
      throw new Error(`${path}: ${key}: not a valid LDAP filter (${(error as Error).message})`);
    }
  }
}

export class LdapMechanism implements Mechanism {
  private readonly authenticator: Authenticator;
  private readonly budgetMs: number;

  constructor(
    private readonly config: LdapConfig,
    private readonly log: MechanismLog,
    jobTimeoutMs: number | undefined,
  ) {
    this.budgetMs = requestBudgetMs(jobTimeoutMs);
    this.authenticator = new Authenticator(config, (message) => log.debug(message));
  }

  async authenticate(request: AuthRequest): Promise<AuthResult> {
    const deadline = Deadline.after(this.budgetMs);
    const realm = request.realm.length > 0 ? request.realm : Buffer.from(this.config.defaultRealm, 'utf8');
    const credentials = { tokens: { login: request.login, service: request.service, realm }, password: request.password };
    let outcome = await this.attempt(credentials, deadline);
    if (outcome === LakResult.retry && this.config.restart && deadline.remainingMs() > 0) {
      this.log.info('Retrying authentication');
      this.authenticator.close();
      outcome = await this.attempt(credentials, deadline);
    }
    if (outcome === LakResult.ok) return { reply: 'OK' };
    const shownRealm = request.realm.length > 0 ? `/${printable(request.realm)}` : '';
    this.log.debug(`Authentication failed for ${printable(request.login)}${shownRealm}: ${outcome.text} (${outcome.code})`);
    // Server down or stalled (after the retry): nothing was learnt about the password.
    return outcome === LakResult.retry ? { reply: 'NO', unavailable: true } : { reply: 'NO' };
  }

  private async attempt(credentials: Parameters<Authenticator['authenticate']>[0], deadline: Deadline): Promise<LakOutcome> {
    if (credentials.tokens.login.length === 0) return LakResult.userNotFound;
    try {
      return await this.authenticator.authenticate(credentials, deadline);
    } catch (error) {
      const outcome = outcomeOfError(error);
      // Messages from ldapts and the socket layer carry no secret (ldapts redacts bind passwords).
      this.log.debug(`ldap: ${outcome === LakResult.retry ? 'server down' : 'operation failed'}: ${(error as Error).message.split('\n')[0]}`);
      if (outcome !== LakResult.retry) this.authenticator.close();
      return outcome;
    }
  }

  close(): void {
    this.authenticator.close();
  }
}

export const ldapMechanism: MechanismFactory = {
  name: 'ldap',
  check(options: MechanismOptions): void {
    if (requestBudgetMs(options.jobTimeoutMs) < MIN_REQUEST_BUDGET_MS) {
      throw new Error(`--job-timeout must be at least ${MIN_REQUEST_BUDGET_MS + JOB_TIMEOUT_MARGIN_MS} ms for ldap`);
    }
    const config = loadLdapConfig(options.mechOption);
    checkFilterTemplates(config, configPathFor(options.mechOption));
    if (config.authMethod === 'custom') loadLibCrypt();
    for (const key of unknownLdapKeys(readConfigFile(configPathFor(options.mechOption)))) {
      options.log.error(`${configPathFor(options.mechOption)}: unknown key ${key} ignored (the original ignores it too)`);
    }
    if (config.servers.some((server) => server.kind === 'ldapi') && config.startTls) {
      options.log.info('ldap: ldap_start_tls does not apply to ldapi:// servers (a local socket)');
    }
  },
  create(options: MechanismOptions): Mechanism {
    return new LdapMechanism(loadLdapConfig(options.mechOption), options.log, options.jobTimeoutMs);
  },
};
