/**
 * The ldap mechanism's keys in /etc/saslauthd.conf (or the `-O` file), with the original's
 * names, aliases and defaults (lak.c). Every key the original knows either works or is
 * refused here with a message naming it: `check()` calls this in the primary, so a config
 * the mechanism cannot honour stops the daemon at start instead of failing every request.
 *
 * Values of enumerated keys (method, scope, deref, booleans) compare case-insensitively, as
 * the original's strcasecmp does. Keys of other mechanisms (krb5_*, httpform_*) share the file
 * and are left alone; an `ldap_*` key nobody knows is reported by `unknownLdapKeys`.
 */
import type { ConfigEntries } from '../config-file.js';
import { tlsSettings, type TlsSettings } from './tls-settings.js';
import { LdapConfigError, booleanKey, first, integerKey, oneOf } from './config-values.js';

export { LdapConfigError } from './config-values.js';

export type AuthMethod = 'bind' | 'fastbind' | 'custom';
export type Scope = 'sub' | 'one' | 'base';
export type Deref = 'never' | 'search' | 'find' | 'always';
export type GroupMatchMethod = 'attr' | 'filter';

/** One entry of `ldap_servers`. */
export type ServerAddress =
  | { readonly kind: 'tcp'; readonly uri: string; readonly host: string; readonly port: number; readonly tls: boolean }
  | { readonly kind: 'ldapi'; readonly uri: string; readonly path: string };


export interface LdapConfig {
  readonly servers: readonly ServerAddress[];
  readonly bindDn: string;
  /** Service account password; never logged. */
  readonly bindPassword: string;
  readonly searchBase: string;
  readonly filter: string;
  readonly passwordAttr: string;
  readonly groupDn: string;
  readonly groupAttr: string;
  readonly groupFilter: string;
  readonly groupSearchBase: string;
  readonly groupScope: Scope;
  readonly groupMatchMethod: GroupMatchMethod;
  readonly defaultRealm: string;
  readonly authMethod: AuthMethod;
  /** `ldap_timeout`: connect and each operation. */
  readonly timeoutMs: number;
  readonly sizeLimit: number;
  readonly timeLimit: number;
  readonly deref: Deref;
  /** `ldap_restart`: retry once on a server-down error. */
  readonly restart: boolean;
  readonly scope: Scope;
  readonly startTls: boolean;
  readonly tls: TlsSettings;
  /**
   * `ldap_use_sasl`: users are checked by a SASL PLAIN bind with their own login and
   * password (the original's SASL mode, which forces fastbind); undefined = simple binds.
   */
  readonly sasl: { readonly mechanism: 'PLAIN'; readonly authzId: string } | undefined;
}

/** Every key of the original (lak.c), aliases included. */
export const KNOWN_LDAP_KEYS: ReadonlySet<string> = new Set([
  'ldap_servers', 'ldap_bind_dn', 'ldap_bind_pw', 'ldap_password', 'ldap_version', 'ldap_search_base', 'ldap_filter',
  'ldap_password_attr', 'ldap_group_dn', 'ldap_group_attr', 'ldap_group_filter', 'ldap_group_search_base',
  'ldap_group_scope', 'ldap_group_match_method', 'ldap_default_realm', 'ldap_default_domain', 'ldap_auth_method',
  'ldap_timeout', 'ldap_size_limit', 'ldap_time_limit', 'ldap_deref', 'ldap_referrals', 'ldap_restart', 'ldap_scope',
  'ldap_use_sasl', 'ldap_id', 'ldap_sasl_authc_id', 'ldap_authz_id', 'ldap_sasl_authz_id', 'ldap_realm',
  'ldap_sasl_realm', 'ldap_mech', 'ldap_sasl_mech', 'ldap_sasl_secprops', 'ldap_start_tls', 'ldap_tls_check_peer',
  'ldap_tls_cacert_file', 'ldap_tls_cacert_dir', 'ldap_tls_ciphers', 'ldap_tls_cert', 'ldap_tls_key', 'ldap_debug',
]);

