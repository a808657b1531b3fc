/**
 * The worker pool: N preforked worker processes, a FIFO of jobs, and the rules that make it
 * hold up where the C daemon does not. With --idle-workers below N, only that many stay
 * started without work: the others start when jobs wait and exit after a minute idle.
 *   - A job goes only to an idle worker (the C daemon's accept lock gives the same property).
 *   - Every job has one deadline, from submission: queued or running, its client gets an
 *     answer by then. A worker still running a job at the deadline is killed and replaced.
 *   - A worker that dies is replaced; its in-flight job is answered `NO`.
 *   - A worker may be recycled after a number of jobs (PAM modules that leak).
 *   - `-n 0`: no resident workers; a fresh worker per job, retired after it (the C daemon's
 *     fork-per-connection mode), with a cap on how many run at once.
 * This file joins two halves that know nothing of processes' insides: job-queue.ts (lanes,
 * bounds, deadlines, answers) and worker-lifecycle.ts (starting, replacing, retiring workers).
 * Both take injected timers, and the lifecycle an injected worker starter, so the whole pool
 * runs in unit tests with fake workers (test/worker-pool-units.test.ts).
 */
import type { SocketPoller } from '../native/socket-poller.js';
import type { Logger } from '../log/logger.js';
import { systemTimers, type Timers } from '../runtime/timers.js';
import type { WorkerSettings } from './worker-settings.js';
import { serializeWorkerSettings } from './worker-settings.js';
import { WorkerProcess, type WorkerHandle } from './worker-process.js';
import type { FastPathHub } from './fast-path-hub.js';
import { JobQueue, POOL_REPLY, poolAnswer, type JobLane, type JobOutcome, type PoolJob } from './job-queue.js';
import { WorkerLifecycle, type WorkerStarter, type WorkerState } from './worker-lifecycle.js';

export { POOL_REPLY, type JobLane, type JobOutcome, type PoolJob } from './job-queue.js';
export type { WorkerState, WorkerStarter } from './worker-lifecycle.js';

/** The pool's rules, whatever its workers are. */
export interface PoolLimits {
  /** Resident workers (`-n`); 0 = a fresh worker per job. */
  readonly size: number;
  /** Workers kept started without work (≤ size); the others start on demand. */
  readonly idleWorkers: number;
  /** An on-demand worker without a job for this long stops. */
  readonly workerIdleTimeoutMs: number;
  /** Deadline of a job from submission to answer. */
  readonly jobTimeoutMs: number;
  /** Jobs waiting for a worker beyond this are answered `NO` at once. */
  readonly maxQueuedJobs: number;
  /** Recycle a worker after this many jobs; 0 = never. */
  readonly maxJobsPerWorker: number;
  /** With size 0: how many one-job workers may run at once. */
  readonly maxPerRequestWorkers: number;
  readonly log: Logger;
}

/** The daemon's pool: limits, and what its worker processes are started with. */
export interface PoolOptions extends PoolLimits {
  readonly workerScript: string;
  readonly settings: WorkerSettings;
  /** Where the workers' channels are watched (the front door's poller). */
  readonly poller: SocketPoller;
  /** With -n ≥ 1: workers answer clients themselves; the hub starts them and keeps their deadlines. */
  readonly fastPath?: FastPathHub | undefined;
}

/** What a unit test replaces: how workers start, and the clock and timers. */
export interface PoolSeams {
  readonly startWorker: WorkerStarter;
  readonly timers: Timers;
}

export interface PoolStats {
  readonly workers: number;
  readonly busy: number;
  /** Ready and without a job. */
  readonly idle: number;
  readonly queued: number;
  /** Workers started after the initial pool: replacements, recycling, `-n 0` workers. */
  readonly respawns: number;
  /** Every worker started since the daemon started (the initial pool included). */
  readonly starts: number;
  readonly timeouts: number;
  readonly crashes: number;
}

export class WorkerPool {
  private readonly queue: JobQueue;
  private readonly lifecycle: WorkerLifecycle;
  private readonly fastPath: FastPathHub | undefined;
  private stopped = false;

