/**
 * The workers of the pool, as slots: starting → idle ⇄ busy → retiring → gone. This file
 * starts them (through an injected `startWorker`, so tests drive fakes), keeps as many as the
 * jobs need, and replaces them:
 *   - a worker that dies unexpectedly is replaced (its running job is answered `NO`); one that
 *     dies before it was ready makes the next start wait, the pause doubling while it goes on;
 *   - a worker is retired after --max-jobs-per-worker jobs, on recycle() (SIGHUP: idle ones
 *     now, busy ones after their job), and with --idle-workers below -n when idle too long;
 *   - `-n 0`: a fresh worker per job, retired after it, with a cap on how many run at once;
 *   - a worker running a job past its deadline is killed (SIGKILL) and replaced.
 * Which job runs next, and the answers, belong to job-queue.ts; pool.ts joins the two.
 */
import type { Logger } from '../log/logger.js';
import type { CancelTimer, Timers } from '../runtime/timers.js';
import { POOL_REPLY, poolAnswer, type JobOutcome, type PendingJob } from './job-queue.js';
import type { WorkerHandle } from './worker-process.js';

export type WorkerStarter = () => WorkerHandle;

export interface LifecycleOptions {
  /** Resident workers (`-n`); 0 = a fresh worker per job. */
  readonly size: number;
  /** Workers kept started without work (≤ size); the others start on demand. */
  readonly idleWorkers: number;
  /** An on-demand worker without a job for this long stops. */
  readonly workerIdleTimeoutMs: number;
  /** Recycle a worker after this many jobs; 0 = never. */
  readonly maxJobsPerWorker: number;
  /** With size 0: how many one-job workers may run at once. */
  readonly maxPerRequestWorkers: number;
  /** --job-timeout, for the line logged when a worker is killed past it. */
  readonly jobTimeoutMs: number;
  readonly log: Logger;
  readonly timers: Timers;
  readonly startWorker: WorkerStarter;
  /**
   * What a worker does on the fast path, where the pool does not see it (fast-path-hub.ts):
   * whether it is checking a client now, how many it checked, and when it was last active.
   */
  readonly fastPathActivity?: (worker: WorkerHandle) => FastPathActivity | undefined;
}

export interface FastPathActivity {
  /** Busy: with a client of its own (reading, checking, replying) or a job from the primary. */
  readonly checking: boolean;
  /** Since when (milliseconds), while checking. */
  readonly checkingForMs: number;
  readonly checksDone: number;
  /** Milliseconds since its last fast-path check ended (or it started). */
  readonly idleForMs: number;
}

/** What the lifecycle asks of the scheduling side (pool.ts). */
export interface LifecycleHost {
  /** Waiting jobs a free worker could start now, given how many workers run repeats. */
  startableJobs(repeatsRunning: number): number;
  /** A worker became idle: give it work if there is some. */
  workerIdle(): void;
  /** The job a worker was running is over: its result, or the worker's end. */
  jobEnded(job: PendingJob, outcome: JobOutcome): void;
  /** The first worker could not start: stop everything; resolves once done. */
  abortStart(): Promise<void>;
}

export type SlotState = 'starting' | 'idle' | 'busy' | 'retiring';

/** One worker as `saslauthdctl status` shows it. */
export interface WorkerState {
  readonly pid: number;
  readonly state: SlotState;
  readonly jobsDone: number;
  readonly uptimeSeconds: number;
}

/** Upper bound of the pause between attempts to start workers that keep failing at start. */
const MAX_RESPAWN_BACKOFF_MS = 10_000;
/** First pause after a worker failed to start; doubles while failures continue. */
const FIRST_RESPAWN_BACKOFF_MS = 100;
/** A worker not ready by then (a mechanism stuck in its setup) is killed and counts as a start failure. */
const WORKER_START_DEADLINE_MS = 30_000;
/** Idle workers are looked at for retirement this many times per --worker-idle-timeout. */
const IDLE_SWEEPS_PER_TIMEOUT = 4;
/**
 * A worker whose own (fast-path) check has run this long gets no job queued behind it: the
 * check looks slow or hung, and the job would wait for it.
 */
const BUSY_WORKER_JOB_LIMIT_MS = 100;
/** How long stopped workers get to exit after their channel is closed, before SIGKILL. */
const WORKER_EXIT_GRACE_MS = 2_000;

