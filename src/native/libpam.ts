/**
 * koffi bindings for the parts of Linux-PAM the `pam` mechanism needs (libc: ./libc.ts).
 *
 * Library path: the environment variable SASLAUTHD_PAM_LIBRARY, read when the library is
 * first loaded, names the PAM library to load; unset or empty means "libpam.so.0".
 * Tests set it to /usr/lib/x86_64-linux-gnu/libpam_wrapper.so (with PAM_WRAPPER=1 and
 * PAM_WRAPPER_SERVICE_DIR=<dir of service files>): koffi resolves symbols in the library
 * it loads, so LD_PRELOAD interposition never reaches our calls.
 *
 * Everything is loaded lazily, once per process. Types are anonymous so that other koffi
 * users in the same process cannot clash with our type names.
 *
 * Nothing here converts secrets to JS strings: strings go in as NUL-terminated Buffers
 * and responses are written into malloc'd memory with memcpy.
 */
import koffi from 'koffi';
import type { IKoffiLib, IKoffiRegisteredCallback } from 'koffi';
import { bind, loadLibrary, type Pointer } from './libc.js';

export { loadLibC, type LibC, type Pointer } from './libc.js';

// Linux-PAM constants (security/_pam_types.h).
export const PAM_SUCCESS = 0;
export const PAM_BUF_ERR = 5;
export const PAM_CONV_ERR = 19;
export const PAM_SILENT = 0x8000;
export const PAM_RHOST = 4;
export const PAM_FAIL_DELAY = 10;
export const PAM_PROMPT_ECHO_OFF = 1;
export const PAM_PROMPT_ECHO_ON = 2;
export const PAM_ERROR_MSG = 3;
export const PAM_TEXT_INFO = 4;
export const PAM_MAX_NUM_MSG = 32;

export const DEFAULT_PAM_LIBRARY = 'libpam.so.0';
export const PAM_LIBRARY_ENV = 'SASLAUTHD_PAM_LIBRARY';

declare const handleBrand: unique symbol;
export type PamHandle = { readonly [handleBrand]: 'pam_handle_t' };
/** A koffi registered callback (a C function pointer that stays valid until unregistered). */
export type NativeCallback = IKoffiRegisteredCallback;

/** `int conv(int num_msg, const struct pam_message **msg, struct pam_response **resp, void *appdata_ptr)` */
export type ConversationFn = (
  numMsg: number,
  msg: Pointer | null,
  resp: Pointer | null,
  appdata: number | bigint,
) => number;
/** `void delay_fn(int retval, unsigned usec_delay, void *appdata_ptr)` */
export type FailDelayFn = (retval: number, usecDelay: number, appdata: number | bigint) => void;

export interface PamMessage {
  readonly style: number;
  /** Message text for display/logging only (decoded as UTF-8); null if the module sent none. */
  readonly text: string | null;
}

export interface LibPam {
  /** What was passed to dlopen. */
  readonly path: string;
  /**
   * `appdata` travels as the conversation's appdata_ptr (an integer, not an address);
   * `handleOut[0]` receives the handle.
   */
  start(service: Buffer, user: Buffer, conv: NativeCallback, appdata: number, handleOut: [PamHandle | null]): number;
  authenticate(handle: PamHandle, flags: number): number;
  acctMgmt(handle: PamHandle, flags: number): number;
  end(handle: PamHandle, status: number): number;
  /** pam_set_item for string items: `value` must be NUL-terminated. */
  setStringItem(handle: PamHandle, item: number, value: Buffer): number;
  setFailDelay(handle: PamHandle, fn: NativeCallback): number;
  strerror(handle: PamHandle | null, errnum: number): string;
  registerConversation(fn: ConversationFn): NativeCallback;
  registerFailDelay(fn: FailDelayFn): NativeCallback;
  unregister(cb: NativeCallback): void;
}

// Anonymous types, created once.
const PamHandleType = koffi.opaque();
const PamHandlePtr = koffi.pointer(PamHandleType);
const ConvProto = koffi.proto('int', ['int', 'void *', 'void *', 'intptr_t']);
const FailDelayProto = koffi.proto('void', ['int', 'unsigned int', 'intptr_t']);
const PamConvStruct = koffi.struct({ conv: koffi.pointer(ConvProto), appdata_ptr: 'intptr_t' });
const PamMessageStruct = koffi.struct({ msg_style: 'int', msg: 'const char *' });
const PamResponseStruct = koffi.struct({ resp: 'void *', resp_retcode: 'int' });

