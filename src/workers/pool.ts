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
 */
import type { SocketPoller } from '../native/socket-poller.js';
import type { Logger } from '../log/logger.js';
import { RateLimitedReport } from '../log/rate-limited-report.js';
import { monotonicMs } from '../runtime/monotonic-clock.js';
import type { WorkerSettings } from './worker-settings.js';
import { serializeWorkerSettings } from './worker-settings.js';
import { WorkerProcess } from './worker-process.js';

export interface PoolJob {
  readonly login: Buffer;
  readonly password: Buffer;
  readonly service: Buffer;
  readonly realm: Buffer;
  /** Client host for PAM_RHOST; empty when the client sent none. */
  readonly remoteHost: Buffer;
}

/**
 * `repeat`: the same credentials were refused a moment ago (see server/repeat-failures.ts).
 * Such jobs run only when no other job waits, and on at most one worker at a time.
 */
export type JobLane = 'normal' | 'repeat';

export interface JobOutcome {
  readonly reply: string;
  /**
   * False when the pool answered instead of the mechanism (busy, timed out, worker died,
   * shutting down), or when the mechanism could not reach its backend (AuthResult.unavailable):
   * such a NO says nothing about the credentials.
   */
  readonly fromMechanism: boolean;
  /** Delay the mechanism asked for before a failure is answered (PAM fail delay). */
  readonly failDelayMs: number;
}

export interface PoolOptions {
  /** Resident workers (`-n`); 0 = a fresh worker per job. */
  readonly size: number;
  /** Workers kept started without work (≤ size); the others start on demand. */
  readonly idleWorkers: number;
  /** An on-demand worker without a job for this long stops. */
  readonly workerIdleTimeoutMs: number;
  readonly workerScript: string;
  readonly settings: WorkerSettings;
  /** Deadline of a job from submission to answer. */
  readonly jobTimeoutMs: number;
  /** Jobs waiting for a worker beyond this are answered `NO` at once. */
  readonly maxQueuedJobs: number;
  /** Recycle a worker after this many jobs; 0 = never. */
  readonly maxJobsPerWorker: number;
  /** With size 0: how many one-job workers may run at once. */
  readonly maxPerRequestWorkers: number;
  readonly log: Logger;
  /** Where the workers' channels are watched (the front door's poller). */
  readonly poller: SocketPoller;
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

/** One worker as `saslauthdctl status` shows it. */
export interface WorkerState {
  readonly pid: number;
  readonly state: 'starting' | 'idle' | 'busy' | 'retiring';
  readonly jobsDone: number;
  readonly uptimeSeconds: number;
}

/** Replies for jobs the pool itself has to answer. Clients only look at `NO`. */
export const POOL_REPLY = {
  timeout: 'NO authentication timed out',
  workerDied: 'NO authentication worker failed',
  busy: 'NO server busy',
  shuttingDown: 'NO server shutting down',
} as const;

/** Upper bound of the pause between attempts to start workers that keep failing at start. */
const MAX_RESPAWN_BACKOFF_MS = 10_000;
/** First pause after a worker failed to start; doubles while failures continue. */
const FIRST_RESPAWN_BACKOFF_MS = 100;
/** Repeats may wait in at most 1/REPEAT_QUEUE_SHARE of --max-queue, in a queue of their own. */
const REPEAT_QUEUE_SHARE = 4;
/** Workers that may run `repeat` jobs at once: the rest stay free for everybody else. */
const MAX_REPEAT_WORKERS = 1;
/** A worker not ready by then (a mechanism stuck in its setup) is killed and counts as a start failure. */
const WORKER_START_DEADLINE_MS = 30_000;
/** Idle workers are looked at for retirement this many times per --worker-idle-timeout. */
const IDLE_SWEEPS_PER_TIMEOUT = 4;
/** Overload log lines (queue full, no worker in time): at most one per this period each. */
const OVERLOAD_LOG_PERIOD_MS = 1_000;
/** How long stopped workers get to exit after their channel is closed, before SIGKILL. */
const WORKER_EXIT_GRACE_MS = 2_000;

interface Slot {
  readonly worker: WorkerProcess;
  state: 'starting' | 'idle' | 'busy' | 'retiring';
  job: QueuedJob | undefined;
  jobsDone: number;
  /** Retire once the running job is done (recycle()). */
  recycleAfterJob: boolean;
  /** monotonicMs() when it last became idle. */
  idleSince: number;
  /** monotonicMs() when it was started. */
  readonly startedAt: number;
}

interface QueuedJob {
  readonly id: number;
  readonly job: PoolJob;
  readonly lane: JobLane;
  readonly resolve: (outcome: JobOutcome) => void;
  readonly timer: NodeJS.Timeout;
  slot: Slot | undefined;
  settled: boolean;
}

export class WorkerPool {
  private readonly slots = new Set<Slot>();
  private readonly idle: Slot[] = [];
  private queue: QueuedJob[] = [];
  private repeatQueue: QueuedJob[] = [];
  private nextJobId = 1;
  private unsettled = 0;
  private stopped = false;
  private startFailures = 0;
  private spawnPausedUntil = 0;
  private spawnTimer: NodeJS.Timeout | undefined;
  private idleSweepTimer: NodeJS.Timeout | undefined;
  private whenIdle: (() => void) | undefined;
  private readonly settingsJson: string;
  private counters = { respawns: 0, starts: 0, timeouts: 0, crashes: 0 };
  private readonly maxQueuedRepeats: number;
  /** Until the first worker is ready, no other is started (see start()). */
  private starting = false;
  /** Spawns that build the initial pool; later ones replace or recycle a worker. */
  private initialSpawnsLeft: number;

