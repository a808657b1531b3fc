/**
 * What the shadow and getpwent mechanisms answer when getpwnam_r did not give an entry
 * (auth_shadow.c and auth_getpwent.c share these words), and the verbose debug lines that
 * go with them. The login is logged, as the original logs it; nothing secret is.
 */
import { printable } from '../log/logger.js';
import type { Lookup } from '../native/passwd-shadow.js';
import type { AuthResult, MechanismLog } from './types.js';

/** The reply for a failed passwd lookup, or undefined when the lookup found the user. */
export function passwdLookupFailure<T>(mechanism: string, login: Buffer, result: Lookup<T>, log: MechanismLog): AuthResult | undefined {
  if (result.found) return undefined;
  if (result.error !== undefined) {
    log.debug(`DEBUG: auth_${mechanism}: getpwnam(${printable(login)}) failure: ${result.error}`);
    return { reply: `NO Username lookup failure: ${result.error}` };
  }
  log.debug(`DEBUG: auth_${mechanism}: getpwnam(${printable(login)}): invalid username`);
  return { reply: 'NO Invalid username' };
}

/** Days since the epoch, as the original computes "today" (time(NULL) / 86400). */
export function epochDay(nowMs: number = Date.now()): number {
  return Math.floor(nowMs / 86_400_000);
}
