/**
 * Per-request counters and the latency histogram, kept in the primary: workers come and go
 * (crashes, recycling, SIGHUP), these live as long as the daemon, as Prometheus expects of
 * a counter.
 */
import { printable } from '../log/logger.js';

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

export class RequestMetrics {
  private readonly byService = new Map<string, ResultCounts>();
  /** Per-bucket (not cumulative) counts; the last slot is +Inf. */
  private readonly bucketCounts = new Array<number>(LATENCY_BUCKETS_SECONDS.length + 1).fill(0);
  private count = 0;
  private sumSeconds = 0;

  record(result: RequestResult, service: Buffer, elapsedMs: number): void {
    this.countFor(printable(service))[result]++;
    const seconds = Math.max(0, elapsedMs) / 1000;
    let index = LATENCY_BUCKETS_SECONDS.findIndex((bound) => seconds <= bound);
    if (index === -1) index = LATENCY_BUCKETS_SECONDS.length;
    this.bucketCounts[index]!++;
    this.count++;
    this.sumSeconds += seconds;
  }

  snapshot(): RequestSnapshot {
    const byService = new Map<string, ResultCounts>();
    for (const [service, counts] of this.byService) byService.set(service, { ...counts });
    const buckets: number[] = [];
    let running = 0;
    for (let index = 0; index < LATENCY_BUCKETS_SECONDS.length; index++) {
      running += this.bucketCounts[index]!;
      buckets.push(running);
    }
    return { byService, latency: { buckets, count: this.count, sumSeconds: this.sumSeconds } };
  }

  private countFor(service: string): ResultCounts {
    let counts = this.byService.get(service);
    if (!counts) {
      const label = this.byService.size >= MAX_SERVICE_LABELS ? OTHER_SERVICE : service;
      counts = this.byService.get(label);
      if (!counts) {
        counts = { ok: 0, no: 0, not_checked: 0 };
        this.byService.set(label, counts);
      }
    }
    return counts;
  }
}
