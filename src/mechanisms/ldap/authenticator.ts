/**
 * One authentication against the directory, per `ldap_auth_method` (lak.c's lak_authenticate):
 *  - bind: find the user's DN as the service account, then bind as the user with the password;
 *  - fastbind: bind as the DN made from `ldap_filter`, no search;
 *  - custom: find the user as the service account, read `ldap_password_attr`, compare locally;
 * then, when configured, the group check (`ldap_group_match_method` attr: compare the group's
 * `ldap_group_attr` with the user's DN; filter: search `ldap_group_filter`).
 *
 * Two persistent connections per worker: the service connection, bound once as
 * `ldap_bind_dn` (anonymous without one) and kept; and the user connection, where every
 * request binds as its user. Keeping them apart means the service connection never has to be
 * re-bound after a user bind, and every request's password is checked by the server: there is
 * no "already bound as this user" shortcut (cyrus-sasl#550).
 */
import type { SearchOptions } from 'ldapts';
import type { LdapConfig } from './config.js';
import { Deadline, LdapConnection, ServerDownError, resultCodeOf } from './connection.js';
import { checkStoredPassword, schemeName } from './password-schemes.js';
import { decodeUtf8, escapeDnValue, escapeFilterValue, expand, type TokenValues } from './tokens.js';

/**
 * lak.c's result codes and lak_error() texts, for the original's log line. Observed from
 * Debian's C daemon: -3, -4, -6, and -7 (a refused bind, the user's or the service account's).
 */
export const LakResult = {
  ok: { code: 0, text: 'Success' },
  fail: { code: -1, text: 'Generic error' },
  retry: { code: -3, text: 'Retry condition (ldap server connection reset or broken)' },
  notGroupMember: { code: -4, text: 'Group member check failed' },
  invalidPassword: { code: -5, text: 'Invalid password' },
  userNotFound: { code: -6, text: 'User not found' },
  bindFail: { code: -7, text: 'Bind to ldap server failed (invalid user/password or insufficient access)' },
  connectFail: { code: -8, text: 'Cannot connect to ldap server' },
} as const;
export type LakOutcome = (typeof LakResult)[keyof typeof LakResult];

/** LDAP result codes we act on (RFC 4511 §4.1.9). */
const INVALID_CREDENTIALS = 49;
const NO_SUCH_OBJECT = 32;
/** Requested for the user search (when the configured limit is 1) so that a filter matching two entries is seen as ambiguous. */
const AMBIGUITY_PROBE_SIZE = 2;
/** Attribute list asking the server for no attributes (RFC 4511 §4.5.1.8). */
const NO_ATTRIBUTES = ['1.1'];

export interface Credentials {
  readonly tokens: TokenValues;
  readonly password: Buffer;
}

export class Authenticator {
  private readonly service: LdapConnection;
  private readonly user: LdapConnection;
  /** True while the service connection is bound as the service account. */
  private serviceBound = false;

  constructor(
    private readonly config: LdapConfig,
    private readonly debug: (message: string) => void,
  ) {
    this.service = new LdapConnection(config, debug);
    this.user = new LdapConnection(config, debug);
  }

  close(): void {
    this.service.destroy();
    this.user.destroy();
    this.serviceBound = false;
  }

  async authenticate(credentials: Credentials, deadline: Deadline): Promise<LakOutcome> {
    switch (this.config.authMethod) {
      case 'bind': return this.byBind(credentials, deadline);
      case 'fastbind': return this.byFastBind(credentials, deadline);
      case 'custom': return this.byCompare(credentials, deadline);
    }
  }

  private async serviceConnection(deadline: Deadline): Promise<LdapConnection> {
    if (!this.service.connected) this.serviceBound = false;
    if (this.serviceBound) return this.service;
    await this.service.connect(deadline);
    if (this.config.bindDn !== '') await this.service.bind(this.config.bindDn, this.config.bindPassword, deadline);
    this.serviceBound = true;
    return this.service;
  }

  /** The user's DN from `ldap_filter` under `ldap_search_base`, or undefined (none, or not exactly one). */
  private async findUser(connection: LdapConnection, credentials: Credentials, attributes: string[], deadline: Deadline): Promise<{ dn: string; values: Buffer[] } | undefined> {
    const filter = expand(this.config.filter, credentials.tokens, escapeFilterValue);
    const base = expand(this.config.searchBase, credentials.tokens, escapeDnValue);
    if (filter === undefined || base === undefined) {
      this.debug('ldap: the login, realm or service is not UTF-8 text: no directory entry can match it');
      return undefined;
    }
    const wanted = this.config.sizeLimit === 1 ? AMBIGUITY_PROBE_SIZE : this.config.sizeLimit;
    const options: SearchOptions = {
      scope: this.config.scope,
      filter,
      attributes,
      explicitBufferAttributes: attributes,
      sizeLimit: wanted,
      timeLimit: this.config.timeLimit,
      derefAliases: this.config.deref,
    };
    const result = await connection.search(base, options, deadline);
    if (result.searchEntries.length !== 1) {
      this.debug(`ldap: ${result.searchEntries.length === 0 ? 'no entry' : 'more than one entry'} found for the user filter`);
      return undefined;
    }
    const entry = result.searchEntries[0]!;
    const raw = attributes.length > 0 ? entry[attributes[0]!] : undefined;
    const values = raw === undefined ? [] : (Array.isArray(raw) ? raw : [raw]).map((value) => (Buffer.isBuffer(value) ? value : Buffer.from(String(value), 'utf8')));
    return { dn: entry.dn, values };
  }

