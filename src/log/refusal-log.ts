/**
 * Log lines for requests the daemon answers without checking them (busy, timed out,
 * shutting down…), rate-limited per kind: under overload they come by the thousand, exactly
 * when the primary's one thread has no time to spare for writing them. The first of a kind
 * is written at once, as it always was; the rest of that second are counted and summed up
 * in one line, which names the last of them.
 */
import { RateLimitedReport } from './rate-limited-report.js';

/** At most one line per kind per this period. */
const PERIOD_MS = 1_000;

export class RefusalLog<Line = string> {
  private readonly kinds = new Map<string, { report: RateLimitedReport; last: Line }>();

  /**
   * @param write writes one line
   * @param render the line for one event, or for `count` events whose last one is `detail`
   */
  constructor(
    private readonly write: (line: Line) => void,
    private readonly periodMs: number = PERIOD_MS,
  ) {}

  /** One refusal of `kind`; `single` is its own line, `summary(count)` the tally's. */
  note(kind: string, single: Line, summary: (count: number, last: Line) => Line): void {
    let entry = this.kinds.get(kind);
    if (!entry) {
      const created = {
        last: single,
        report: new RateLimitedReport(this.periodMs, (count) => this.write(count === 1 ? created.last : summary(count, created.last))),
      };
      entry = created;
      this.kinds.set(kind, entry);
    }
    entry.last = single;
    entry.report.note();
  }
}