  /** Overload lines: at most one a second each, with the count (the primary's thread is busy enough). */
  private readonly queueFull: RateLimitedReport;
  private readonly repeatQueueFull: RateLimitedReport;
  private readonly noWorkerInTime: RateLimitedReport;

  constructor(private readonly options: PoolOptions) {
    this.settingsJson = serializeWorkerSettings(options.settings);
    this.initialSpawnsLeft = Math.min(options.idleWorkers, options.size);
    this.maxQueuedRepeats = Math.max(1, Math.floor(options.maxQueuedJobs / REPEAT_QUEUE_SHARE));
    const { log, maxQueuedJobs, jobTimeoutMs } = options;
    const times = (count: number): string => (count === 1 ? '' : ` (${count} times)`);
    this.queueFull = new RateLimitedReport(OVERLOAD_LOG_PERIOD_MS, (count) =>
      log.error(`worker queue full (${maxQueuedJobs} waiting for a worker): request refused${times(count)}`),
    );
    this.repeatQueueFull = new RateLimitedReport(OVERLOAD_LOG_PERIOD_MS, (count) =>
      log.error(`worker queue full (${this.maxQueuedRepeats} repeated failures waiting for a worker): request refused${times(count)}`),
    );
    this.noWorkerInTime = new RateLimitedReport(OVERLOAD_LOG_PERIOD_MS, (count) =>
      log.error(`no worker became free within ${jobTimeoutMs} ms: request answered NO${times(count)}`),
    );
  }

  /**
   * Starts one worker and resolves once it is ready: the daemon can serve from then on, and
   * the other workers start right after (jobs queue meanwhile). Startup thus costs one
   * worker's start instead of N competing for two cores. Rejects, stopping everything, when
   * that worker cannot start the mechanism or dies before it is ready.
   */
  start(): Promise<void> {
    if (this.options.size === 0) return this.probe();
    this.starting = true;
    const first = this.spawn();
    return new Promise<void>((resolve, reject) => {
      const fail = (error: Error): void => {
        first.worker.removeAllListeners('ready');
        void this.stop(0).then(() => reject(error));
      };
      first.worker.once('ready', () => {
        this.starting = false;
        resolve();
        // The others start once the caller has had its turn to listen: spawn(2) is
        // synchronous, and four of them would delay the socket by tens of milliseconds.
        setImmediate(() => this.ensureCapacity());
        if (this.options.idleWorkers < this.options.size) {
          const period = Math.ceil(this.options.workerIdleTimeoutMs / IDLE_SWEEPS_PER_TIMEOUT);
          this.idleSweepTimer = setInterval(() => this.retireIdleExtras(), period);
          this.idleSweepTimer.unref();
        }
      });
      first.worker.once('failed', (reason) => fail(new Error(reason)));
      first.worker.once('exit', (code, signal) => {
        if (this.starting) fail(new Error(`worker ${first.worker.pid} exited during startup (${signal ?? `status ${code}`})`));
      });
    });
  }

