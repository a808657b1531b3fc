/**
 * The `sasldb` mechanism (saslauthd's auth_sasldb): the `userPassword` property of
 * login@realm in the sasldb that Debian's saslpasswd2 writes, compared with the password in
 * constant time. Realm = the request's realm, or when empty this machine's gethostname()
 * (not the FQDN), as the original. The database is opened read-only for each request, so
 * saslpasswd2's changes apply at once, and never copied (see ../native/libdb.ts).
 *
 * Database path: /etc/sasldb2, the original's compiled-in path; `-O <path>` names another
 * (the original ignores `-O` for sasldb); it must be absolute. A `-O` path that cannot be
 * opened as a database stops the start; a missing default database only gets a warning, as
 * the original starts without one and saslpasswd2 may create it later.
 *
 * Replies only `OK` or `NO`, as the original; the reason goes to the verbose debug log.
 */
import { timingSafeEqual } from 'node:crypto';
import { hostname } from 'node:os';
import { isAbsolute } from 'node:path';
import { printable } from '../log/logger.js';
import { assertReadable, loadLibDb, lookup } from '../native/libdb.js';
import type { AuthRequest, AuthResult, Mechanism, MechanismFactory, MechanismLog, MechanismOptions } from './types.js';

/** SASL_DB_PATH of Debian's build. */
export const DEFAULT_SASLDB_PATH = '/etc/sasldb2';
/** The property saslpasswd2 stores the plaintext password under. */
const PASSWORD_PROPERTY = Buffer.from('userPassword');

/** `-O` names the database; else the compiled-in default. */
export function sasldbPathFor(mechOption: string | undefined): string {
  return mechOption !== undefined && mechOption !== '' ? mechOption : DEFAULT_SASLDB_PATH;
}

/** The realm the lookup uses: the request's, or gethostname() when it is empty. */
export function lookupRealm(realm: Buffer, host: () => string = hostname): Buffer {
  return realm.length > 0 ? realm : Buffer.from(host());
}

/** sasldb's key layout (the sasldb plugin's _sasldb_alloc_key): authid NUL realm NUL property, no final NUL. */
export function sasldbKey(login: Buffer, realm: Buffer, property: Buffer = PASSWORD_PROPERTY): Buffer {
  return Buffer.concat([login, Buffer.of(0), realm, Buffer.of(0), property]);
}

/** Constant-time equality of the stored and given passwords (only the length can show). */
export function storedPasswordMatches(stored: Buffer, given: Buffer): boolean {
  return stored.length === given.length && stored.length > 0 && timingSafeEqual(stored, given);
}

export function authenticateSasldb(path: string, request: AuthRequest, log: MechanismLog): AuthResult {
  const realm = lookupRealm(request.realm);
  const who = `${printable(request.login)}@${printable(realm)}`;
  const key = sasldbKey(request.login, realm);
  return lookup(path, key, (result) => {
    if (result.kind === 'error') {
      log.error(`auth_sasldb: ${result.message}`);
      return { reply: 'NO' };
    }
    if (result.kind === 'absent') {
      log.debug(`DEBUG: auth_sasldb: user: ${who} property: userPassword not found in sasldb`);
      return { reply: 'NO' };
    }
    if (!storedPasswordMatches(result.value, request.password)) {
      log.debug(`DEBUG: auth_sasldb: password mismatch for ${who}`);
      return { reply: 'NO' };
    }
    return { reply: 'OK' };
  });
}

export const sasldbMechanism: MechanismFactory = {
  name: 'sasldb',
  check(options: MechanismOptions): void {
    loadLibDb();
    const path = sasldbPathFor(options.mechOption);
    // Workers run in the run directory: a relative path would name another file there.
    if (!isAbsolute(path)) throw new Error(`-O ${path}: the sasldb path must be absolute`);
    if (path !== DEFAULT_SASLDB_PATH) {
      assertReadable(path);
      return;
    }
    try {
      assertReadable(path);
    } catch (error) {
      options.log.info(`auth_sasldb: warning: ${(error as Error).message}; every request fails until it exists`);
    }
  },
  create(options: MechanismOptions): Mechanism {
    const path = sasldbPathFor(options.mechOption);
    return {
      blocking: true, // Berkeley DB reads are synchronous: the worker's blocking loop runs them
      authenticate: (request) => authenticateSasldb(path, request, options.log),
    };
  },
};
