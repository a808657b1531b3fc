/**
 * A worker's accept: one connection at a time, and what it does when accept4 fails (see
 * native/accept-errors.ts: a pause of ACCEPT_PAUSE_MS, the primary and the backlog holding
 * the clients meanwhile). Shared by the blocking and the evented worker loops, with the
 * budget of --max-jobs-per-worker.
 */
import { EAGAIN, acceptConnection, errnoName } from '../../native/posix-sockets.js';
import { isTransientAcceptError } from '../../native/accept-errors.js';
import type { Logger } from '../../log/logger.js';
import { RateLimitedReport } from '../../log/rate-limited-report.js';

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
    if (fd === -EAGAIN || isTransientAcceptError(-fd)) return 'none';
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
