/**
 * The clock and timers of logic that must be unit-testable without waiting: code takes a
 * `Timers` and production passes `systemTimers`; a test passes a manual clock it advances.
 */
import { monotonicMs } from './monotonic-clock.js';

/** Cancels a timer; calling it after the timer fired, or twice, does nothing. */
export type CancelTimer = () => void;

export interface Timers {
  /** Milliseconds from a clock that never jumps (monotonicMs in production). */
  now(): number;
  /** Calls `callback` once, `ms` from now. */
  after(ms: number, callback: () => void): CancelTimer;
  /** Calls `callback` every `ms`; this timer alone does not keep the process running. */
  every(ms: number, callback: () => void): CancelTimer;
  /** Calls `callback` once the current event-loop turn is over (setImmediate). */
  soon(callback: () => void): void;
}

export const systemTimers: Timers = {
  now: monotonicMs,
  after(ms, callback) {
    const timer = setTimeout(callback, ms);
    return () => clearTimeout(timer);
  },
  every(ms, callback) {
    const timer = setInterval(callback, ms);
    timer.unref();
    return () => clearInterval(timer);
  },
  soon(callback) {
    setImmediate(callback);
  },
};
