/**
 * The `getpwent` mechanism (saslauthd's auth_getpwent): getpwnam_r(login), then the password
 * hashed with pw_passwd through libcrypt and compared in constant time. On a shadowed system
 * pw_passwd is `x`, which no password hashes to: every request fails with
 * `NO Incorrect password`, as in the original. Realm and service are ignored.
 *
 * Replies: `OK`, `NO Username lookup failure: <strerror>`, `NO Invalid username`,
 * `NO Incorrect password`.
 */
import { passwordMatchesHash, loadLibCrypt } from '../native/libcrypt.js';
import { loadLibC } from '../native/libc.js';
import { withPasswdEntry } from '../native/passwd-shadow.js';
import { printable } from '../log/logger.js';
import { passwdLookupFailure } from './passwd-replies.js';
import type { AuthRequest, AuthResult, Mechanism, MechanismFactory, MechanismLog, MechanismOptions } from './types.js';

export function authenticateGetpwent(request: AuthRequest, log: MechanismLog): AuthResult {
  return withPasswdEntry(request.login, (result) => {
    const failure = passwdLookupFailure('getpwent', request.login, result, log);
    if (failure !== undefined || !result.found) return failure ?? { reply: 'NO Invalid username' };
    if (!passwordMatchesHash(request.password, result.entry.passwd)) {
      log.debug(`DEBUG: auth_getpwent: ${printable(request.login)}: invalid password`);
      return { reply: 'NO Incorrect password' };
    }
    log.debug(`DEBUG: auth_getpwent: OK: ${printable(request.login)}`);
    return { reply: 'OK' };
  });
}

export const getpwentMechanism: MechanismFactory = {
  name: 'getpwent',
  check(_options: MechanismOptions): void {
    loadLibC();
    loadLibCrypt();
  },
  create(options: MechanismOptions): Mechanism {
    return {
      blocking: true, // getpwnam_r and crypt are synchronous: the worker's blocking loop runs them
      authenticate: (request) => authenticateGetpwent(request, options.log),
    };
  },
};
