/**
 * The verbose lines of a successful request, written by whichever process answered it (the
 * primary, or a worker on the fast path), in the original's words.
 */
import { printable, type Logger } from './logger.js';
import { authLine, type RequestFields } from './auth-line.js';
import type { CacheKeyParts } from '../server/credential-cache.js';

/** A cache hit: `[login=…] …: found with valid passwd`, `auth success (cached)`, `response: OK`. */
export function logCachedSuccess(log: Logger, key: CacheKeyParts, fields: () => RequestFields): void {
  if (!log.verbose) return;
  log.debug(`${cacheWhere(key)}: found with valid passwd`);
  const line = authLine('auth success (cached)', fields());
  log.debug(line.text, line.fields);
  log.debug('response: OK');
}

/** A cache miss that goes on to the mechanism. */
export function logCacheMiss(log: Logger, key: CacheKeyParts, mismatch: boolean): void {
  if (log.verbose) log.debug(`${cacheWhere(key)}: ${mismatch ? 'found with invalid passwd' : 'not found'}, update pending`);
}

/** The mechanism said OK: `auth success: … [mech=…]` (with why it is late, when it is). */
export function logCheckedSuccess(log: Logger, fields: () => RequestFields, mechanism: string, late?: string): void {
  if (!log.verbose) return;
  const line = authLine('auth success', fields(), mechanism, late);
  log.debug(line.text, line.fields);
}

function cacheWhere(key: CacheKeyParts): string {
  return `[login=${printable(key.user)}] [service=${printable(key.service)}] [realm=${printable(key.realm)}]`;
}