  /** Worker processes (WorkerProcess), real timers: the daemon's pool. */
  constructor(options: PoolOptions);
  /** Injected workers and timers: the same pool, for unit tests. */
  constructor(limits: PoolLimits, seams: PoolSeams);
  constructor(limits: PoolLimits | PoolOptions, seams?: PoolSeams) {
    const { startWorker, timers } = seams ?? { startWorker: processStarter(limits as PoolOptions), timers: systemTimers };
    const { log, jobTimeoutMs } = limits;
    this.fastPath = (limits as PoolOptions).fastPath;
    const hub = this.fastPath;
    this.queue = new JobQueue({
      jobTimeoutMs,
      maxQueuedJobs: limits.maxQueuedJobs,
      log,
      timers,
      onOverdue: (job) => this.lifecycle.killRunning(job),
    });
    this.lifecycle = new WorkerLifecycle(
      {
        ...pickLifecycleLimits(limits),
        jobTimeoutMs,
        log,
        timers,
        startWorker,
        ...(hub ? { fastPathActivity: (worker: WorkerHandle) => hub.activityOf(worker as WorkerProcess) } : {}),
      },
      {
        startableJobs: (repeatsRunning) => this.queue.startable(repeatsRunning),
        workerIdle: () => this.dispatch(),
        jobEnded: (job, outcome) => this.queue.settle(job, outcome),
        abortStart: () => this.stop(0),
      },
    );
  }

  /**
   * Starts one worker and resolves once it is ready (with -n 0: a probe worker, once it has
   * exited again). Rejects, stopping everything, when the mechanism cannot start in a worker.
   */
  start(): Promise<void> {
    return this.lifecycle.start();
  }

  /** Runs a job on the next idle worker. Always resolves, with `NO …` when it must. */
  submit(job: PoolJob, lane: JobLane = 'normal'): Promise<JobOutcome> {
    if (this.stopped) return Promise.resolve(poolAnswer(POOL_REPLY.shuttingDown));
    const outcome = this.queue.add(job, lane);
    this.dispatch();
    return outcome;
  }

  /**
   * Replaces every worker with a fresh one — idle ones now, busy ones once their job is
   * done — so PAM configuration changes and module upgrades take effect (SIGHUP).
   * Returns how many workers are being replaced.
   */
  recycle(): number {
    return this.lifecycle.recycle();
  }

  stats(): PoolStats {
    const { workers, busy, idle } = this.lifecycle.stats();
    const { respawns, starts, crashes } = this.lifecycle.counters;
    const timeouts = this.queue.timeouts + (this.fastPath?.timeouts ?? 0);
    return { workers, busy, idle, queued: this.queue.waiting, respawns, starts, timeouts, crashes };
  }

  /** A worker asked to be replaced (--max-jobs-per-worker reached on its fast path). */
  retireWorker(worker: WorkerHandle): void {
    this.lifecycle.retireWorker(worker);
  }

  /** Gives waiting jobs to workers that can take them now (workers' own checks may have ended). */
  retryDispatch(): void {
    if (!this.stopped) this.dispatch();
  }

  /** A worker being killed by the fast path's deadline: replaced, not counted as a crash. */
  markKilled(worker: WorkerHandle): void {
    this.lifecycle.markKilled(worker);
  }

  workerStates(): WorkerState[] {
    return this.lifecycle.workerStates();
  }

  /**
   * Lets queued and running jobs finish for up to `graceMs`, answers what is left with `NO`,
   * then stops every worker (SIGKILL for those still there at `deadline`, a Date.now() time).
   */
  async stop(graceMs: number, deadline?: number): Promise<void> {
    this.fastPath?.quiesce();
    await this.queue.allSettled(graceMs);
    this.stopped = true;
    this.fastPath?.stop();
    this.queue.answerWaiting(poolAnswer(POOL_REPLY.shuttingDown));
    await this.lifecycle.stop(deadline);
  }

  /** Gives waiting jobs to idle workers, then lets the lifecycle start what the rest need. */
  private dispatch(): void {
    while (this.lifecycle.idleCount > 0) {
      const job = this.queue.take(this.lifecycle.repeatsRunning());
      if (!job) break;
      this.lifecycle.run(job);
    }
    this.lifecycle.ensureCapacity();
  }
}

function processStarter(options: PoolOptions): WorkerStarter {
  const hub = options.fastPath;
  if (hub) return () => hub.startWorker();
  const settingsJson = serializeWorkerSettings(options.settings);
  return () => new WorkerProcess(options.workerScript, settingsJson, options.poller);
}

function pickLifecycleLimits(limits: PoolLimits): Pick<PoolLimits, 'size' | 'idleWorkers' | 'workerIdleTimeoutMs' | 'maxJobsPerWorker' | 'maxPerRequestWorkers'> {
  const { size, idleWorkers, workerIdleTimeoutMs, maxJobsPerWorker, maxPerRequestWorkers } = limits;
  return { size, idleWorkers, workerIdleTimeoutMs, maxJobsPerWorker, maxPerRequestWorkers };
}