  /** Binds as `dn` (a SASL identity with ldap_use_sasl) on the user connection: ok, refused, or a thrown server-down. */
  private async bindAsUser(dn: string, password: Buffer, deadline: Deadline): Promise<boolean> {
    // An empty password would be an unauthenticated bind, which servers accept (RFC 4513 §5.1.2).
    if (password.length === 0) return false;
    const text = decodeUtf8(password);
    if (text === undefined) {
      this.debug('ldap: the password is not UTF-8 text and cannot be sent in a bind');
      return false;
    }
    await this.user.connect(deadline);
    try {
      if (this.config.sasl) await this.user.bindSaslPlain(this.config.sasl.authzId, dn, text, deadline);
      else await this.user.bind(dn, text, deadline);
      return true;
    } catch (error) {
      const code = resultCodeOf(error);
      if (code === undefined) throw error;
      if (code !== INVALID_CREDENTIALS) this.debug(`ldap: user bind refused with result code ${code}`);
      return false;
    }
  }

  private async byBind(credentials: Credentials, deadline: Deadline): Promise<LakOutcome> {
    const service = await this.serviceConnection(deadline);
    const found = await this.findUser(service, credentials, NO_ATTRIBUTES, deadline);
    if (found === undefined) return LakResult.userNotFound;
    if (!(await this.bindAsUser(found.dn, credentials.password, deadline))) return LakResult.bindFail;
    return this.groupCheck(service, credentials, found.dn, deadline);
  }

  private async byFastBind(credentials: Credentials, deadline: Deadline): Promise<LakOutcome> {
    if (this.config.sasl) return this.bySaslBind(credentials, deadline);
    const dn = expand(this.config.filter, credentials.tokens, escapeDnValue);
    if (dn === undefined) return LakResult.userNotFound;
    if (!(await this.bindAsUser(dn, credentials.password, deadline))) return LakResult.bindFail;
    return this.groupCheck(this.user, credentials, dn, deadline);
  }

  /** ldap_use_sasl: a SASL PLAIN bind with the login as authentication id; the DN for groups from "Who am I?". */
  private async bySaslBind(credentials: Credentials, deadline: Deadline): Promise<LakOutcome> {
    const identity = decodeUtf8(credentials.tokens.login);
    if (identity === undefined) return LakResult.userNotFound;
    if (!(await this.bindAsUser(identity, credentials.password, deadline))) return LakResult.bindFail;
    const needsDn = this.config.groupMatchMethod === 'attr' ? this.config.groupDn !== '' : this.config.groupFilter !== '';
    if (!needsDn) return LakResult.ok;
    const dn = await this.user.whoAmI(deadline);
    if (dn === undefined) {
      this.debug('ldap: the server did not say which DN the SASL identity is: no group check possible');
      return LakResult.notGroupMember;
    }
    return this.groupCheck(this.user, credentials, dn, deadline);
  }

  private async byCompare(credentials: Credentials, deadline: Deadline): Promise<LakOutcome> {
    const service = await this.serviceConnection(deadline);
    const found = await this.findUser(service, credentials, [this.config.passwordAttr], deadline);
    if (found === undefined) return LakResult.userNotFound;
    let matched = false;
    for (const stored of found.values) {
      const verdict = checkStoredPassword(credentials.password, stored);
      if (verdict === 'match') matched = true;
      else if (verdict !== 'mismatch') this.debug(`ldap: ${verdict} value of ${this.config.passwordAttr} (${schemeName(stored)}) skipped`);
    }
    if (!matched) return LakResult.invalidPassword;
    return this.groupCheck(service, credentials, found.dn, deadline);
  }

  private async groupCheck(connection: LdapConnection, credentials: Credentials, userDn: string, deadline: Deadline): Promise<LakOutcome> {
    const tokens: TokenValues = { ...credentials.tokens, userDn };
    if (this.config.groupMatchMethod === 'attr') {
      if (this.config.groupDn === '') return LakResult.ok;
      const groupDn = expand(this.config.groupDn, tokens, escapeDnValue);
      if (groupDn === undefined) return LakResult.notGroupMember;
      try {
        return (await connection.compare(groupDn, this.config.groupAttr, userDn, deadline)) ? LakResult.ok : LakResult.notGroupMember;
      } catch (error) {
        const code = resultCodeOf(error);
        if (code === undefined) throw error;
        this.debug(`ldap: group compare refused with result code ${code}${code === NO_SUCH_OBJECT ? ' (no such group)' : ''}`);
        return LakResult.notGroupMember;
      }
    }
    if (this.config.groupFilter === '') return LakResult.ok;
    const filter = expand(this.config.groupFilter, tokens, escapeFilterValue);
    const base = expand(this.config.groupSearchBase, tokens, escapeDnValue);
    if (filter === undefined || base === undefined) return LakResult.notGroupMember;
    const result = await connection.search(
      base,
      { scope: this.config.groupScope, filter, attributes: NO_ATTRIBUTES, timeLimit: this.config.timeLimit, derefAliases: this.config.deref },
      deadline,
    );
    return result.searchEntries.length > 0 ? LakResult.ok : LakResult.notGroupMember;
  }
}

/** Maps an error thrown during an attempt to the original's result. */
export function outcomeOfError(error: unknown): LakOutcome {
  if (error instanceof ServerDownError) return LakResult.retry;
  const code = resultCodeOf(error);
  if (code === INVALID_CREDENTIALS) return LakResult.bindFail;
  return LakResult.fail;
}