/** SASL keys this implementation has no use for: refused when present. */
const UNSUPPORTED_SASL_KEYS = ['ldap_id', 'ldap_sasl_authc_id', 'ldap_realm', 'ldap_sasl_realm', 'ldap_sasl_secprops'];
/** SASL keys that only mean something with ldap_use_sasl on. */
const SASL_ONLY_KEYS = ['ldap_mech', 'ldap_sasl_mech', 'ldap_authz_id', 'ldap_sasl_authz_id'];

/** Debian's slapd listens on this socket; `ldapi:///` without a path means it (libldap's LDAPI_SOCK). */
export const DEFAULT_LDAPI_PATH = '/var/run/slapd/ldapi';

/** `ldap_*` keys in the file that the original does not know either (a typo, usually). */
export function unknownLdapKeys(entries: ConfigEntries): string[] {
  return [...entries.keys()].filter((key) => key.startsWith('ldap_') && !KNOWN_LDAP_KEYS.has(key));
}

/** Parses `ldap_servers`: URIs separated by blanks, tried in order. */
export function parseServers(value: string): ServerAddress[] {
  const servers: ServerAddress[] = [];
  for (const uri of value.split(/[\s,]+/).filter((part) => part !== '')) {
    const match = /^(ldaps?|ldapi):\/\/([^/?]*)(?:[/?].*)?$/i.exec(uri);
    if (!match) throw new LdapConfigError('ldap_servers', `"${uri}" is not an ldap://, ldaps:// or ldapi:// URI`);
    const scheme = match[1]!.toLowerCase();
    const hostPort = match[2]!;
    if (scheme === 'ldapi') {
      servers.push({ kind: 'ldapi', uri, path: hostPort === '' ? DEFAULT_LDAPI_PATH : decodeURIComponent(hostPort) });
      continue;
    }
    const tls = scheme === 'ldaps';
    const hostMatch = /^(\[[^\]]+\]|[^:]*)(?::(\d+))?$/.exec(hostPort);
    if (!hostMatch) throw new LdapConfigError('ldap_servers', `"${uri}": cannot read host and port`);
    const host = hostMatch[1]!.replace(/^\[|\]$/g, '') || 'localhost';
    const port = hostMatch[2] === undefined ? (tls ? 636 : 389) : Number(hostMatch[2]);
    if (port < 1 || port > 65_535) throw new LdapConfigError('ldap_servers', `"${uri}": port out of range`);
    servers.push({ kind: 'tcp', uri, host, port, tls });
  }
  if (servers.length === 0) throw new LdapConfigError('ldap_servers', 'no server URI');
  return servers;
}

/** Keys the original has that this implementation cannot honour: refused, never ignored. */
function refuseUnsupported(entries: ConfigEntries): void {
  const version = entries.get('ldap_version');
  if (version !== undefined && version !== '3') {
    throw new LdapConfigError('ldap_version', `"${version}" is not supported: only LDAPv3 (LDAPv2 is historic, RFC 3494)`);
  }
  for (const key of UNSUPPORTED_SASL_KEYS) {
    if (entries.has(key)) {
      throw new LdapConfigError(key, 'not supported: with ldap_use_sasl each user binds by SASL PLAIN with the login as its identity (no separate id, realm or security properties)');
    }
  }
  if (!booleanKey(entries, 'ldap_use_sasl', false)) {
    for (const key of SASL_ONLY_KEYS) {
      if (entries.has(key)) throw new LdapConfigError(key, 'has no effect without ldap_use_sasl: remove it');
    }
  }
  if (booleanKey(entries, 'ldap_referrals', false)) {
    throw new LdapConfigError('ldap_referrals', 'chasing referrals is not supported (ldapts does not follow them); set it off');
  }
  const debug = entries.get('ldap_debug');
  if (debug !== undefined && debug !== '0') {
    throw new LdapConfigError('ldap_debug', 'libldap debug levels do not exist here; remove it and run with -V for the mechanism\'s debug lines');
  }
}

