/**
 * `ldap_auth_method: custom`: the password attribute's values checked here, as the original's
 * lak_check_password does: `{CRYPT}`/`{UNIX}` through the system's libcrypt, `{MD5}`, `{SMD5}`,
 * `{SHA}`, `{SSHA}`, and the SHA-2 forms slapd's contrib pw-sha2 module writes (`{SHA256}`,
 * `{SSHA256}`, `{SHA384}`, `{SSHA384}`, `{SHA512}`, `{SSHA512}`: base64 of digest, or of
 * digest followed by salt). A value without a `{scheme}` prefix is cleartext.
 *
 * Every comparison is constant-time. Unlike the original, a value with a `{scheme}` we do not
 * know is a mismatch, not compared as cleartext (that let the stored hash string itself in).
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { passwordMatchesHash } from '../../native/libcrypt.js';

interface DigestScheme {
  readonly algorithm: string;
  readonly digestBytes: number;
  readonly salted: boolean;
}

const DIGEST_SCHEMES: ReadonlyMap<string, DigestScheme> = new Map([
  ['MD5', { algorithm: 'md5', digestBytes: 16, salted: false }],
  ['SMD5', { algorithm: 'md5', digestBytes: 16, salted: true }],
  ['SHA', { algorithm: 'sha1', digestBytes: 20, salted: false }],
  ['SSHA', { algorithm: 'sha1', digestBytes: 20, salted: true }],
  ['SHA256', { algorithm: 'sha256', digestBytes: 32, salted: false }],
  ['SSHA256', { algorithm: 'sha256', digestBytes: 32, salted: true }],
  ['SHA384', { algorithm: 'sha384', digestBytes: 48, salted: false }],
  ['SSHA384', { algorithm: 'sha384', digestBytes: 48, salted: true }],
  ['SHA512', { algorithm: 'sha512', digestBytes: 64, salted: false }],
  ['SSHA512', { algorithm: 'sha512', digestBytes: 64, salted: true }],
]);

const CRYPT_SCHEMES = new Set(['CRYPT', 'UNIX']);

export type SchemeVerdict = 'match' | 'mismatch' | 'unsupported-scheme' | 'malformed';

/** Equal-length constant-time compare of two digests; a length difference is not secret. */
function sameBytes(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

/** Cleartext compare that does not leak where the first difference is, nor the stored length. */
function sameCleartext(password: Buffer, stored: Buffer): boolean {
  const digest = (bytes: Buffer): Buffer => createHash('sha256').update(bytes).digest();
  return timingSafeEqual(digest(password), digest(stored)) && password.length === stored.length && password.equals(stored);
}

function checkDigest(password: Buffer, encoded: Buffer, scheme: DigestScheme): SchemeVerdict {
  const text = encoded.toString('latin1').trim();
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(text)) return 'malformed';
  const decoded = Buffer.from(text, 'base64');
  if (scheme.salted ? decoded.length <= scheme.digestBytes : decoded.length !== scheme.digestBytes) return 'malformed';
  const digest = decoded.subarray(0, scheme.digestBytes);
  const salt = decoded.subarray(scheme.digestBytes);
  const computed = createHash(scheme.algorithm).update(password).update(salt).digest();
  return sameBytes(computed, digest) ? 'match' : 'mismatch';
}

/** Checks `password` against one stored value of the password attribute. */
export function checkStoredPassword(password: Buffer, stored: Buffer): SchemeVerdict {
  const prefix = /^\{([A-Za-z0-9._-]+)\}/.exec(stored.toString('latin1'));
  if (!prefix) return sameCleartext(password, stored) ? 'match' : 'mismatch';
  const name = prefix[1]!.toUpperCase();
  const rest = stored.subarray(prefix[0].length);
  if (CRYPT_SCHEMES.has(name)) return passwordMatchesHash(password, rest) ? 'match' : 'mismatch';
  const scheme = DIGEST_SCHEMES.get(name);
  if (scheme === undefined) return 'unsupported-scheme';
  return checkDigest(password, rest, scheme);
}

/** The scheme name of a stored value, for log lines (never the value itself). */
export function schemeName(stored: Buffer): string {
  const prefix = /^\{([A-Za-z0-9._-]+)\}/.exec(stored.toString('latin1'));
  return prefix ? `{${prefix[1]!.toUpperCase()}}` : 'cleartext';
}
