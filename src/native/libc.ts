/**
 * The C library, loaded once per process for every koffi binding that needs it.
 * (posix-sockets.ts and libpam.ts still load their own handle; koffi returns the same
 * library either way — new bindings use this one.)
 */
import koffi from 'koffi';
import type { IKoffiLib } from 'koffi';

const LIBC = 'libc.so.6';
let libc: IKoffiLib | undefined;

export function loadLibc(): IKoffiLib {
  return (libc ??= koffi.load(LIBC));
}

/** The errno of the last failed call made through koffi on this thread. */
export function lastErrno(): number {
  return koffi.errno();
}
