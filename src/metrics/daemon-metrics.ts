/**
 * The daemon's metric families, from one snapshot of its state (see control/operations.ts
 * for where each number comes from). Names follow Prometheus conventions: `saslauthd_`
 * prefix, base units (seconds), counters that only grow for the daemon's life.
 */
import type { CacheStats } from '../server/credential-cache.js';
import type { PoolStats } from '../workers/pool.js';
import type { MetricFamily, Sample } from './exposition.js';
import { LATENCY_BUCKETS_SECONDS, REQUEST_RESULTS, type RequestSnapshot } from './request-metrics.js';

export interface DaemonSnapshot {
  readonly version: string;
  /** `-a` */
  readonly mechanism: string;
  /** Unix time in seconds. */
  readonly startTimeSeconds: number;
  readonly requests: RequestSnapshot;
  readonly pool: PoolStats;
  /** Requests waiting for their login's turn (login-scheduler.ts), before the pool's queue. */
  readonly waitingForTurn: number;
  readonly cache: CacheStats | undefined;
  readonly connectionsOpen: number;
  readonly connectionsRefused: number;
  readonly failureDelaysPending: number;
}

export function daemonMetricFamilies(snapshot: DaemonSnapshot): MetricFamily[] {
  const { pool, cache, requests } = snapshot;
  const requestSamples: Sample[] = [];
  for (const [service, counts] of [...requests.byService].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    for (const result of REQUEST_RESULTS) {
      requestSamples.push({ suffix: '_total', labels: { mechanism: snapshot.mechanism, service, result }, value: counts[result] });
    }
  }
  const latency = requests.latency;
  const latencySamples: Sample[] = LATENCY_BUCKETS_SECONDS.map((bound, index) => ({
    suffix: '_bucket',
    labels: { le: String(bound) },
    value: latency.buckets[index]!,
  }));
  latencySamples.push(
    { suffix: '_bucket', labels: { le: '+Inf' }, value: latency.count },
    { suffix: '_count', value: latency.count },
    { suffix: '_sum', value: latency.sumSeconds },
  );
  const gauge = (name: string, help: string, value: number): MetricFamily => ({ name, type: 'gauge', help, samples: [{ suffix: '', value }] });
  const counter = (name: string, help: string, value: number): MetricFamily => ({ name, type: 'counter', help, samples: [{ suffix: '_total', value }] });
  return [
    { name: 'saslauthd_build', type: 'info', help: 'Version of saslauthd-ts.', samples: [{ suffix: '_info', labels: { version: snapshot.version }, value: 1 }] },
    { name: 'saslauthd_start_time_seconds', type: 'gauge', unit: 'seconds', help: 'When the daemon started, in seconds since the Unix epoch.', samples: [{ suffix: '', value: snapshot.startTimeSeconds }] },
    {
      name: 'saslauthd_requests',
      type: 'counter',
      help: 'Requests answered, by result (ok, no, not_checked: the daemon answered NO itself), mechanism and service.',
      samples: requestSamples,
    },
    { name: 'saslauthd_request_duration_seconds', type: 'histogram', unit: 'seconds', help: 'Time from a complete request to its answer.', samples: latencySamples },
    gauge('saslauthd_cache_enabled', 'Whether the credential cache (-c) is on.', cache ? 1 : 0),
    gauge('saslauthd_cache_entries', 'Credential cache entries.', cache?.entries ?? 0),
    gauge('saslauthd_cache_capacity', 'Credential cache capacity in entries (-s).', cache?.capacity ?? 0),
    counter('saslauthd_cache_hits', 'Requests answered from the credential cache.', cache?.hits ?? 0),
    counter('saslauthd_cache_misses', 'Credential cache lookups that found no entry or a different password.', cache?.misses ?? 0),
    gauge('saslauthd_queued_jobs', 'Requests waiting for a free worker.', pool.queued),
    gauge('saslauthd_waiting_requests', "Requests waiting for their login's turn (login-scheduler.ts).", snapshot.waitingForTurn),
    {
      name: 'saslauthd_workers',
      type: 'gauge',
      help: 'Worker processes, by state (starting or retiring ones are in neither).',
      samples: [
        { suffix: '', labels: { state: 'busy' }, value: pool.busy },
        { suffix: '', labels: { state: 'idle' }, value: pool.idle },
      ],
    },
    counter('saslauthd_worker_starts', 'Worker processes started, the initial pool included.', pool.starts),
    counter('saslauthd_worker_crashes', 'Worker processes that exited unexpectedly.', pool.crashes),
    counter('saslauthd_worker_timeouts', 'Requests not answered by --job-timeout (the worker was replaced if it had the job).', pool.timeouts),
    gauge('saslauthd_connections_open', 'Client connections open.', snapshot.connectionsOpen),
    counter('saslauthd_connections_refused', 'Client connections refused because --max-connections were open.', snapshot.connectionsRefused),
    gauge('saslauthd_failure_delays_pending', 'Failure replies waiting out the delay the mechanism asked for.', snapshot.failureDelaysPending),
  ];
}