  /**
   * -n 0 keeps no worker between requests. One is started anyway and let go once it is ready
   * (resolving when it has exited), so a mechanism that cannot start in a worker stops the
   * daemon's start, as with -n N, instead of failing every request.
   */
  private probe(): Promise<void> {
    this.starting = true;
    this.initialSpawnsLeft++; // part of the start, not a respawn
    const probe = this.spawn();
    return new Promise<void>((resolve, reject) => {
      const fail = (error: Error): void => {
        probe.worker.removeAllListeners('ready');
        void this.stop(0).then(() => reject(error));
      };
      probe.worker.once('ready', () => {
        this.starting = false;
        probe.worker.once('exit', () => resolve());
        this.retire(probe);
      });
      probe.worker.once('failed', (reason) => fail(new Error(reason)));
      probe.worker.once('exit', (code, signal) => {
        if (this.starting) fail(new Error(`worker ${probe.worker.pid} exited during startup (${signal ?? `status ${code}`})`));
      });
    });
  }

  /** Runs a job on the next idle worker. Always resolves, with `NO …` when it must. */
  submit(job: PoolJob, lane: JobLane = 'normal'): Promise<JobOutcome> {
    if (this.stopped) return Promise.resolve(poolAnswer(POOL_REPLY.shuttingDown));
    // Repeats have their own, smaller bound: they must never crowd out other requests.
    const waiting = lane === 'repeat' ? this.repeatQueue : this.queue;
    const bound = lane === 'repeat' ? this.maxQueuedRepeats : this.options.maxQueuedJobs;
    dropSettled(waiting);
    if (waiting.length >= bound) {
      (lane === 'repeat' ? this.repeatQueueFull : this.queueFull).note();
      return Promise.resolve(poolAnswer(POOL_REPLY.busy));
    }
    return new Promise((resolve) => {
      const queued: QueuedJob = {
        id: this.nextJobId,
        job,
        lane,
        resolve,
        timer: setTimeout(() => this.onDeadline(queued), this.options.jobTimeoutMs),
        slot: undefined,
        settled: false,
      };
      this.nextJobId = this.nextJobId >= 0xffffffff ? 1 : this.nextJobId + 1;
      this.unsettled++;
      (lane === 'repeat' ? this.repeatQueue : this.queue).push(queued);
      this.dispatch();
    });
  }

  /**
   * Replaces every worker with a fresh one — idle ones now, busy ones once their job is
   * done — so PAM configuration changes and module upgrades take effect (SIGHUP).
   * Returns how many workers are being replaced.
   */
  recycle(): number {
    let count = 0;
    for (const slot of [...this.slots]) {
      if (slot.state === 'retiring') continue;
      count++;
      if (slot.state === 'busy') slot.recycleAfterJob = true;
      else this.retire(slot);
    }
    return count;
  }

  stats(): PoolStats {
    let busy = 0;
    for (const slot of this.slots) if (slot.state === 'busy') busy++;
    const queued = this.queue.length + this.repeatQueue.length;
    return { workers: this.slots.size, busy, idle: this.idle.length, queued, ...this.counters };
  }

  workerStates(): WorkerState[] {
    const now = monotonicMs();
    return [...this.slots].map((slot) => ({
      pid: slot.worker.pid,
      state: slot.state,
      jobsDone: slot.jobsDone,
      uptimeSeconds: Math.floor((now - slot.startedAt) / 1000),
    }));
  }

  /**
   * Lets queued and running jobs finish for up to `graceMs`, answers what is left with `NO`,
   * then stops every worker (SIGKILL for those still there at `deadline`, a Date.now() time).
   */
  async stop(graceMs: number, deadline?: number): Promise<void> {
    if (this.unsettled > 0 && graceMs > 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, graceMs);
        this.whenIdle = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
    this.stopped = true;
    clearTimeout(this.spawnTimer);
    clearInterval(this.idleSweepTimer);
    for (const queued of [...this.queue, ...this.repeatQueue]) this.settle(queued, poolAnswer(POOL_REPLY.shuttingDown));
    this.queue = [];
    this.repeatQueue = [];
    const exits: Promise<void>[] = [];
    for (const slot of this.slots) {
      if (slot.job) this.settle(slot.job, poolAnswer(POOL_REPLY.shuttingDown));
      slot.job = undefined; // answered; its exit below is expected
      exits.push(new Promise((resolve) => (slot.worker.alive ? slot.worker.once('exit', () => resolve()) : resolve())));
      slot.worker.close();
    }
    // Workers that do not exit at EOF are killed by the caller's deadline (shutdown), and
    // never later than WORKER_EXIT_GRACE_MS from now.
    const exitGraceMs = Math.min(WORKER_EXIT_GRACE_MS, Math.max(0, (deadline ?? Infinity) - Date.now()));
    const killTimer = setTimeout(() => {
      for (const slot of this.slots) slot.worker.kill('SIGKILL');
    }, exitGraceMs);
    await Promise.all(exits);
    clearTimeout(killTimer);
  }

