/**
 * The TLS keys of the ldap mechanism (`ldap_tls_*`), read at start: CA file and directory,
 * client certificate and key, cipher list, peer checking. Everything is handed to OpenSSL
 * once here (createSecureContext), so a bad file, a key that does not match its certificate
 * or a cipher list OpenSSL does not know stops the daemon at start, naming the key.
 */
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { createSecureContext } from 'node:tls';
import type { ConfigEntries } from '../config-file.js';
import { LdapConfigError, booleanKey } from './config-values.js';

/** Debian's system CA bundle: what Debian's libldap trusts when no CA is configured (ca-certificates). */
export const SYSTEM_CA_BUNDLE = '/etc/ssl/certs/ca-certificates.crt';

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

export function tlsSettings(entries: ConfigEntries): TlsSettings {
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

