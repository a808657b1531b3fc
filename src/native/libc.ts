/**
 * The C library (libc.so.6), loaded once per process for every koffi binding that needs it:
 *   - `libcHandle()`: the library handle, for bindings that declare their own functions
 *     (file-lock.ts); `lastErrno()`: errno after a failed call;
 *   - `loadLibC()`: the functions the mechanisms share: memory helpers (PAM's conversation
 *     answers are malloc'd and freed by PAM), strerror, strlen, and the reentrant account
 *     lookups getpwnam_r / getspnam_r (see passwd-shadow.ts). It throws an Error saying why
 *     not, for a mechanism's `check()`.
 * (posix-sockets.ts still loads its own handle; koffi returns the same library either way.)
 *
 * Types are anonymous so other koffi users cannot clash with them. Nothing here turns a
 * secret into a JS string: C strings that may hold a hash are bound as `void *` and read as
 * bytes.
 */
import koffi from 'koffi';
import type { IKoffiLib, TypeSpec } from 'koffi';

const LIBC = 'libc.so.6';

declare const pointerBrand: unique symbol;
/** An address in native memory (a koffi External); null pointers are `null`. */
export type Pointer = { readonly [pointerBrand]: 'Pointer' };

/** `struct passwd` (pwd.h); the string fields stay pointers into the caller's buffer. */
export interface PasswdRecord {
  readonly pw_name: Pointer | null;
  readonly pw_passwd: Pointer | null;
  readonly pw_uid: number;
  readonly pw_gid: number;
}

/** `struct spwd` (shadow.h); day counts are days since the epoch, -1 when unset. */
export interface ShadowRecord {
  readonly sp_namp: Pointer | null;
  readonly sp_pwdp: Pointer | null;
  readonly sp_lstchg: number;
  readonly sp_min: number;
  readonly sp_max: number;
  readonly sp_warn: number;
  readonly sp_inact: number;
  readonly sp_expire: number;
}

export interface LibC {
  calloc(count: number, size: number): Pointer | null;
  malloc(size: number): Pointer | null;
  free(ptr: Pointer | null): void;
  /** Copies `src` (a Buffer, passed by address, no JS copy) into native memory. */
  memcpy(dest: Pointer, src: Buffer, size: number): void;
  memset(dest: Pointer, byte: number, size: number): void;
  strlen(ptr: Pointer): number;
  /** The C library's message for an errno value (e.g. "No such file or directory"). */
  strerror(errnum: number): string;
  /**
   * getpwnam_r(name, &record, buffer, buffer.length, &result): returns the error number
   * (0 on success); `out[0]` is the record, or null when there is no such user.
   */
  getpwnamR(name: Buffer, buffer: Buffer, out: [PasswdRecord | null]): number;
  /** getspnam_r, same contract as getpwnamR. */
  getspnamR(name: Buffer, buffer: Buffer, out: [ShadowRecord | null]): number;
}

const PasswdStruct = koffi.struct({
  pw_name: 'void *',
  pw_passwd: 'void *',
  pw_uid: 'uint32_t',
  pw_gid: 'uint32_t',
  pw_gecos: 'void *',
  pw_dir: 'void *',
  pw_shell: 'void *',
});
const ShadowStruct = koffi.struct({
  sp_namp: 'void *',
  sp_pwdp: 'void *',
  sp_lstchg: 'long',
  sp_min: 'long',
  sp_max: 'long',
  sp_warn: 'long',
  sp_inact: 'long',
  sp_expire: 'long',
  sp_flag: 'unsigned long',
});

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** koffi.load with an error that names what was loaded (used by every native binding). */
export function loadLibrary(path: string, what: string): IKoffiLib {
  try {
    return koffi.load(path);
  } catch (err) {
    throw new Error(`cannot load ${what} "${path}": ${describe(err)}`);
  }
}