interface Slot {
  readonly worker: WorkerHandle;
  state: SlotState;
  job: PendingJob | undefined;
  jobsDone: number;
  /** Retire once the running job is done (recycle()). */
  recycleAfterJob: boolean;
  /** timers.now() when it last became idle. */
  idleSince: number;
  /** timers.now() when it was started. */
  readonly startedAt: number;
}

export class WorkerLifecycle {
  private readonly slots = new Set<Slot>();
  /** A stack: the most recently idle worker on top (kept warm), the longest idle at the front. */
  private readonly idle: Slot[] = [];
  private stopped = false;
  private startFailures = 0;
  private spawnPausedUntil = 0;
  private cancelSpawnTimer: CancelTimer | undefined;
  private cancelIdleSweep: CancelTimer | undefined;
  /** Until the first worker is ready, no other is started (see start()). */
  private starting = false;
  /** Spawns that build the initial pool; later ones replace or recycle a worker. */
  private initialSpawnsLeft: number;
  readonly counters = { respawns: 0, starts: 0, crashes: 0 };

  constructor(
    private readonly options: LifecycleOptions,
    private readonly host: LifecycleHost,
  ) {
    this.initialSpawnsLeft = Math.min(options.idleWorkers, options.size);
  }

  /**
   * Starts one worker and resolves once it is ready: the daemon can serve from then on, and
   * the other workers start right after (jobs queue meanwhile). Startup thus costs one
   * worker's start instead of N competing for two cores. Rejects, stopping everything, when
   * that worker cannot start the mechanism or dies before it is ready.
   */
  start(): Promise<void> {
    if (this.options.size === 0) return this.probe();
    const first = this.startFirst();
    first.worker.once('ready', () => {
      this.starting = false;
      // The others start once the caller has had its turn to listen: spawn(2) is
      // synchronous, and four of them would delay the socket by tens of milliseconds.
      this.options.timers.soon(() => this.ensureCapacity());
      if (this.options.idleWorkers < this.options.size) {
        const period = Math.ceil(this.options.workerIdleTimeoutMs / IDLE_SWEEPS_PER_TIMEOUT);
        this.cancelIdleSweep = this.options.timers.every(period, () => this.retireIdleExtras());
      }
    });
    return first.ready;
  }

  /**
   * -n 0 keeps no worker between requests. One is started anyway and let go once it is ready
   * (resolving when it has exited), so a mechanism that cannot start in a worker stops the
   * daemon's start, as with -n N, instead of failing every request.
   */
  private probe(): Promise<void> {
    this.initialSpawnsLeft++; // part of the start, not a respawn
    const probe = this.startFirst();
    const exited = new Promise<void>((resolve) => {
      probe.worker.once('ready', () => {
        this.starting = false;
        probe.worker.once('exit', () => resolve());
        this.retire(probe.slot);
      });
    });
    return probe.ready.then(() => exited);
  }

  /** The first worker: its readiness, or its failure stopping everything (start(), probe()). */
  private startFirst(): { slot: Slot; worker: WorkerHandle; ready: Promise<void> } {
    this.starting = true;
    const slot = this.spawn();
    const { worker } = slot;
    const ready = new Promise<void>((resolve, reject) => {
      const fail = (error: Error): void => {
        worker.removeAllListeners('ready');
        void this.host.abortStart().then(() => reject(error));
      };
      worker.once('ready', () => resolve());
      worker.once('failed', (reason) => fail(new Error(reason)));
      worker.once('exit', (code, signal) => {
        if (this.starting) fail(new Error(`worker ${worker.pid} exited during startup (${signal ?? `status ${code}`})`));
      });
    });
    return { slot, worker, ready };
  }

  /**
   * Runs a job on the most recently idle worker that can take it now; false when none can. A
   * worker checking a client of its own (fast path) takes the job after that check, unless
   * the check has run for a while already (a slow or hung module): then the job waits for
   * another worker.
   */
  run(job: PendingJob): boolean {
    let index = this.idle.length - 1;
    while (index >= 0 && !this.canTakeJob(this.idle[index]!)) index--;
    if (index < 0) return false;
    const [slot] = this.idle.splice(index, 1) as [Slot];
    slot.state = 'busy';
    slot.job = job;
    const { login, password, service, realm, remoteHost } = job.job;
    slot.worker.send({ jobId: job.id, login, password, service, realm, remoteHost });
    return true;
  }

