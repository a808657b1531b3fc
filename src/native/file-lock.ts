/**
 * flock(2) on an open file: an advisory lock the kernel drops when the last descriptor of
 * the open file is closed — in particular when the process dies, however it dies. No
 * mtime, no refresh timer, no guess about whether a holder is alive.
 */
import { constants } from 'node:os';
import { lastErrno, libcHandle } from './libc.js';

const LOCK_EX = 2;
const LOCK_NB = 4;

type FlockFn = (fd: number, operation: number) => number;
let flock: FlockFn | undefined;

export type LockAttempt = { readonly locked: true } | { readonly locked: false; readonly errno: number };

/** Takes an exclusive lock on `fd` without waiting. `errno` EWOULDBLOCK: another holds it. */
export function tryExclusiveLock(fd: number): LockAttempt {
  flock ??= libcHandle().func('flock', 'int', ['int', 'int']) as FlockFn;
  for (;;) {
    if (flock(fd, LOCK_EX | LOCK_NB) === 0) return { locked: true };
    const errno = lastErrno();
    if (errno !== constants.errno.EINTR) return { locked: false, errno };
  }
}

export const EWOULDBLOCK = constants.errno.EWOULDBLOCK;
