/**
 * Process descriptors (pidfd, Linux 5.6+) and a process's scheduler state, for the primary's
 * supervisor: it takes a hung worker's client connection out of the worker (pidfd_getfd)
 * before killing it, so the client still gets an answer.
 *
 * glibc 2.36 (Debian 12) has wrappers for pidfd_open, pidfd_getfd and pidfd_send_signal, so
 * they are bound by name (no syscall(2) numbers). A pidfd names one process for good: a signal
 * sent through it can never reach another process that reused the pid.
 *
 * Like posix-sockets.ts: every call returns the raw result, failures as -errno, never a throw.
 * Taking another process's descriptor needs ptrace rights over it (PTRACE_MODE_ATTACH): root,
 * or its parent under Yama's default ptrace_scope 1 — the primary is its workers' parent.
 */
import koffi from 'koffi';
import { readFileSync } from 'node:fs';
import { libcHandle } from './libc.js';

type IntFn = (...args: unknown[]) => number;
interface Calls {
  pidfdOpen: IntFn;
  pidfdGetfd: IntFn;
  pidfdSendSignal: IntFn;
}
let calls: Calls | undefined;

function load(): Calls {
  if (calls) return calls;
  const lib = libcHandle();
  calls = {
    pidfdOpen: lib.func('pidfd_open', 'int', ['int', 'unsigned int']) as IntFn,
    pidfdGetfd: lib.func('pidfd_getfd', 'int', ['int', 'int', 'unsigned int']) as IntFn,
    pidfdSendSignal: lib.func('pidfd_send_signal', 'int', ['int', 'int', 'void *', 'unsigned int']) as IntFn,
  };
  return calls;
}

function checked(result: number): number {
  return result < 0 ? -koffi.errno() : result;
}

/** A pidfd for `pid` (close-on-exec; close it when done), or -errno (-ESRCH: no such process). */
export function pidfdOpen(pid: number): number {
  return checked(load().pidfdOpen(pid, 0));
}

/**
 * A descriptor in this process for the same open file as `targetFd` in the process of
 * `pidfd` (like dup across processes; the new one is close-on-exec), or -errno: -EBADF when
 * the process has no such descriptor, -ESRCH when it has exited, -EPERM without ptrace rights.
 */
export function pidfdGetfd(pidfd: number, targetFd: number): number {
  return checked(load().pidfdGetfd(pidfd, targetFd, 0));
}

/** Sends `signal` (a number, os.constants.signals) to the process of `pidfd`; 0 or -errno. */
export function pidfdSendSignal(pidfd: number, signal: number): number {
  return checked(load().pidfdSendSignal(pidfd, signal, null, 0));
}

/**
 * The state letter of `pid`'s main thread from /proc/PID/stat (R running, S sleeping,
 * D uninterruptible, T stopped by a signal, t stopped by a tracer, Z zombie, X dead…), or
 * undefined when the process is gone or the line cannot be read.
 *
 * The line is `pid (comm) state …` and comm (the executable's name, up to 15 bytes, chosen by
 * the process) may hold spaces and parentheses, so the state is the field after the LAST ')'.
 */
export function processState(pid: number): string | undefined {
  if (!Number.isSafeInteger(pid) || pid <= 0) return undefined;
  let line: string;
  try {
    line = readFileSync(`/proc/${pid}/stat`, 'latin1');
  } catch {
    return undefined;
  }
  const commEnd = line.lastIndexOf(')');
  if (commEnd < 0 || line[commEnd + 1] !== ' ') return undefined;
  const state = line[commEnd + 2];
  return state !== undefined && /^[A-Za-z]$/.test(state) ? state : undefined;
}