  /** Idle workers that can take a job now (see run()). */
  get idleCount(): number {
    let count = 0;
    for (const slot of this.idle) if (this.canTakeJob(slot)) count++;
    return count;
  }

  private canTakeJob(slot: Slot): boolean {
    const fast = this.options.fastPathActivity?.(slot.worker);
    return !fast || !fast.checking || fast.checkingForMs < BUSY_WORKER_JOB_LIMIT_MS;
  }

  /** Workers running `repeat` jobs now. */
  repeatsRunning(): number {
    let count = 0;
    for (const slot of this.slots) if (slot.job?.lane === 'repeat') count++;
    return count;
  }

  /**
   * A job past its deadline (answered already): the worker running it, if any, is killed
   * with SIGKILL and replaced. Returns whether a worker was running it.
   */
  killRunning(job: PendingJob): boolean {
    const slot = [...this.slots].find((candidate) => candidate.job === job);
    if (!slot) return false;
    this.options.log.error(
      `mechanism did not answer within ${this.options.jobTimeoutMs} ms: worker ${slot.worker.pid} killed and replaced`,
    );
    slot.job = undefined;
    slot.state = 'retiring';
    slot.worker.kill('SIGKILL');
    this.ensureCapacity();
    return true;
  }

  /**
   * Replaces every worker with a fresh one — idle ones now, busy ones once their job is
   * done. Returns how many workers are being replaced.
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

  /**
   * Retires one worker (it asked: --max-jobs-per-worker reached on its fast path), at once
   * if idle, else after its job.
   */
  retireWorker(worker: WorkerHandle): void {
    const slot = this.slotOf(worker);
    if (!slot || slot.state === 'retiring') return;
    if (slot.state === 'busy') slot.recycleAfterJob = true;
    else this.retire(slot);
  }

  /** A worker the primary is killing (a fast-path check past its deadline): its exit is no crash. */
  markKilled(worker: WorkerHandle): void {
    const slot = this.slotOf(worker);
    if (!slot) return;
    if (slot.job) this.host.jobEnded(slot.job, poolAnswer(POOL_REPLY.workerDied));
    slot.job = undefined;
    slot.state = 'retiring';
    this.removeIdle(slot);
    this.ensureCapacity();
  }

  stats(): { workers: number; busy: number; idle: number } {
    const busy = this.busyCount();
    return { workers: this.slots.size, busy, idle: this.slots.size - busy - this.countIn('starting') - this.countIn('retiring') };
  }

  workerStates(): WorkerState[] {
    const now = this.options.timers.now();
    return [...this.slots].map((slot) => ({
      pid: slot.worker.pid,
      state: this.shownState(slot),
      jobsDone: slot.jobsDone + (this.options.fastPathActivity?.(slot.worker)?.checksDone ?? 0),
      uptimeSeconds: Math.floor((now - slot.startedAt) / 1000),
    }));
  }

  /** The slot's state, busy also while it checks a client on its fast path. */
  private shownState(slot: Slot): SlotState {
    if (slot.state === 'idle' && this.options.fastPathActivity?.(slot.worker)?.checking) return 'busy';
    return slot.state;
  }

  private countIn(state: SlotState): number {
    let count = 0;
    for (const slot of this.slots) if (slot.state === state) count++;
    return count;
  }

  private slotOf(worker: WorkerHandle): Slot | undefined {
    for (const slot of this.slots) if (slot.worker === worker) return slot;
    return undefined;
  }

  /**
   * Starts no more workers, answers running jobs `NO server shutting down`, closes every
   * worker's channel and resolves once all have exited (SIGKILL for those still there at
   * `deadline`, a Date.now() time, and never later than WORKER_EXIT_GRACE_MS from now).
   */
  async stop(deadline?: number): Promise<void> {
    this.stopped = true;
    this.cancelSpawnTimer?.();
    this.cancelIdleSweep?.();
    const exits: Promise<void>[] = [];
    for (const slot of this.slots) {
      if (slot.job) this.host.jobEnded(slot.job, poolAnswer(POOL_REPLY.shuttingDown));
      slot.job = undefined; // answered; its exit below is expected
      exits.push(new Promise((resolve) => (slot.worker.alive ? slot.worker.once('exit', () => resolve()) : resolve())));
      slot.worker.close();
    }
    const exitGraceMs = Math.min(WORKER_EXIT_GRACE_MS, Math.max(0, (deadline ?? Infinity) - Date.now()));
    const cancelKill = this.options.timers.after(exitGraceMs, () => {
      for (const slot of this.slots) slot.worker.kill('SIGKILL');
    });
    await Promise.all(exits);
    cancelKill();
  }