  private dispatch(): void {
    while (this.idle.length > 0) {
      const queued = this.nextJob();
      if (!queued) break;
      this.assign(this.idle.pop()!, queued);
    }
    this.ensureCapacity();
  }

  /** The next job to run: normal ones first; a repeat only while few workers run repeats. */
  private nextJob(): QueuedJob | undefined {
    dropSettled(this.queue);
    const normal = this.queue.shift();
    if (normal) return normal;
    dropSettled(this.repeatQueue);
    if (this.repeatQueue.length === 0 || this.busyWith('repeat') >= MAX_REPEAT_WORKERS) return undefined;
    return this.repeatQueue.shift();
  }

  private busyWith(lane: JobLane): number {
    let count = 0;
    for (const slot of this.slots) if (slot.job?.lane === lane) count++;
    return count;
  }

  private assign(slot: Slot, queued: QueuedJob): void {
    slot.state = 'busy';
    slot.job = queued;
    queued.slot = slot;
    const { login, password, service, realm, remoteHost } = queued.job;
    slot.worker.send({ jobId: queued.id, login, password, service, realm, remoteHost });
  }

  /** Starts workers until the pool has what it needs (respecting the failure backoff). */
  private ensureCapacity(): void {
    if (this.stopped || this.starting || this.spawnTimer) return;
    const wanted = this.wantedWorkers();
    if (this.activeSlots() >= wanted) return;
    const wait = this.spawnPausedUntil - monotonicMs();
    if (wait > 0) {
      this.spawnTimer = setTimeout(() => {
        this.spawnTimer = undefined;
        this.ensureCapacity();
      }, wait);
      return;
    }
    while (this.activeSlots() < wanted) this.spawn();
  }

  /** -n N: the idle workers, plus one per waiting or running job, up to N. -n 0: one per job. */
  private wantedWorkers(): number {
    const { size, idleWorkers } = this.options;
    if (size > 0 && idleWorkers >= size) return size;
    dropSettled(this.queue);
    dropSettled(this.repeatQueue);
    const repeats = Math.min(this.repeatQueue.length, Math.max(0, MAX_REPEAT_WORKERS - this.busyWith('repeat')));
    const demand = this.queue.length + repeats + this.busyCount();
    if (size > 0) return Math.min(size, Math.max(idleWorkers, demand));
    return Math.min(demand, this.options.maxPerRequestWorkers);
  }

  /** Workers beyond --idle-workers that had no job for --worker-idle-timeout exit. */
  private retireIdleExtras(): void {
    const now = monotonicMs();
    // this.idle is a stack: the front holds the workers idle the longest.
    while (this.activeSlots() > this.options.idleWorkers && this.idle.length > 0) {
      const longestIdle = this.idle[0]!;
      if (now - longestIdle.idleSince < this.options.workerIdleTimeoutMs) return;
      this.options.log.debug(`worker ${longestIdle.worker.pid} idle for ${Math.round((now - longestIdle.idleSince) / 1000)} s: stopped`);
      this.retire(longestIdle);
    }
  }

  private busyCount(): number {
    let count = 0;
    for (const slot of this.slots) if (slot.state === 'busy') count++;
    return count;
  }

  /** Workers that are or will become available for jobs. */
  private activeSlots(): number {
    let count = 0;
    for (const slot of this.slots) if (slot.state !== 'retiring') count++;
    return count;
  }

