/**
 * What an admin can ask of the running primary (saslauthdctl over the control socket, the
 * metrics listener, SIGUSR1 and SIGHUP): one place that reads the daemon's state and acts
 * on it, so the signal and the command always do and report the same thing.
 */
import type { Logger } from '../log/logger.js';
import { daemonMetricFamilies, type DaemonSnapshot } from '../metrics/daemon-metrics.js';
import { renderMetrics, type ExpositionFormat } from '../metrics/exposition.js';
import type { RequestMetrics } from '../shared/request-counters.js';
import type { Authenticator } from '../server/authenticator.js';
import type { CredentialCache, UserFilter } from '../server/credential-cache.js';
import type { FrontDoor } from '../server/front-door.js';
import type { LoginScheduler } from '../server/login-scheduler.js';
import { statusLine } from '../server/status.js';
import type { PoolStats, WorkerPool, WorkerState } from '../workers/pool.js';

export interface OperationsParts {
  readonly version: string;
  readonly mechanism: string;
  readonly pool: WorkerPool;
  readonly authenticator: Authenticator;
  readonly scheduler: LoginScheduler;
  readonly front: FrontDoor;
  readonly cache: CredentialCache | undefined;
  readonly metrics: RequestMetrics;
  readonly log: Logger;
  /** True once shutdown started: no fresh workers for a daemon that is going away. */
  readonly stopping: () => boolean;
}

/** `saslauthdctl status --json`. */
export interface StatusReport {
  readonly line: string;
  readonly pid: number;
  readonly version: string;
  readonly mechanism: string;
  readonly uptimeSeconds: number;
  readonly requests: { readonly ok: number; readonly no: number; readonly notChecked: number };
  readonly connections: number;
  readonly pool: PoolStats;
  readonly workerStates: readonly WorkerState[];
  readonly cache: { readonly entries: number; readonly capacity: number; readonly hits: number; readonly misses: number } | null;
}

export interface ReloadResult {
  /** Entries flushed; null without `-c`. */
  readonly flushed: number | null;
  readonly recycled: number;
  readonly text: string;
}

export class Operations {
  /** Unix time of the start, in seconds. */
  private readonly startTimeSeconds = Math.floor(Date.now() / 1000);

  constructor(private readonly parts: OperationsParts) {}

  /** The SIGUSR1 line. */
  statusLine(): string {
    const { pool, front, cache, metrics } = this.parts;
    return statusLine({
      pool: pool.stats(),
      requests: metrics.totals(),
      connections: front.open.size,
      cache: cache?.stats(),
      uptimeSeconds: process.uptime(),
    });
  }

  status(): StatusReport {
    const { pool, front, cache, version, mechanism, metrics } = this.parts;
    return {
      line: this.statusLine(),
      pid: process.pid,
      version,
      mechanism,
      uptimeSeconds: Math.floor(process.uptime()),
      requests: metrics.totals(),
      connections: front.open.size,
      pool: pool.stats(),
      workerStates: pool.workerStates(),
      cache: cache?.stats() ?? null,
    };
  }

  metricsText(format: ExpositionFormat): string {
    return renderMetrics(daemonMetricFamilies(this.snapshot()), format);
  }

  /** Empties the credential cache, or one user's entries; how many were removed (null without -c). */
  flush(filter?: UserFilter): number | null {
    const cache = this.parts.cache;
    if (!cache) return null;
    return filter ? cache.flushUser(filter) : cache.flush();
  }

  /**
   * What SIGHUP does: forget cached credentials and start fresh workers (PAM modules are
   * loaded once per worker, so a changed PAM configuration or an upgraded module applies
   * now). Logged as `<origin>: …`.
   */
  reload(origin: string): ReloadResult | undefined {
    if (this.parts.stopping()) return undefined;
    const flushed = this.flush();
    const recycled = this.parts.pool.recycle();
    const text = `${flushed === null ? '' : `credential cache flushed (${flushed} entries), `}${recycled} workers recycled`;
    this.parts.log.info(`${origin}: ${text}`);
    return { flushed, recycled, text };
  }

  private snapshot(): DaemonSnapshot {
    const { pool, authenticator, scheduler, front, cache, metrics, version, mechanism } = this.parts;
    return {
      version,
      mechanism,
      startTimeSeconds: this.startTimeSeconds,
      requests: metrics.snapshot(),
      pool: pool.stats(),
      waitingForTurn: scheduler.stats().waiting,
      cache: cache?.stats(),
      connectionsOpen: front.open.size,
      connectionsRefused: front.refused,
      failureDelaysPending: authenticator.pendingFailureDelays,
    };
  }
}
