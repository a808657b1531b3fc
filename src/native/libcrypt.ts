/**
 * Password hashes checked with the system's libcrypt (libxcrypt on Debian: yescrypt,
 * gost-yescrypt, bcrypt, sha512crypt, sha256crypt, md5crypt, descrypt…) through koffi.
 * Used by the shadow and getpwent mechanisms and by ldap's `{CRYPT}`/`{UNIX}` scheme.
 *
 * crypt_rn() is the reentrant form that returns NULL on failure instead of a "*0"-style
 * failure token; we still treat any result starting with `*` as a mismatch (CVE-2013-4122:
 * a NULL or failure result must never compare equal). The comparison is constant-time.
 * Neither the password nor a hash ever becomes a JS string: the password goes in as a
 * NUL-terminated Buffer, and the computed hash is read as bytes from the `output` field at the
 * start of the crypt_data scratch area (where crypt(3) documents crypt_rn writes it). The
 * copies we make (NUL-terminated password and setting, the scratch area) are wiped after
 * every call.
 */
import { timingSafeEqual } from 'node:crypto';
import koffi from 'koffi';
import type { IKoffiLib } from 'koffi';
import { nulTerminated } from './libc.js';

const LIBCRYPT = 'libcrypt.so.1';
/** sizeof(struct crypt_data) in libxcrypt (crypt.h): the scratch area crypt_rn needs. */
const CRYPT_DATA_SIZE = 32_768;
/** CRYPT_OUTPUT_SIZE: the `output` field, first in struct crypt_data; a hash is shorter. */
const CRYPT_OUTPUT_SIZE = 384;

type CryptRn = (phrase: Buffer, setting: Buffer, data: Buffer, size: number) => unknown;
let cryptRn: CryptRn | undefined;

/** Loads libcrypt and resolves crypt_rn; throws an Error saying why not (for `check()`). */
export function loadLibCrypt(): void {
  if (cryptRn !== undefined) return;
  let lib: IKoffiLib;
  try {
    lib = koffi.load(LIBCRYPT);
  } catch (error) {
    throw new Error(`cannot load "${LIBCRYPT}": ${(error as Error).message}`);
  }
  try {
    const u8ptr = koffi.pointer('uint8_t');
    cryptRn = lib.func('crypt_rn', 'void *', [u8ptr, u8ptr, u8ptr, 'int']) as CryptRn;
  } catch (error) {
    throw new Error(`cannot resolve crypt_rn in "${LIBCRYPT}": ${(error as Error).message}`);
  }
}

/**
 * True when `password` hashed with the settings of `storedHash` gives `storedHash`.
 * False for a locked (`!…`), disabled (`*…`), empty or unsupported hash; a byte string with
 * a NUL cannot be a password (the wire protocol forbids it) and is refused.
 */
export function passwordMatchesHash(password: Buffer, storedHash: Buffer): boolean {
  loadLibCrypt();
  if (storedHash.length === 0 || password.includes(0) || storedHash.includes(0)) return false;
  const phrase = nulTerminated(password);
  const setting = nulTerminated(storedHash);
  const scratch = Buffer.alloc(CRYPT_DATA_SIZE);
  try {
    if (cryptRn!(phrase, setting, scratch, CRYPT_DATA_SIZE) === null) return false;
    const end = scratch.indexOf(0);
    if (end <= 0 || end >= CRYPT_OUTPUT_SIZE || scratch[0] === 0x2a /* '*': a failure token */) return false;
    const computed = scratch.subarray(0, end);
    return computed.length === storedHash.length && timingSafeEqual(computed, storedHash);
  } finally {
    phrase.fill(0);
    setting.fill(0);
    scratch.fill(0);
  }
}
