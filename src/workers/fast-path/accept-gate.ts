/**
 * Whether a worker takes connections from the listening socket, and how it reacts when
 * accept4 fails: out of descriptors (EMFILE…) leaves the socket readable, so watching it on
 * would spin — the worker stops watching for ACCEPT_PAUSE_MS (the primary, and the backlog,
 * hold the clients meanwhile). Shared by the blocking and the evented worker loops.
 */
import { constants } from 'node:os';
import { EAGAIN, acceptConnection, errnoName } from '../../native/posix-sockets.js';
import type { Logger } from '../../log/logger.js';
import { RateLimitedReport } from '../../log/rate-limited-report.js';
import { monotonicMs } from '../../runtime/monotonic-clock.js';

/** Out of descriptors: a worker stops accepting this long. */
export const ACCEPT_PAUSE_MS = 100;
/** accept4 failures that concern one connection only; the next accept may succeed. */
const TRANSIENT_ACCEPT_ERRORS = new Set([constants.errno.ECONNABORTED, constants.errno.EINTR, constants.errno.EPROTO]);

export type AcceptResult = { readonly fd: number } | 'none' | 'pause';

/** At most one accept-failure line per this period per worker, with the count. */
const ACCEPT_ERROR_LOG_PERIOD_MS = 1_000;

/**
 * Accepts one connection. Out of descriptors (or memory), the caller pauses; the failure is
 * logged in the primary's words (`socket accept failure: EMFILE`), at most once a second.
 */
export class AcceptGate {
  private lastError = '';
  private readonly failures: RateLimitedReport;

  constructor(log: Logger) {
    this.failures = new RateLimitedReport(ACCEPT_ERROR_LOG_PERIOD_MS, (count) =>
      log.error(`socket accept failure: ${count > 1 ? `${this.lastError} (${count} times)` : this.lastError}`),
    );
  }

  acceptOne(listenFd: number): AcceptResult {
    const fd = acceptConnection(listenFd);
    if (fd >= 0) return { fd };
    if (fd === -EAGAIN || TRANSIENT_ACCEPT_ERRORS.has(-fd)) return 'none';
    this.lastError = errnoName(-fd);
    this.failures.note();
    return 'pause';
  }
}

/** The jobs a worker did (channel and fast path): past --max-jobs-per-worker it asks to be replaced. */
export class JobBudget {
  private done = 0;
  constructor(private readonly limit: number) {}

  /** Counts one job; true exactly once, when the limit is reached. */
  spend(): boolean {
    this.done++;
    return this.limit > 0 && this.done === this.limit;
  }
}

export function resumeTime(): number {
  return monotonicMs() + ACCEPT_PAUSE_MS;
}
