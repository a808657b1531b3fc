/**
 * The `shadow` mechanism (saslauthd's auth_shadow, the getspnam branch used on Linux):
 * getpwnam_r(login) must find the user, then getspnam_r(login) gives the hash and the
 * ageing fields. In the original's order:
 *   hash `*NP*`                          → NO Insufficient permission to access NIS …
 *   password hashed with the stored hash
 *   (libcrypt, constant-time) differs    → NO Incorrect password   (locked `!…` hashes too)
 *   sp_expire set and today > sp_expire  → NO Account expired
 *   lstchg and max set, lstchg+max < today → NO Password expired
 * with today = days since the epoch. Not checked, as in the original: sp_inact, a forced
 * change (lstchg 0), the shell. Realm and service are ignored. Reading /etc/shadow needs root.
 *
 * Unlike the original, the verbose "pw mismatch" line never shows the hashes.
 */
import { passwordMatchesHash, loadLibCrypt } from '../native/libcrypt.js';
import { loadLibC } from '../native/libc.js';
import { withPasswdEntry, withShadowEntry, type ShadowEntry } from '../native/passwd-shadow.js';
import { printable } from '../log/logger.js';
import { epochDay, passwdLookupFailure } from './passwd-replies.js';
import type { AuthRequest, AuthResult, Mechanism, MechanismFactory, MechanismLog, MechanismOptions } from './types.js';

/** SHADOW_PW_EPERM: the hash NIS+ gives a caller without permission to read it. */
const NIS_NO_PERMISSION = Buffer.from('*NP*');
/** An unset day count in struct spwd. */
const UNSET = -1;

/** The checks after a shadow entry was found (exported for unit tests with a fixed day). */
export function checkShadowEntry(request: AuthRequest, entry: ShadowEntry, today: number, log: MechanismLog): AuthResult {
  const login = printable(request.login);
  if (entry.hash.equals(NIS_NO_PERMISSION)) {
    log.debug('DEBUG: auth_shadow: sp->sp_pwdp == SHADOW_PW_EPERM');
    return { reply: 'NO Insufficient permission to access NIS authentication database (saslauthd)' };
  }
  if (!passwordMatchesHash(request.password, entry.hash)) {
    log.debug(`DEBUG: auth_shadow: pw mismatch for ${login}`);
    return { reply: 'NO Incorrect password' };
  }
  if (entry.expire !== UNSET && today > entry.expire) {
    log.debug(`DEBUG: auth_shadow: account expired: ${today} > ${entry.expire}`);
    return { reply: 'NO Account expired' };
  }
  if (entry.lastChange !== UNSET && entry.maxDays !== UNSET && entry.lastChange + entry.maxDays < today) {
    log.debug(`DEBUG: auth_shadow: password expired: ${entry.lastChange} + ${entry.maxDays} < ${today}`);
    return { reply: 'NO Password expired' };
  }
  log.debug(`DEBUG: auth_shadow: OK: ${login}`);
  return { reply: 'OK' };
}

export function authenticateShadow(request: AuthRequest, log: MechanismLog): AuthResult {
  const passwdFailure = withPasswdEntry(request.login, (result) => passwdLookupFailure('shadow', request.login, result, log));
  if (passwdFailure !== undefined) return passwdFailure;
  return withShadowEntry(request.login, (result) => {
    if (result.found) return checkShadowEntry(request, result.entry, epochDay(), log);
    const login = printable(request.login);
    if (result.error !== undefined) {
      log.debug(`DEBUG: auth_shadow: getspnam(${login}) failure: ${result.error}`);
      return { reply: `NO Username shadow lookup failure: ${result.error}` };
    }
    log.debug(`DEBUG: auth_shadow: getspnam(${login}): invalid shadow username`);
    return { reply: 'NO Invalid shadow username' };
  });
}

export const shadowMechanism: MechanismFactory = {
  name: 'shadow',
  check(_options: MechanismOptions): void {
    loadLibC();
    loadLibCrypt();
  },
  create(options: MechanismOptions): Mechanism {
    return {
      blocking: true, // getpwnam_r, getspnam_r and crypt are synchronous: the worker's blocking loop runs them
      authenticate: (request) => authenticateShadow(request, options.log),
    };
  },
};
