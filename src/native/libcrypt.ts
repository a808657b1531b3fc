/**
 * Password hashes checked with the system's libcrypt (libxcrypt on Debian: yescrypt,
 * gost-yescrypt, bcrypt, sha512crypt, sha256crypt, md5crypt, descrypt…) through koffi.
 * Used by the shadow and getpwent mechanisms and by ldap's `{CRYPT}`/`{UNIX}` scheme.
 *
 * crypt_rn() is the reentrant form that returns NULL on failure instead of a "*0"-style
 * failure token; we still treat any result starting with `*` as a mismatch (CVE-2013-4122:
 * a NULL or failure result must never compare equal). The comparison is constant-time.
 * The password goes in as a NUL-terminated Buffer (never a JS string); the scratch area
 * crypt_rn works in is wiped after every call.
 */
import { timingSafeEqual } from 'node:crypto';
import koffi from 'koffi';
import type { IKoffiLib } from 'koffi';

const LIBCRYPT = 'libcrypt.so.1';
/** sizeof(struct crypt_data) in libxcrypt (crypt.h): the scratch area crypt_rn needs. */
const CRYPT_DATA_SIZE = 32_768;

type CryptRn = (phrase: Buffer, setting: Buffer, data: Buffer, size: number) => string | null;
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
    cryptRn = lib.func('crypt_rn', 'const char *', [u8ptr, u8ptr, u8ptr, 'int']) as CryptRn;
  } catch (error) {
    throw new Error(`cannot resolve crypt_rn in "${LIBCRYPT}": ${(error as Error).message}`);
  }
}

function nulTerminated(bytes: Buffer): Buffer {
  const copy = Buffer.alloc(bytes.length + 1);
  bytes.copy(copy);
  return copy;
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
  const scratch = Buffer.alloc(CRYPT_DATA_SIZE);
  try {
    const computed = cryptRn!(phrase, nulTerminated(storedHash), scratch, CRYPT_DATA_SIZE);
    if (computed === null || computed.startsWith('*')) return false;
    const computedBytes = Buffer.from(computed, 'latin1');
    return computedBytes.length === storedHash.length && timingSafeEqual(computedBytes, storedHash);
  } finally {
    phrase.fill(0);
    scratch.fill(0);
  }
}
