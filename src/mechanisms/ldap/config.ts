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
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { createSecureContext } from 'node:tls';
import type { ConfigEntries } from '../config-file.js';

export type AuthMethod = 'bind' | 'fastbind' | 'custom';
export type Scope = 'sub' | 'one' | 'base';
export type Deref = 'never' | 'search' | 'find' | 'always';
export type GroupMatchMethod = 'attr' | 'filter';

/** One entry of `ldap_servers`. */
export type ServerAddress =
  | { readonly kind: 'tcp'; readonly uri: string; readonly host: string; readonly port: number; readonly tls: boolean }
  | { readonly kind: 'ldapi'; readonly uri: string; readonly path: string };

export interface TlsSettings {
  /** `ldap_tls_check_peer`: verify the server's certificate and name (default on, like libldap's TLS_REQCERT demand). */
  readonly checkPeer: boolean;
  /**
   * CA certificates from `ldap_tls_cacert_file` and `ldap_tls_cacert_dir` (PEM); without
   * them Debian's system bundle, and Node's own store when that file is absent.
   */
  readonly ca: readonly Buffer[] | undefined;
  readonly cert: Buffer | undefined;
  readonly key: Buffer | undefined;
  /** `ldap_tls_ciphers`, an OpenSSL cipher list. */
  readonly ciphers: string | undefined;
}

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

/** Debian's system CA bundle: what Debian's libldap trusts when no CA is configured (ca-certificates). */
export const SYSTEM_CA_BUNDLE = '/etc/ssl/certs/ca-certificates.crt';

/** Debian's slapd listens on this socket; `ldapi:///` without a path means it (libldap's LDAPI_SOCK). */
export const DEFAULT_LDAPI_PATH = '/var/run/slapd/ldapi';

export class LdapConfigError extends Error {
  constructor(key: string, reason: string) {
    super(`${key}: ${reason}`);
    this.name = 'LdapConfigError';
  }
}

/** `ldap_*` keys in the file that the original does not know either (a typo, usually). */
export function unknownLdapKeys(entries: ConfigEntries): string[] {
  return [...entries.keys()].filter((key) => key.startsWith('ldap_') && !KNOWN_LDAP_KEYS.has(key));
}

function first(entries: ConfigEntries, ...keys: string[]): { key: string; value: string } | undefined {
  // lak.c assigns in file order, so with both aliases present the later line wins; the
  // shared reader keeps only the last value per key, so prefer the alias written last.
  let found: { key: string; value: string } | undefined;
  for (const [key, value] of entries) if (keys.includes(key)) found = { key, value };
  return found;
}

function oneOf<T extends string>(entries: ConfigEntries, key: string, allowed: readonly T[], fallback: T): T {
  const value = entries.get(key);
  if (value === undefined) return fallback;
  const lower = value.toLowerCase() as T;
  if (!allowed.includes(lower)) throw new LdapConfigError(key, `"${value}" is not one of ${allowed.join(', ')}`);
  return lower;
}

/** The original's booleans: on/yes/true (and 1) are true. We also refuse what is neither. */
export function parseBoolean(key: string, value: string): boolean {
  const lower = value.toLowerCase();
  if (['on', 'yes', 'true', '1'].includes(lower)) return true;
  if (['off', 'no', 'false', '0'].includes(lower)) return false;
  throw new LdapConfigError(key, `"${value}" is not a boolean (on/off, yes/no, true/false)`);
}

function booleanKey(entries: ConfigEntries, key: string, fallback: boolean): boolean {
  const value = entries.get(key);
  return value === undefined ? fallback : parseBoolean(key, value);
}

function integerKey(entries: ConfigEntries, key: string, fallback: number, min: number): number {
  const value = entries.get(key);
  if (value === undefined) return fallback;
  if (!/^\d+$/.test(value) || Number(value) < min) throw new LdapConfigError(key, `"${value}" is not a whole number >= ${min}`);
  return Number(value);
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

function readPemFile(key: string, path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (error) {
    throw new LdapConfigError(key, `cannot read ${path} (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`);
  }
}

/** Every PEM certificate file of a CA directory (c_rehash style: hashed links and their targets). */
function readCaDirectory(path: string): Buffer[] {
  let names: string[];
  try {
    names = readdirSync(path);
  } catch (error) {
    throw new LdapConfigError('ldap_tls_cacert_dir', `cannot read ${path} (${(error as NodeJS.ErrnoException).code ?? ''})`);
  }
  const certificates: Buffer[] = [];
  for (const name of names.sort()) {
    const file = join(path, name);
    try {
      if (!statSync(file).isFile()) continue;
      const text = readFileSync(file);
      if (text.includes('-----BEGIN CERTIFICATE-----')) certificates.push(text);
    } catch {
      // A dangling link or unreadable file in a CA directory is skipped, as OpenSSL does.
    }
  }
  if (certificates.length === 0) throw new LdapConfigError('ldap_tls_cacert_dir', `no PEM certificate in ${path}`);
  return certificates;
}

function tlsSettings(entries: ConfigEntries): TlsSettings {
  const caFile = entries.get('ldap_tls_cacert_file');
  const caDir = entries.get('ldap_tls_cacert_dir');
  const ca = [
    ...(caFile === undefined ? [] : [readPemFile('ldap_tls_cacert_file', caFile)]),
    ...(caDir === undefined ? [] : readCaDirectory(caDir)),
  ];
  const certPath = entries.get('ldap_tls_cert');
  const keyPath = entries.get('ldap_tls_key');
  if ((certPath === undefined) !== (keyPath === undefined)) {
    throw new LdapConfigError(certPath === undefined ? 'ldap_tls_key' : 'ldap_tls_cert', 'ldap_tls_cert and ldap_tls_key go together');
  }
  if (ca.length === 0) {
    try {
      ca.push(readFileSync(SYSTEM_CA_BUNDLE));
    } catch {
      // No ca-certificates package: Node's bundled store.
    }
  }
  const settings: TlsSettings = {
    checkPeer: booleanKey(entries, 'ldap_tls_check_peer', true),
    ca: ca.length > 0 ? ca : undefined,
    cert: certPath === undefined ? undefined : readPemFile('ldap_tls_cert', certPath),
    key: keyPath === undefined ? undefined : readPemFile('ldap_tls_key', keyPath),
    ciphers: entries.get('ldap_tls_ciphers'),
  };
  try {
    // Refuses a cipher list OpenSSL does not understand, a key that does not match its cert, a bad PEM.
    createSecureContext({ ca: settings.ca as Buffer[] | undefined, cert: settings.cert, key: settings.key, ciphers: settings.ciphers });
  } catch (error) {
    const key = settings.ciphers !== undefined && /cipher/i.test((error as Error).message) ? 'ldap_tls_ciphers' : 'ldap_tls_cacert_file/ldap_tls_cert/ldap_tls_key';
    throw new LdapConfigError(key, `TLS settings refused by OpenSSL (${(error as Error).message})`);
  }
  return settings;
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