export const POINTER_SIZE = koffi.sizeof('void *');
export const PAM_RESPONSE_SIZE = koffi.sizeof(PamResponseStruct);
export const PAM_RESPONSE_RESP_OFFSET = koffi.offsetof(PamResponseStruct, 'resp');

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** The configured PAM library path (SASLAUTHD_PAM_LIBRARY, else libpam.so.0). */
export function pamLibraryPath(): string {
  const configured = process.env[PAM_LIBRARY_ENV];
  return configured !== undefined && configured !== '' ? configured : DEFAULT_PAM_LIBRARY;
}

let libPam: LibPam | undefined;

/** Loads libpam and resolves every symbol we use; throws an Error saying why not. */
export function loadLibPam(): LibPam {
  if (libPam !== undefined) return libPam;
  const path = pamLibraryPath();
  const hint = path === DEFAULT_PAM_LIBRARY ? ` (set ${PAM_LIBRARY_ENV} to use another PAM library)` : ` (from ${PAM_LIBRARY_ENV})`;
  let lib: IKoffiLib;
  try {
    lib = loadLibrary(path, 'PAM library');
  } catch (err) {
    throw new Error(describe(err) + hint);
  }
  const u8ptr = koffi.pointer('uint8_t');
  const pamStart = bind(lib, path, 'pam_start', 'int', [u8ptr, u8ptr, koffi.pointer(PamConvStruct), koffi.out(koffi.pointer(PamHandlePtr))]);
  const pamAuthenticate = bind(lib, path, 'pam_authenticate', 'int', [PamHandlePtr, 'int']);
  const pamAcctMgmt = bind(lib, path, 'pam_acct_mgmt', 'int', [PamHandlePtr, 'int']);
  const pamEnd = bind(lib, path, 'pam_end', 'int', [PamHandlePtr, 'int']);
  const pamSetItemString = bind(lib, path, 'pam_set_item', 'int', [PamHandlePtr, 'int', u8ptr]);
  const pamSetItemDelay = bind(lib, path, 'pam_set_item', 'int', [PamHandlePtr, 'int', koffi.pointer(FailDelayProto)]);
  const pamStrerror = bind(lib, path, 'pam_strerror', 'const char *', [PamHandlePtr, 'int']);

  libPam = {
    path,
    start: (service, user, conv, appdata, handleOut) => pamStart(service, user, { conv, appdata_ptr: appdata }, handleOut) as number,
    authenticate: (handle, flags) => pamAuthenticate(handle, flags) as number,
    acctMgmt: (handle, flags) => pamAcctMgmt(handle, flags) as number,
    end: (handle, status) => pamEnd(handle, status) as number,
    setStringItem: (handle, item, value) => pamSetItemString(handle, item, value) as number,
    setFailDelay: (handle, fn) => pamSetItemDelay(handle, PAM_FAIL_DELAY, fn) as number,
    strerror: (handle, errnum) => (pamStrerror(handle, errnum) as string | null) ?? `PAM error ${errnum}`,
    registerConversation: (fn) => koffi.register(fn, koffi.pointer(ConvProto)),
    registerFailDelay: (fn) => koffi.register(fn, koffi.pointer(FailDelayProto)),
    unregister: (cb) => koffi.unregister(cb),
  };
  return libPam;
}

/** Reads the pointer stored at `base + offset`. */
export function readPointer(base: Pointer, offset: number): Pointer | null {
  return koffi.decode(base, offset, 'void *') as Pointer | null;
}

/** Writes `value` as a pointer at `base + offset`. */
export function writePointer(base: Pointer, offset: number, value: Pointer | null): void {
  koffi.encode(base, offset, 'void *', value);
}

export function writeByte(base: Pointer, offset: number, value: number): void {
  koffi.encode(base, offset, 'uint8_t', value);
}

/** Decodes one `struct pam_message` (style and text). */
export function readMessage(ptr: Pointer): PamMessage {
  const decoded = koffi.decode(ptr, PamMessageStruct) as { msg_style: number; msg: string | null };
  return { style: decoded.msg_style, text: decoded.msg };
}