/** lib.func with an error that names the symbol and library. */
export function bind(lib: IKoffiLib, path: string, name: string, result: TypeSpec, args: TypeSpec[]) {
  try {
    return lib.func(name, result, args);
  } catch (err) {
    throw new Error(`cannot resolve ${name} in "${path}": ${describe(err)}`);
  }
}

let handle: IKoffiLib | undefined;
let libC: LibC | undefined;

/** The C library's koffi handle (throws if it cannot be loaded). */
export function libcHandle(): IKoffiLib {
  return (handle ??= loadLibrary(LIBC, 'C library'));
}

/** The errno of the last failed call made through koffi on this thread. */
export function lastErrno(): number {
  return koffi.errno();
}

/** Loads libc and resolves every symbol the mechanisms use; throws an Error saying why not. */
export function loadLibC(): LibC {
  if (libC !== undefined) return libC;
  const lib = libcHandle();
  const u8ptr = koffi.pointer('uint8_t');
  const calloc = bind(lib, LIBC, 'calloc', 'void *', ['size_t', 'size_t']);
  const malloc = bind(lib, LIBC, 'malloc', 'void *', ['size_t']);
  const free = bind(lib, LIBC, 'free', 'void', ['void *']);
  const memcpy = bind(lib, LIBC, 'memcpy', 'void *', ['void *', 'void *', 'size_t']);
  const memset = bind(lib, LIBC, 'memset', 'void *', ['void *', 'int', 'size_t']);
  const strlen = bind(lib, LIBC, 'strlen', 'size_t', ['void *']);
  const strerror = bind(lib, LIBC, 'strerror', 'const char *', ['int']);
  const getpwnamR = bind(lib, LIBC, 'getpwnam_r', 'int', [
    u8ptr,
    koffi.out(koffi.pointer(PasswdStruct)),
    u8ptr,
    'size_t',
    koffi.out(koffi.pointer('void *')),
  ]);
  const getspnamR = bind(lib, LIBC, 'getspnam_r', 'int', [
    u8ptr,
    koffi.out(koffi.pointer(ShadowStruct)),
    u8ptr,
    'size_t',
    koffi.out(koffi.pointer('void *')),
  ]);
  /** Runs a get*nam_r: the record is only meaningful when the result pointer is set. */
  const lookup = <T>(fn: typeof getpwnamR, name: Buffer, buffer: Buffer, out: [T | null]): number => {
    const record: Record<string, unknown> = {};
    const result: [unknown] = [null];
    const rc = fn(name, record, buffer, buffer.length, result) as number;
    out[0] = rc === 0 && result[0] !== null ? (record as T) : null;
    return rc;
  };
  libC = {
    calloc: (count, size) => calloc(count, size) as Pointer | null,
    malloc: (size) => malloc(size) as Pointer | null,
    free: (ptr) => void free(ptr),
    memcpy: (dest, src, size) => void memcpy(dest, src, size),
    memset: (dest, byte, size) => void memset(dest, byte, size),
    strlen: (ptr) => Number(strlen(ptr)),
    strerror: (errnum) => (strerror(errnum) as string | null) ?? `Unknown error ${errnum}`,
    getpwnamR: (name, buffer, out) => lookup(getpwnamR, name, buffer, out),
    getspnamR: (name, buffer, out) => lookup(getspnamR, name, buffer, out),
  };
  return libC;
}

/**
 * The bytes of the NUL-terminated C string at `ptr`, as a Buffer that views the native
 * memory (no copy). Valid only while that memory is: the caller's lookup buffer.
 */
export function cStringView(libc: LibC, ptr: Pointer): Buffer {
  const length = libc.strlen(ptr);
  return length === 0 ? Buffer.alloc(0) : Buffer.from(koffi.view(ptr, length));
}

/** `bytes` followed by a NUL, in a fresh Buffer (the caller wipes it if it is secret). */
export function nulTerminated(bytes: Buffer): Buffer {
  const copy = Buffer.alloc(bytes.length + 1);
  bytes.copy(copy);
  return copy;
}
