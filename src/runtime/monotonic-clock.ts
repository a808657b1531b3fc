/**
 * Milliseconds from a clock that never jumps: lifetimes (cache entries, remembered failures)
 * must not be stretched or cut when an admin or NTP steps the wall clock.
 */
import { performance } from 'node:perf_hooks';

export function monotonicMs(): number {
  return performance.now();
}