/** Builds the ldap settings from the parsed file; throws LdapConfigError naming the key. */
export function ldapConfigFrom(entries: ConfigEntries): LdapConfig {
  refuseUnsupported(entries);
  const searchBase = entries.get('ldap_search_base') ?? '';
  const groupFilter = entries.get('ldap_group_filter') ?? '';
  const servers = parseServers(entries.get('ldap_servers') ?? 'ldap://localhost/');
  const startTls = booleanKey(entries, 'ldap_start_tls', false);
  if (startTls && servers.some((server) => server.kind === 'tcp' && server.tls)) {
    throw new LdapConfigError('ldap_start_tls', 'StartTLS on an ldaps:// server makes no sense; use one or the other');
  }
  const timeoutSeconds = integerKey(entries, 'ldap_timeout', 5, 1);
  const sasl = saslSettings(entries);
  return {
    servers,
    bindDn: entries.get('ldap_bind_dn') ?? '',
    bindPassword: first(entries, 'ldap_bind_pw', 'ldap_password')?.value ?? '',
    searchBase,
    filter: entries.get('ldap_filter') ?? '(uid=%u)',
    passwordAttr: entries.get('ldap_password_attr') ?? 'userPassword',
    groupDn: entries.get('ldap_group_dn') ?? '',
    groupAttr: entries.get('ldap_group_attr') ?? 'uniqueMember',
    groupFilter,
    groupSearchBase: entries.get('ldap_group_search_base') ?? searchBase,
    groupScope: oneOf(entries, 'ldap_group_scope', ['sub', 'one', 'base'] as const, 'sub'),
    groupMatchMethod: oneOf(entries, 'ldap_group_match_method', ['attr', 'filter'] as const, 'attr'),
    defaultRealm: first(entries, 'ldap_default_realm', 'ldap_default_domain')?.value ?? '',
    // As the original: SASL forces fastbind (the user binds as itself, no search).
    authMethod: sasl ? 'fastbind' : oneOf(entries, 'ldap_auth_method', ['bind', 'fastbind', 'custom'] as const, 'bind'),
    timeoutMs: timeoutSeconds * 1000,
    sizeLimit: integerKey(entries, 'ldap_size_limit', 1, 0),
    timeLimit: integerKey(entries, 'ldap_time_limit', 5, 0),
    deref: oneOf(entries, 'ldap_deref', ['never', 'search', 'find', 'always'] as const, 'never'),
    restart: booleanKey(entries, 'ldap_restart', true),
    scope: oneOf(entries, 'ldap_scope', ['sub', 'one', 'base'] as const, 'sub'),
    startTls,
    tls: tlsSettings(entries),
    sasl,
  };
}

/**
 * `ldap_use_sasl` with `ldap_mech` (default PLAIN). Only PLAIN: it is the one mechanism
 * ldapts offers that carries the user's password. EXTERNAL would authenticate this daemon
 * (its certificate or its ldapi peer), not the user, so every password would pass;
 * DIGEST-MD5, SCRAM and GSSAPI need client SASL code ldapts does not have.
 */
function saslSettings(entries: ConfigEntries): LdapConfig['sasl'] {
  if (!booleanKey(entries, 'ldap_use_sasl', false)) return undefined;
  const mech = first(entries, 'ldap_mech', 'ldap_sasl_mech');
  const mechanism = (mech?.value ?? 'PLAIN').toUpperCase();
  if (mechanism === 'EXTERNAL') {
    throw new LdapConfigError(mech!.key, 'EXTERNAL authenticates this daemon (its certificate or ldapi peer), not the user: every password would be accepted. Use PLAIN');
  }
  if (mechanism !== 'PLAIN') throw new LdapConfigError(mech!.key, `"${mech!.value}" is not supported: only PLAIN (ldapts has no client for other SASL mechanisms)`);
  return { mechanism: 'PLAIN', authzId: first(entries, 'ldap_authz_id', 'ldap_sasl_authz_id')?.value ?? '' };
}
