/**
 * A log line that a flood cannot multiply: the first event is reported at once, later ones
 * are counted and reported together at most once per period (the tally is written when the
 * period ends, so the last burst is never left unsaid).
 */
export class RateLimitedReport {
  private count = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly periodMs: number,
    /** Writes the line for `count` events since the last one. */
    private readonly report: (count: number) => void,
  ) {}

  /** One more event. */
  note(): void {
    this.count++;
    if (!this.timer) this.reportAndWait();
  }

  private reportAndWait(): void {
    this.report(this.count);
    this.count = 0;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      if (this.count > 0) this.reportAndWait();
    }, this.periodMs);
    this.timer.unref();
  }
}
