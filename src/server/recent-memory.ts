/**
 * A bounded memory of recent events by key: "was this seen within the last `windowMs`?".
 * Beyond `capacity` keys the oldest is forgotten first, so a flood of new keys costs a
 * bounded amount of memory (and can only make the daemon forget, never wrongly remember).
 */
import { monotonicMs } from '../runtime/monotonic-clock.js';

export class RecentMemory {
  /** Key → monotonic time of the last note; Map order is oldest note first. */
  private readonly seen = new Map<string, number>();

  constructor(
    private readonly windowMs: number,
    private readonly capacity: number,
    private readonly now: () => number = monotonicMs,
  ) {}

  note(key: string): void {
    this.seen.delete(key); // re-inserted last
    if (this.seen.size >= this.capacity) {
      const oldest = this.seen.keys().next().value;
      if (oldest !== undefined) this.seen.delete(oldest);
    }
    this.seen.set(key, this.now());
  }

  has(key: string): boolean {
    const at = this.seen.get(key);
    if (at === undefined) return false;
    if (this.now() - at < this.windowMs) return true;
    this.seen.delete(key);
    return false;
  }

  forget(key: string): void {
    this.seen.delete(key);
  }

  get size(): number {
    return this.seen.size;
  }
}
