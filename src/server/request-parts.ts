/**
 * A decoded request as every step after the wire sees it — the primary's Authenticator and
 * a worker's fast path alike, so both name, key and log a request the same way.
 */
import { cString, type WireRequest } from '../protocol/codec.js';
import { fieldText, type RequestFields } from '../log/auth-line.js';
import type { CacheKeyParts } from './credential-cache.js';

export interface RequestParts {
  /** Fields as C strings (cut at the first NUL), as the original's mechanisms see them. */
  readonly login: Buffer;
  readonly password: Buffer;
  readonly service: Buffer;
  readonly realm: Buffer;
  /** The account the mechanism checks: `login@realm` under `-r` with a realm, else the login. */
  readonly user: Buffer;
  /** The host part of the 5th field (PAM_RHOST), or empty. */
  readonly remoteHost: Buffer;
}

export function requestParts(request: WireRequest, appendRealm: boolean): RequestParts {
  const login = cString(request.login);
  const realm = cString(request.realm);
  return {
    login,
    password: cString(request.password),
    service: cString(request.service),
    realm,
    user: appendRealm && realm.length > 0 ? Buffer.concat([login, Buffer.from('@'), realm]) : login,
    remoteHost: clientHost(request.clientAddress),
  };
}

/** The credential cache's key for a request. */
export function cacheKeyOf(parts: RequestParts): CacheKeyParts {
  return { user: parts.user, realm: parts.realm, service: parts.service, remote: parts.remoteHost };
}

/** Who the request is about, as log lines show it (rendered only for a line that is written). */
export function logFieldsOf(parts: RequestParts): RequestFields {
  return {
    user: fieldText(parts.user),
    service: fieldText(parts.service),
    realm: fieldText(parts.realm),
    remote: fieldText(parts.remoteHost),
  };
}

/**
 * The login as most backends compare it: ASCII case folded, surrounding blanks dropped. The
 * guessing bounds key on it: the user after -r, never the realm on its own (PAM ignores it: a
 * new realm per guess must not make a new login), folded the way most backends fold it (LDAP,
 * Kerberos, sssd…: `Bob ` is `bob`), so spelling variants of one account share its turn.
 * Folding too much only costs fairness.
 */
export function accountKey(user: Buffer): Buffer {
  let start = 0;
  let end = user.length;
  while (start < end && (user[start] === 0x20 || user[start] === 0x09)) start++;
  while (end > start && (user[end - 1] === 0x20 || user[end - 1] === 0x09)) end--;
  const folded = Buffer.from(user.subarray(start, end));
  for (let i = 0; i < folded.length; i++) if (folded[i]! >= 0x41 && folded[i]! <= 0x5a) folded[i]! += 0x20;
  return folded;
}

/** The host part of a 5th field `ip;port` (what PAM_RHOST gets), or empty. */
function clientHost(address: Buffer | undefined): Buffer {
  if (!address) return Buffer.alloc(0);
  const field = cString(address);
  const semicolon = field.indexOf(0x3b);
  return semicolon === -1 ? field : field.subarray(0, semicolon);
}