  private spawn(): Slot {
    if (this.initialSpawnsLeft > 0) this.initialSpawnsLeft--;
    else this.counters.respawns++;
    this.counters.starts++;
    const worker = new WorkerProcess(this.options.workerScript, this.settingsJson, this.options.poller);
    const slot: Slot = { worker, state: 'starting', job: undefined, jobsDone: 0, recycleAfterJob: false, idleSince: 0, startedAt: monotonicMs() };
    this.slots.add(slot);
    let ready = false;
    const startTimer = setTimeout(() => {
      // Also a worker retired (SIGHUP) before it was ready: stuck in setup, it would never exit.
      if (ready) return;
      this.options.log.error(`worker ${worker.pid} not ready within ${WORKER_START_DEADLINE_MS} ms: killed`);
      worker.kill('SIGKILL');
    }, WORKER_START_DEADLINE_MS);
    worker.once('exit', () => clearTimeout(startTimer));
    worker.on('ready', () => {
      ready = true;
      clearTimeout(startTimer);
      this.startFailures = 0;
      this.options.log.debug(`worker started: ${worker.pid}`);
      this.makeIdle(slot);
    });
    worker.on('failed', (reason) => this.options.log.error(`worker ${worker.pid} could not start the mechanism: ${reason}`));
    worker.on('result', (result) => {
      if (!slot.job || slot.job.id !== result.jobId) return; // answered already (deadline)
      this.settle(slot.job, { reply: result.reply, failDelayMs: result.failDelayMs, fromMechanism: !result.unavailable });
      slot.job = undefined;
      slot.jobsDone++;
      if (!worker.alive) return; // its result came in with its exit: the exit handler follows
      const limit = this.options.size === 0 ? 1 : this.options.maxJobsPerWorker;
      if (slot.recycleAfterJob || (limit > 0 && slot.jobsDone >= limit)) this.retire(slot);
      else this.makeIdle(slot);
    });
    worker.on('exit', (code, signal) => this.onExit(slot, code, signal));
    return slot;
  }

  private makeIdle(slot: Slot): void {
    if (this.stopped || slot.state === 'retiring') return;
    slot.state = 'idle';
    slot.idleSince = monotonicMs();
    this.idle.push(slot);
    this.dispatch();
  }

  private retire(slot: Slot): void {
    slot.state = 'retiring';
    this.removeIdle(slot);
    slot.worker.close();
    this.ensureCapacity();
  }

  private onExit(slot: Slot, code: number | null, signal: NodeJS.Signals | null): void {
    const wasStarting = slot.state === 'starting';
    const expected = slot.state === 'retiring' || this.stopped;
    this.slots.delete(slot);
    this.removeIdle(slot);
    if (slot.job) {
      this.options.log.error(
        `worker ${slot.worker.pid} died during a request (${signal ?? `status ${code}`}); the client gets NO`,
      );
      this.settle(slot.job, poolAnswer(POOL_REPLY.workerDied));
      slot.job = undefined;
    }
    if (expected) {
      this.ensureCapacity();
      return;
    }
    this.counters.crashes++;
    this.options.log.error(`worker ${slot.worker.pid} exited (${signal ?? `status ${code}`}); starting a replacement`);
    if (wasStarting) {
      this.startFailures++;
      const backoff = Math.min(FIRST_RESPAWN_BACKOFF_MS * 2 ** (this.startFailures - 1), MAX_RESPAWN_BACKOFF_MS);
      this.spawnPausedUntil = monotonicMs() + backoff;
    }
    this.ensureCapacity();
  }

  private onDeadline(queued: QueuedJob): void {
    if (queued.settled) return;
    this.counters.timeouts++;
    const slot = queued.slot;
    this.settle(queued, poolAnswer(POOL_REPLY.timeout));
    if (slot && slot.job === queued) {
      this.options.log.error(
        `mechanism did not answer within ${this.options.jobTimeoutMs} ms: worker ${slot.worker.pid} killed and replaced`,
      );
      slot.job = undefined;
      slot.state = 'retiring';
      slot.worker.kill('SIGKILL');
      this.ensureCapacity();
    } else {
      this.noWorkerInTime.note();
    }
  }

  private settle(queued: QueuedJob, outcome: JobOutcome): void {
    if (queued.settled) return;
    queued.settled = true;
    clearTimeout(queued.timer);
    this.unsettled--;
    queued.resolve(outcome);
    if (this.unsettled === 0 && this.whenIdle) {
      const done = this.whenIdle;
      this.whenIdle = undefined;
      done();
    }
  }

  private removeIdle(slot: Slot): void {
    const index = this.idle.indexOf(slot);
    if (index !== -1) this.idle.splice(index, 1);
  }
}

/** Removes jobs answered already (by their deadline) from the front of a queue. */
function dropSettled(queue: QueuedJob[]): void {
  while (queue.length > 0 && queue[0]!.settled) queue.shift();
}

function poolAnswer(reply: string): JobOutcome {
  return { reply, failDelayMs: 0, fromMechanism: false };
}