  /** Starts workers until the pool has what it needs (respecting the failure backoff). */
  ensureCapacity(): void {
    if (this.stopped || this.starting || this.cancelSpawnTimer) return;
    const wanted = this.wantedWorkers();
    if (this.activeSlots() >= wanted) return;
    const wait = this.spawnPausedUntil - this.options.timers.now();
    if (wait > 0) {
      this.cancelSpawnTimer = this.options.timers.after(wait, () => {
        this.cancelSpawnTimer = undefined;
        this.ensureCapacity();
      });
      return;
    }
    while (this.activeSlots() < wanted) this.spawn();
  }

  /** -n N: the idle workers, plus one per waiting or running job, up to N. -n 0: one per job. */
  private wantedWorkers(): number {
    const { size, idleWorkers } = this.options;
    if (size > 0 && idleWorkers >= size) return size;
    const demand = this.host.startableJobs(this.repeatsRunning()) + this.busyCount();
    if (size > 0) return Math.min(size, Math.max(idleWorkers, demand));
    return Math.min(demand, this.options.maxPerRequestWorkers);
  }

  /** Workers beyond --idle-workers that had no job for --worker-idle-timeout exit. */
  private retireIdleExtras(): void {
    const now = this.options.timers.now();
    while (this.activeSlots() > this.options.idleWorkers && this.idle.length > 0) {
      const longestIdle = this.idle[0]!;
      if (now - longestIdle.idleSince < this.options.workerIdleTimeoutMs) return;
      // Answering clients itself is work too: such a worker is not idle.
      const fast = this.options.fastPathActivity?.(longestIdle.worker);
      if (fast && (fast.checking || fast.idleForMs < this.options.workerIdleTimeoutMs)) return;
      this.options.log.debug(`worker ${longestIdle.worker.pid} idle for ${Math.round((now - longestIdle.idleSince) / 1000)} s: stopped`);
      this.retire(longestIdle);
    }
  }

  /** Workers running a job, or checking a client of their own (fast path). */
  private busyCount(): number {
    let count = 0;
    for (const slot of this.slots) if (this.shownState(slot) === 'busy') count++;
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
    const worker = this.options.startWorker();
    const { timers, log } = this.options;
    const slot: Slot = { worker, state: 'starting', job: undefined, jobsDone: 0, recycleAfterJob: false, idleSince: 0, startedAt: timers.now() };
    this.slots.add(slot);
    let ready = false;
    const cancelStartDeadline = timers.after(WORKER_START_DEADLINE_MS, () => {
      // Also a worker retired (SIGHUP) before it was ready: stuck in setup, it would never exit.
      if (ready) return;
      log.error(`worker ${worker.pid} not ready within ${WORKER_START_DEADLINE_MS} ms: killed`);
      worker.kill('SIGKILL');
    });
    worker.once('exit', () => cancelStartDeadline());
    worker.on('ready', () => {
      ready = true;
      cancelStartDeadline();
      this.startFailures = 0;
      log.debug(`worker started: ${worker.pid}`);
      this.makeIdle(slot);
    });
    worker.on('failed', (reason) => log.error(`worker ${worker.pid} could not start the mechanism: ${reason}`));
    worker.on('result', (result) => {
      if (!slot.job || slot.job.id !== result.jobId) return; // answered already (deadline)
      this.host.jobEnded(slot.job, { reply: result.reply, failDelayMs: result.failDelayMs, fromMechanism: !result.unavailable });
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
    slot.idleSince = this.options.timers.now();
    this.idle.push(slot);
    this.host.workerIdle();
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
      this.options.log.error(`worker ${slot.worker.pid} died during a request (${signal ?? `status ${code}`}); the client gets NO`);
      this.host.jobEnded(slot.job, poolAnswer(POOL_REPLY.workerDied));
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
      this.spawnPausedUntil = this.options.timers.now() + backoff;
    }
    this.ensureCapacity();
  }

  private removeIdle(slot: Slot): void {
    const index = this.idle.indexOf(slot);
    if (index !== -1) this.idle.splice(index, 1);
  }
}
