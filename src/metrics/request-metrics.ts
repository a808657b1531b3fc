/**
 * What the per-request counters count, and the shape of what they report. The counters
 * themselves (RequestMetrics) live in memory shared by every process of the daemon:
 * src/shared/request-counters.ts.
 */

/** `not_checked`: the daemon answered NO itself (busy, timed out, worker died, shutting down). */
export type RequestResult = 'ok' | 'no' | 'not_checked';
export const REQUEST_RESULTS: readonly RequestResult[] = ['ok', 'no', 'not_checked'];

/** Upper bounds in seconds: a cache hit (~0.1 ms) up to the default --job-timeout (30 s). */
export const LATENCY_BUCKETS_SECONDS: readonly number[] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

/**
 * Service names come from clients: past this many distinct ones, the rest are counted under
 * OTHER_SERVICE, so a client cannot grow the metrics (and Prometheus's series) without bound.
 */
export const MAX_SERVICE_LABELS = 64;
export const OTHER_SERVICE = '(other)';

export type ResultCounts = Record<RequestResult, number>;

export interface LatencySnapshot {
  /** Cumulative counts, one per LATENCY_BUCKETS_SECONDS entry. */
  readonly buckets: readonly number[];
  readonly count: number;
  readonly sumSeconds: number;
}

export interface RequestSnapshot {
  readonly byService: ReadonlyMap<string, Readonly<ResultCounts>>;
  readonly latency: LatencySnapshot;
}

/** Replies so far, all services together (saslauthdctl status, the SIGUSR1 line). */
export interface RequestTotals {
  readonly ok: number;
  /** Every NO, those the daemon gave itself included. */
  readonly no: number;
  /** The NOs the daemon gave itself (busy, timed out, worker died, shutting down). */
  readonly notChecked: number;
}
