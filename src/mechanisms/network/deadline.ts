/**
 * The time budget of one request to a network backend: every wait (name lookup, connect,
 * handshake, each read) gets at most its own step timeout and never more than what is left
 * of the request's total, so the mechanism answers before the daemon's --job-timeout.
 */
export class Deadline {
  private readonly end: number;

  constructor(
    totalMs: number,
    private readonly stepTimeoutMs: number,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.end = now() + totalMs;
  }

  /** Milliseconds the next wait may take (0 when the request is out of time). */
  nextWaitMs(): number {
    return Math.max(0, Math.min(this.stepTimeoutMs, this.end - this.now()));
  }
}
