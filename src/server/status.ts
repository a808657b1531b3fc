/**
 * The status line logged on SIGUSR1 (`kill -USR1 $(cat /run/saslauthd/saslauthd.pid)`),
 * one line of key=value pairs so it greps and parses easily:
 *   status: workers=5 busy=1 queued=0 connections=3 ok=120 no=7 cache=on entries=40
 *   hits=95 misses=32 hit_rate=74.8% respawns=0 timeouts=0 crashes=0 uptime=3600s
 */
import type { PoolStats } from '../workers/pool.js';
import type { CacheStats } from './credential-cache.js';

export interface StatusInputs {
  readonly pool: PoolStats;
  readonly requests: { readonly ok: number; readonly no: number };
  readonly connections: number;
  readonly cache: CacheStats | undefined;
  readonly uptimeSeconds: number;
}

export function statusLine({ pool, requests, connections, cache, uptimeSeconds }: StatusInputs): string {
  const parts = [
    `workers=${pool.workers}`,
    `busy=${pool.busy}`,
    `queued=${pool.queued}`,
    `connections=${connections}`,
    `ok=${requests.ok}`,
    `no=${requests.no}`,
  ];
  if (cache) {
    const lookups = cache.hits + cache.misses;
    const rate = lookups === 0 ? 0 : (100 * cache.hits) / lookups;
    parts.push('cache=on', `entries=${cache.entries}`, `hits=${cache.hits}`, `misses=${cache.misses}`, `hit_rate=${rate.toFixed(1)}%`);
  } else {
    parts.push('cache=off');
  }
  parts.push(`respawns=${pool.respawns}`, `timeouts=${pool.timeouts}`, `crashes=${pool.crashes}`, `uptime=${Math.floor(uptimeSeconds)}s`);
  return `status: ${parts.join(' ')}`;
}
