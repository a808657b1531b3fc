/**
 * What the primary does to a worker whose check ran past --job-timeout on the fast path
 * (the worker accepted the client itself, so only the worker holds the connection): freeze
 * the worker, make sure it is still on that same check, take a copy of its client descriptor
 * (pidfd_getfd), kill it. The primary then answers the client `NO authentication timed out`
 * through the copy; the kill closes only the worker's copy.
 *
 * Outcomes (the return value):
 *   - a descriptor (≥ 0): the client connection, now the primary's (close-on-exec; the same
 *     open file as the worker's, so its flags such as O_NONBLOCK are the worker's); the worker
 *     was sent SIGKILL and will be replaced as after any death;
 *   - 'finished': once stopped, the worker's activity record showed another check (other
 *     sequence) or another state: it finished the late check between the supervisor's look and
 *     the stop, and answered that client itself. It was sent SIGCONT and carries on; nothing
 *     was taken;
 *   - 'killed': the worker was sent SIGKILL without its descriptor being taken — it did not
 *     stop within STOP_WAIT_MS (e.g. stuck in uninterruptible sleep), it had already exited,
 *     pidfd_open or pidfd_getfd failed (no such descriptor, no rights), or reading the record
 *     threw. Its client sees the connection closed without a reply, as the C daemon's
 *     clients do when a process dies.
 *
 * Every signal goes through a pidfd opened first, so none can reach a process that reused the
 * pid (pidfd_open failing for a reason other than ESRCH is the one case that falls back to
 * kill(2) by pid). The worker is never left stopped: every path ends in SIGCONT or SIGKILL.
 * The record is read only while the worker is stopped, so its writer cannot change it during
 * the read; a stopped main thread is enough, as only the worker's JavaScript thread writes the
 * record. The worker's side of the bargain: it leaves the 'checking' state (or moves to the
 * next sequence) BEFORE it writes a reply, so a worker stopped in 'checking' has sent nothing
 * and the primary's `NO authentication timed out` is the client's only reply.
 *
 * The process operations are injected (SeizeOperations) so the sequence is tested without
 * processes; `systemSeizeOperations` are the real ones.
 */
import { constants } from 'node:os';
import { performance } from 'node:perf_hooks';
import { pidfdGetfd, pidfdOpen, pidfdSendSignal, processState } from '../native/pidfd.js';
import { closeFd } from '../native/posix-sockets.js';

/** How long a SIGSTOPped worker has to show the stopped state: a runnable process stops within a tick. */
export const STOP_WAIT_MS = 100;
/** Pause between two looks at the worker's state while waiting for it to stop. */
export const STOP_POLL_MS = 1;

/** The worker's published activity, as the primary reads it from shared memory. */
export interface ActivityRecord {
  /** Sequence number of the worker's current (or last) check. */
  readonly seq: number;
  /** 'checking' while the mechanism runs; anything else means the check is over. */
  readonly state: string;
  /** The client connection's descriptor number in the worker. */
  readonly fd: number;
}

export type SeizeOutcome = number | 'finished' | 'killed';

export interface SeizeOperations {
  /** A pidfd for the process, or -errno. */
  openPidfd(pid: number): number;
  /** Sends a signal through a pidfd; 0 or -errno. */
  signal(pidfd: number, signal: number): number;
  /** SIGKILL by pid, for when no pidfd could be opened; must not throw. */
  killByPid(pid: number): void;
  /** The state letter of the process (see pidfd.ts processState), undefined when gone. */
  state(pid: number): string | undefined;
  /** A copy of the process's descriptor `targetFd`, or -errno. */
  getfd(pidfd: number, targetFd: number): number;
  closeFd(fd: number): void;
  /** Blocks the calling thread for about `ms` milliseconds. */
  sleepMs(ms: number): void;
  /** A monotonic clock in milliseconds. */
  nowMs(): number;
}

const { SIGSTOP, SIGCONT, SIGKILL } = constants.signals;
const { ESRCH } = constants.errno;

/** States in which a process will never stop: it has exited. */
function isGone(state: string | undefined): boolean {
  return state === undefined || state === 'Z' || state === 'X';
}

/** Whether the process reached a stopped state within STOP_WAIT_MS; false as soon as it is gone. */
function waitUntilStopped(pid: number, ops: SeizeOperations): boolean {
  const deadline = ops.nowMs() + STOP_WAIT_MS;
  for (;;) {
    const state = ops.state(pid);
    if (state === 'T' || state === 't') return true;
    if (isGone(state) || ops.nowMs() >= deadline) return false;
    ops.sleepMs(STOP_POLL_MS);
  }
}

/**
 * Takes the client connection of the worker `pid`, whose check number `expectedSeq` is late.
 * `readRecord` reads the worker's activity record; it is called once, while the worker is
 * stopped. Synchronous: blocks the caller for at most about STOP_WAIT_MS.
 *
 * `pid` must be a child whose exit this process has not seen: Node reaps a child and emits
 * its 'exit' in the same turn of the event loop, so until then the pid is still the worker's.
 */
export function seizeClient(
  pid: number,
  readRecord: () => ActivityRecord,
  expectedSeq: number,
  ops: SeizeOperations,
): SeizeOutcome {
  const pidfd = ops.openPidfd(pid);
  if (pidfd < 0) {
    // ESRCH: gone already (its descriptors closed with it). Otherwise (EMFILE…) it exists:
    // kill it by pid, the one signal not sent through a pidfd.
    if (pidfd !== -ESRCH) ops.killByPid(pid);
    return 'killed';
  }
  const kill = (): 'killed' => {
    ops.signal(pidfd, SIGKILL);
    return 'killed';
  };
  try {
    if (ops.signal(pidfd, SIGSTOP) < 0 || !waitUntilStopped(pid, ops)) return kill();
    let record: ActivityRecord;
    try {
      record = readRecord();
    } catch {
      return kill(); // never leave the worker stopped
    }
    if (record.seq !== expectedSeq || record.state !== 'checking') {
      ops.signal(pidfd, SIGCONT);
      return 'finished';
    }
    const seized = ops.getfd(pidfd, record.fd);
    kill();
    return seized >= 0 ? seized : 'killed';
  } finally {
    ops.closeFd(pidfd);
  }
}

/** A scratch word for Atomics.wait: nothing ever notifies it, so each wait lasts its full timeout. */
const sleepWord = new Int32Array(new SharedArrayBuffer(4));

/** The real operations: pidfds, /proc, signals, a blocking sleep. */
export const systemSeizeOperations: SeizeOperations = {
  openPidfd: pidfdOpen,
  signal: pidfdSendSignal,
  killByPid(pid) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone (ESRCH): nothing left to kill
    }
  },
  state: processState,
  getfd: pidfdGetfd,
  closeFd,
  sleepMs(ms) {
    Atomics.wait(sleepWord, 0, 0, ms);
  },
  nowMs: () => performance.now(),
};
