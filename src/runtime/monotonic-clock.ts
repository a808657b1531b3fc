/**
 * Milliseconds from a clock that never jumps: lifetimes (cache entries, remembered failures)
 * must not be stretched or cut when an admin or NTP steps the wall clock.
 */
import { performance } from 'node:perf_hooks';

export function monotonicMs(): number {
  return performance.now();
}

/**
 * Milliseconds of CLOCK_MONOTONIC itself, the same in every process of the machine (unlike
 * performance.now(), which counts from this process's start): for times kept in memory shared
 * by the primary and its workers.
 */
export function systemMonotonicMs(): number {
  return Number(process.hrtime.bigint()) / 1e6;
}
