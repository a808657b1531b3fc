/**
 * The jobs of the worker pool, without any process: two FIFO lanes with their bounds, one
 * deadline per job from submission, and the answer each job gets exactly once — from its
 * worker, or from the pool (busy, timed out, worker failed, shutting down).
 *   - `normal` jobs run first; a `repeat` job runs only when no normal job waits, and on at
 *     most MAX_REPEAT_WORKERS workers at once (the caller says how many run repeats now).
 *   - A lane that is full answers `NO server busy` at once.
 *   - At its deadline a job is answered `NO authentication timed out`, queued or running;
 *     `onOverdue` tells whether a worker was running it (the pool then kills that worker).
 * Which worker runs what, and the workers themselves, belong to worker-lifecycle.ts.
 */
import type { Logger } from '../log/logger.js';
import { RateLimitedReport } from '../log/rate-limited-report.js';
import type { Timers, CancelTimer } from '../runtime/timers.js';

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

/** Replies for jobs the pool itself has to answer. Clients only look at `NO`. */
export const POOL_REPLY = {
  timeout: 'NO authentication timed out',
  workerDied: 'NO authentication worker failed',
  busy: 'NO server busy',
  shuttingDown: 'NO server shutting down',
} as const;

/** An answer given by the pool, not by a mechanism. */
export function poolAnswer(reply: string): JobOutcome {
  return { reply, failDelayMs: 0, fromMechanism: false };
}

/** A job from submission until it is answered. */
export interface PendingJob {
  /** Tells its result frame from a late one of an earlier job (1…2^32-1, wrapping). */
  readonly id: number;
  readonly job: PoolJob;
  readonly lane: JobLane;
  /** Answered already: by its worker, its deadline, or the pool. */
  readonly settled: boolean;
}

/** Repeats may wait in at most 1/REPEAT_QUEUE_SHARE of --max-queue, in a queue of their own. */
const REPEAT_QUEUE_SHARE = 4;
/** Workers that may run `repeat` jobs at once: the rest stay free for everybody else. */
export const MAX_REPEAT_WORKERS = 1;
/** Overload log lines (queue full, no worker in time): at most one per this period each. */
const OVERLOAD_LOG_PERIOD_MS = 1_000;
/** Job ids are 32-bit in the channel frames. */
const MAX_JOB_ID = 0xffffffff;

export interface JobQueueOptions {
  /** Deadline of a job from submission to answer. */
  readonly jobTimeoutMs: number;
  /** Jobs waiting for a worker beyond this are answered `NO` at once. */
  readonly maxQueuedJobs: number;
  readonly log: Logger;
  readonly timers: Timers;
  /**
   * A job reached its deadline and has been answered `NO authentication timed out`. Returns
   * true when a worker was running it (the caller deals with that worker), false when it was
   * still waiting for one.
   */
  readonly onOverdue: (job: PendingJob) => boolean;
}

interface QueuedJob extends PendingJob {
  settled: boolean;
  readonly resolve: (outcome: JobOutcome) => void;
  readonly cancelDeadline: CancelTimer;
}

export class JobQueue {
  private normal: QueuedJob[] = [];
  private repeats: QueuedJob[] = [];
  private nextJobId = 1;
  private unsettledCount = 0;
  private whenAllSettled: (() => void) | undefined;
  private readonly maxQueuedRepeats: number;
  /** Jobs answered `NO authentication timed out`. */
  timeouts = 0;

  /** Overload lines: at most one a second each, with the count (the primary's thread is busy enough). */
  private readonly queueFull: RateLimitedReport;
  private readonly repeatQueueFull: RateLimitedReport;
  private readonly noWorkerInTime: RateLimitedReport;

  constructor(private readonly options: JobQueueOptions) {
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
   * Queues a job, its deadline running from now; resolves with its answer. A full lane
   * answers `NO server busy` at once. The job is in its lane when this returns.
   */
  add(job: PoolJob, lane: JobLane): Promise<JobOutcome> {
    // Repeats have their own, smaller bound: they must never crowd out other requests.
    const waiting = lane === 'repeat' ? this.repeats : this.normal;
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
        cancelDeadline: this.options.timers.after(this.options.jobTimeoutMs, () => this.onDeadline(queued)),
        settled: false,
      };
      this.nextJobId = this.nextJobId >= MAX_JOB_ID ? 1 : this.nextJobId + 1;
      this.unsettledCount++;
      waiting.push(queued);
    });
  }

  /**
   * Takes the next job to run off its lane: normal ones first; a repeat only while fewer
   * than MAX_REPEAT_WORKERS workers run repeats (`repeatsRunning`).
   */
  take(repeatsRunning: number): PendingJob | undefined {
    dropSettled(this.normal);
    const normal = this.normal.shift();
    if (normal) return normal;
    dropSettled(this.repeats);
    if (this.repeats.length === 0 || repeatsRunning >= MAX_REPEAT_WORKERS) return undefined;
    return this.repeats.shift();
  }

  /** How many waiting jobs a free worker could start now (the demand for workers). */
  startable(repeatsRunning: number): number {
    dropSettled(this.normal);
    dropSettled(this.repeats);
    return this.normal.length + Math.min(this.repeats.length, Math.max(0, MAX_REPEAT_WORKERS - repeatsRunning));
  }

  /** Jobs in the lanes (those answered by their deadline may still be counted until dropped). */
  get waiting(): number {
    return this.normal.length + this.repeats.length;
  }

  /** Answers a job, once: later answers for the same job are ignored. */
  settle(pending: PendingJob, outcome: JobOutcome): void {
    const queued = pending as QueuedJob;
    if (queued.settled) return;
    queued.settled = true;
    queued.cancelDeadline();
    this.unsettledCount--;
    queued.resolve(outcome);
    if (this.unsettledCount === 0 && this.whenAllSettled) {
      const done = this.whenAllSettled;
      this.whenAllSettled = undefined;
      done();
    }
  }

  /** Answers every job still waiting for a worker, and empties the lanes. */
  answerWaiting(outcome: JobOutcome): void {
    for (const queued of [...this.normal, ...this.repeats]) this.settle(queued, outcome);
    this.normal = [];
    this.repeats = [];
  }

  /** Resolves once every job is answered, or after `graceMs`, whichever comes first. */
  async allSettled(graceMs: number): Promise<void> {
    if (this.unsettledCount === 0 || graceMs <= 0) return;
    await new Promise<void>((resolve) => {
      const cancel = this.options.timers.after(graceMs, resolve);
      this.whenAllSettled = () => {
        cancel();
        resolve();
      };
    });
  }

  private onDeadline(queued: QueuedJob): void {
    if (queued.settled) return;
    this.timeouts++;
    this.settle(queued, poolAnswer(POOL_REPLY.timeout));
    if (!this.options.onOverdue(queued)) this.noWorkerInTime.note();
  }
}

/** Removes jobs answered already (by their deadline) from the front of a lane. */
function dropSettled(lane: QueuedJob[]): void {
  while (lane.length > 0 && lane[0]!.settled) lane.shift();
}
