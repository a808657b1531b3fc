/**
 * The worker pool without processes: fake workers the test makes ready, answer or exit at
 * chosen moments, and a manual clock. The same rules run with real workers in
 * process-model, limits, robustness and overload-and-races tests.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import type { Logger } from '../src/log/logger.js';
import type { CancelTimer, Timers } from '../src/runtime/timers.js';
import type { JobFrame } from '../src/workers/channel.js';
import { POOL_REPLY, WorkerPool, type JobLane, type JobOutcome, type PoolLimits } from '../src/workers/pool.js';
import type { WorkerHandle, WorkerProcessEvents } from '../src/workers/worker-process.js';

/** Timers that fire only when the test advances the clock. */
class ManualTimers implements Timers {
  private time = 0;
  private order = 0;
  private timers: { at: number; order: number; periodMs: number | undefined; callback: () => void; cancelled: boolean }[] = [];
  private soonQueue: (() => void)[] = [];

  now(): number {
    return this.time;
  }

  after(ms: number, callback: () => void): CancelTimer {
    return this.add(ms, undefined, callback);
  }

  every(ms: number, callback: () => void): CancelTimer {
    return this.add(ms, ms, callback);
  }

  soon(callback: () => void): void {
    this.soonQueue.push(callback);
  }

  /** Runs what soon() deferred. */
  runSoon(): void {
    while (this.soonQueue.length > 0) this.soonQueue.shift()!();
  }

  /** Moves the clock forward, firing every timer due on the way, in time order. */
  advance(ms: number): void {
    const end = this.time + ms;
    for (;;) {
      this.timers = this.timers.filter((timer) => !timer.cancelled);
      const due = this.timers.filter((timer) => timer.at <= end).sort((a, b) => a.at - b.at || a.order - b.order)[0];
      if (!due) break;
      this.time = due.at;
      if (due.periodMs === undefined) due.cancelled = true;
      else due.at += due.periodMs;
      due.callback();
      this.runSoon();
    }
    this.time = end;
  }

  private add(ms: number, periodMs: number | undefined, callback: () => void): CancelTimer {
    const timer = { at: this.time + ms, order: this.order++, periodMs, callback, cancelled: false };
    this.timers.push(timer);
    return () => {
      timer.cancelled = true;
    };
  }
}

let nextPid = 1000;

/** A worker driven by the test: it does only what the test makes it do. */
class FakeWorker extends EventEmitter<WorkerProcessEvents> implements WorkerHandle {
  readonly pid = nextPid++;
  alive = true;
  closed = false;
  readonly jobs: JobFrame[] = [];
  readonly signals: NodeJS.Signals[] = [];

  send(job: JobFrame): void {
    this.jobs.push(job);
  }

  kill(signal: NodeJS.Signals): void {
    this.signals.push(signal);
  }

  close(): void {
    this.closed = true;
  }

  becomeReady(): void {
    this.emit('ready');
  }

  /** Answers the last job it was sent. */
  answer(reply: string, failDelayMs = 0): void {
    const job = this.jobs.at(-1);
    assert.ok(job, `worker ${this.pid} has no job to answer`);
    this.emit('result', { jobId: job.jobId, reply, failDelayMs });
  }

  exit(code: number | null = 0, signal: NodeJS.Signals | null = null): void {
    this.alive = false;
    this.emit('exit', code, signal);
  }
}

class RecordingLog implements Logger {
  readonly verbose = true;
  readonly lines: string[] = [];
  error(message: string): void {
    this.lines.push(`error: ${message}`);
  }
  info(message: string): void {
    this.lines.push(`info: ${message}`);
  }
  debug(message: string): void {
    this.lines.push(`debug: ${message}`);
  }
  debugAlways(message: string): void {
    this.lines.push(`debug: ${message}`);
  }
  has(fragment: string): boolean {
    return this.lines.some((line) => line.includes(fragment));
  }
}

const JOB_TIMEOUT_MS = 5_000;
const IDLE_TIMEOUT_MS = 60_000;

interface Harness {
  readonly pool: WorkerPool;
  readonly timers: ManualTimers;
  readonly workers: FakeWorker[];
  readonly log: RecordingLog;
}

function harness(limits: Partial<PoolLimits> = {}): Harness {
  const timers = new ManualTimers();
  const workers: FakeWorker[] = [];
  const log = new RecordingLog();
  const pool = new WorkerPool(
    {
      size: 2,
      idleWorkers: limits.size ?? 2,
      workerIdleTimeoutMs: IDLE_TIMEOUT_MS,
      jobTimeoutMs: JOB_TIMEOUT_MS,
      maxQueuedJobs: 16,
      maxJobsPerWorker: 0,
      maxPerRequestWorkers: 4,
      log,
      ...limits,
    },
    {
      timers,
      startWorker: () => {
        const worker = new FakeWorker();
        workers.push(worker);
        return worker;
      },
    },
  );
  return { pool, timers, workers, log };
}

/** Starts the pool: the first worker, then (next turn) the others, all made ready. */
async function started(h: Harness): Promise<void> {
  const start = h.pool.start();
  h.workers[0]!.becomeReady();
  await start;
  h.timers.runSoon();
  for (const worker of h.workers.slice(1)) worker.becomeReady();
}

/** A submitted job whose answer the test can look at without awaiting it. */
interface Tracked {
  outcome: JobOutcome | undefined;
  readonly done: Promise<JobOutcome>;
}

function submit(h: Harness, login: string, lane: JobLane = 'normal'): Tracked {
  const empty = Buffer.alloc(0);
  const done = h.pool.submit({ login: Buffer.from(login), password: Buffer.from('pw'), service: Buffer.from('imap'), realm: empty, remoteHost: empty }, lane);
  const tracked: Tracked = { outcome: undefined, done };
  void done.then((outcome) => (tracked.outcome = outcome));
  return tracked;
}

/** Lets resolved promises run their continuations. */
async function settle(): Promise<void> {
  for (let i = 0; i < 3; i++) await new Promise((resolve) => setImmediate(resolve));
}

const loginOf = (worker: FakeWorker): string | undefined => worker.jobs.at(-1)?.login.toString();

test('a job past its deadline on a busy worker: answered "timed out", the worker SIGKILLed and replaced, its late result ignored', async () => {
  const h = harness({ size: 1 });
  await started(h);
  const job = submit(h, 'alice');
  const [busy] = h.workers;
  assert.equal(loginOf(busy!), 'alice');
  h.timers.advance(JOB_TIMEOUT_MS - 1);
  await settle();
  assert.equal(job.outcome, undefined, 'not answered before its deadline');
  h.timers.advance(1);
  await settle();
  assert.deepEqual(job.outcome, { reply: POOL_REPLY.timeout, failDelayMs: 0, fromMechanism: false });
  assert.deepEqual(busy!.signals, ['SIGKILL']);
  assert.equal(h.workers.length, 2, 'a replacement was started at once');
  assert.ok(h.log.has(`did not answer within ${JOB_TIMEOUT_MS} ms: worker ${busy!.pid} killed and replaced`));
  busy!.answer('OK'); // too late: must not reach anybody
  busy!.exit(null, 'SIGKILL');
  h.workers[1]!.becomeReady();
  const stats = h.pool.stats();
  assert.equal(stats.timeouts, 1);
  assert.equal(stats.crashes, 0, 'a worker killed for its deadline is no crash');
  assert.equal(stats.workers, 1);
  assert.equal(stats.idle, 1);
  const next = submit(h, 'bob');
  assert.equal(loginOf(h.workers[1]!), 'bob', 'the replacement serves the next job');
  h.workers[1]!.answer('OK');
  assert.equal((await next.done).reply, 'OK');
});

test('a job that never got a worker is answered "timed out" at its deadline, no worker killed', async () => {
  const h = harness({ size: 1 });
  await started(h);
  const running = submit(h, 'alice');
  const waiting = submit(h, 'bob');
  h.timers.advance(JOB_TIMEOUT_MS);
  await settle();
  assert.equal(waiting.outcome?.reply, POOL_REPLY.timeout);
  assert.ok(h.log.has(`no worker became free within ${JOB_TIMEOUT_MS} ms`));
  assert.equal(running.outcome?.reply, POOL_REPLY.timeout);
  assert.deepEqual(h.workers[0]!.signals, ['SIGKILL'], 'only the worker running a job is killed');
});

test('a worker exiting mid-job: its client gets "worker failed", the worker is replaced, the crash counted', async () => {
  const h = harness({ size: 2 });
  await started(h);
  const job = submit(h, 'alice');
  const victim = h.workers.find((worker) => worker.jobs.length === 1)!;
  victim.exit(null, 'SIGSEGV');
  assert.deepEqual(await job.done, { reply: POOL_REPLY.workerDied, failDelayMs: 0, fromMechanism: false });
  assert.equal(h.workers.length, 3, 'replaced at once (it had been ready: no backoff)');
  assert.ok(h.log.has(`worker ${victim.pid} died during a request (SIGSEGV)`));
  assert.equal(h.pool.stats().crashes, 1);
  assert.equal(h.pool.stats().respawns, 1);
  assert.equal(h.pool.stats().starts, 3);
});

test('the repeat lane runs only when no other job waits, and on one worker at a time', async () => {
  const h = harness({ size: 3 });
  await started(h);
  const [w0, w1, w2] = h.workers as [FakeWorker, FakeWorker, FakeWorker];
  // The most recently idle worker is used first (a stack): w2, w1, w0.
  const first = [submit(h, 'n1'), submit(h, 'n2'), submit(h, 'n3')];
  assert.deepEqual([loginOf(w2), loginOf(w1), loginOf(w0)], ['n1', 'n2', 'n3']);
  const r1 = submit(h, 'r1', 'repeat');
  const r2 = submit(h, 'r2', 'repeat');
  const n4 = submit(h, 'n4');
  w2.answer('OK');
  assert.equal(loginOf(w2), 'n4', 'a normal job queued after the repeats goes first');
  w1.answer('NO');
  assert.equal(loginOf(w1), 'r1', 'with no normal job waiting, a repeat runs');
  w0.answer('OK');
  assert.equal(w0.jobs.length, 1, 'a second repeat waits while one runs, though a worker is idle');
  assert.equal(h.pool.stats().idle, 1);
  w1.answer('NO');
  assert.equal(loginOf(w1), 'r2', 'the next repeat runs once the first is done (on the most recently idle worker)');
  assert.equal(w0.jobs.length, 1);
  w2.answer('OK');
  w1.answer('NO');
  await Promise.all([...first, r1, r2, n4].map((job) => job.done));
  assert.deepEqual([r1.outcome?.reply, r2.outcome?.reply, n4.outcome?.reply], ['NO', 'NO', 'OK']);
});

test('a full lane answers "server busy" at once; repeats have a quarter of the bound', async () => {
  const h = harness({ size: 1, maxQueuedJobs: 4 });
  await started(h);
  submit(h, 'running');
  for (let i = 0; i < 4; i++) submit(h, `queued${i}`);
  const refused = submit(h, 'one too many');
  await settle();
  assert.deepEqual(refused.outcome, { reply: POOL_REPLY.busy, failDelayMs: 0, fromMechanism: false });
  assert.ok(h.log.has('worker queue full (4 waiting for a worker): request refused'));
  const repeat = submit(h, 'repeat0', 'repeat');
  const repeatRefused = submit(h, 'repeat1', 'repeat');
  await settle();
  assert.equal(repeat.outcome, undefined, 'one repeat may wait (4 / 4)');
  assert.equal(repeatRefused.outcome?.reply, POOL_REPLY.busy);
  assert.ok(h.log.has('worker queue full (1 repeated failures waiting for a worker)'));
  assert.equal(h.pool.stats().queued, 5);
});

test('respawn backoff doubles while workers fail before they are ready, and resets on a ready one', async () => {
  const h = harness({ size: 1 });
  await started(h);
  h.workers[0]!.exit(1); // a ready worker dies: replaced at once
  assert.equal(h.workers.length, 2);
  const pauses: number[] = [];
  for (let failure = 0; failure < 4; failure++) {
    h.workers.at(-1)!.exit(1); // dies during its start
    const before: number = h.workers.length;
    let waited = 0;
    while (h.workers.length === before) {
      h.timers.advance(1);
      waited++;
      assert.ok(waited <= 20_000, 'a replacement is started eventually');
    }
    pauses.push(waited);
  }
  assert.deepEqual(pauses, [100, 200, 400, 800]);
  h.workers.at(-1)!.becomeReady();
  h.workers.at(-1)!.exit(1); // a ready one dies: no pause
  const afterReady = h.workers.length;
  h.workers.at(-1)!.exit(1); // its replacement fails at start: the pause starts over at 100 ms
  h.timers.advance(99);
  assert.equal(h.workers.length, afterReady);
  h.timers.advance(1);
  assert.equal(h.workers.length, afterReady + 1);
  assert.equal(h.pool.stats().crashes, 7);
});

test('a worker not ready within 30 s is killed and counts as a failed start', async () => {
  const h = harness({ size: 2 });
  await started(h);
  h.workers[1]!.exit(1);
  const stuck = h.workers[2]!;
  h.timers.advance(30_000);
  assert.deepEqual(stuck.signals, ['SIGKILL']);
  assert.ok(h.log.has(`worker ${stuck.pid} not ready within 30000 ms: killed`));
});

test('recycle: idle workers are replaced now, busy ones after their job', async () => {
  const h = harness({ size: 2 });
  await started(h);
  const [w0, w1] = h.workers as [FakeWorker, FakeWorker];
  const job = submit(h, 'alice');
  const busy = w1.jobs.length === 1 ? w1 : w0;
  const idle = busy === w1 ? w0 : w1;
  assert.equal(h.pool.recycle(), 2);
  assert.equal(idle.closed, true, 'the idle worker is told to exit now');
  assert.equal(busy.closed, false, 'the busy one finishes its job first');
  assert.equal(h.workers.length, 3, 'the idle one is replaced at once');
  busy.answer('OK', 0);
  assert.equal((await job.done).reply, 'OK');
  assert.equal(busy.closed, true, 'retired after its job');
  assert.equal(h.workers.length, 4);
  idle.exit(0);
  busy.exit(0);
  assert.equal(h.pool.stats().crashes, 0, 'retired workers exiting are no crash');
  assert.deepEqual(
    h.pool.workerStates().map((state) => state.state),
    ['starting', 'starting'],
    'two fresh workers in place of the two recycled ones',
  );
  assert.equal(h.pool.recycle(), 2, 'the fresh ones are recycled in turn by the next SIGHUP');
});

test('a worker is recycled after --max-jobs-per-worker jobs', async () => {
  const h = harness({ size: 1, maxJobsPerWorker: 2 });
  await started(h);
  const [w0] = h.workers as [FakeWorker];
  submit(h, 'a');
  w0.answer('OK');
  assert.equal(w0.closed, false);
  submit(h, 'b');
  w0.answer('OK');
  assert.equal(w0.closed, true);
  assert.equal(h.workers.length, 2);
});

test('--idle-workers: extra workers start when jobs wait and retire after the idle timeout', async () => {
  const h = harness({ size: 3, idleWorkers: 1 });
  await started(h);
  assert.equal(h.workers.length, 1, 'only --idle-workers start without work');
  const jobs = [submit(h, 'a'), submit(h, 'b'), submit(h, 'c'), submit(h, 'd')];
  assert.equal(h.workers.length, 3, 'one more per waiting job, up to -n');
  h.workers[1]!.becomeReady();
  h.workers[2]!.becomeReady();
  assert.deepEqual(h.workers.map(loginOf), ['a', 'b', 'c']);
  h.workers[1]!.answer('OK'); // takes d
  h.workers[0]!.answer('OK');
  h.timers.advance(1_000);
  h.workers[2]!.answer('OK');
  h.timers.advance(1_000);
  h.workers[1]!.answer('OK');
  await Promise.all(jobs.map((job) => job.done));
  h.timers.advance(IDLE_TIMEOUT_MS - 3_000);
  assert.equal(h.workers.filter((worker) => worker.closed).length, 0, 'nobody idle for the whole timeout yet');
  h.timers.advance(IDLE_TIMEOUT_MS / 4 + 3_000); // sweeps every timeout/4: at 60 s and 75 s
  assert.deepEqual(
    h.workers.map((worker) => worker.closed),
    [true, false, true],
    'the two idle the longest retire; the most recently used one stays',
  );
  assert.ok(h.log.has(`worker ${h.workers[0]!.pid} idle for`));
  h.workers[0]!.exit(0);
  h.workers[2]!.exit(0);
  assert.equal(h.pool.stats().workers, 1);
  assert.equal(h.pool.stats().crashes, 0);
  assert.equal(h.workers.length, 3, 'no replacement for a worker retired for idleness');
});

test('-n 0: a probe worker at start, then one fresh worker per job, at most --max-per-request-workers at once', async () => {
  const h = harness({ size: 0, idleWorkers: 0, maxPerRequestWorkers: 2 });
  let startDone = false;
  const start = h.pool.start().then(() => (startDone = true));
  const probe = h.workers[0]!;
  probe.becomeReady();
  assert.equal(probe.closed, true, 'the probe is let go once it is ready');
  await settle();
  assert.equal(startDone, false, 'start waits for the probe to exit');
  probe.exit(0);
  await start;
  assert.equal(h.pool.stats().respawns, 0, 'the probe is part of the start');
  const jobs = [submit(h, 'a'), submit(h, 'b'), submit(h, 'c')];
  assert.equal(h.workers.length, 3, 'two workers for three jobs (the cap)');
  const [, w1, w2] = h.workers as [FakeWorker, FakeWorker, FakeWorker];
  w1.becomeReady();
  w2.becomeReady();
  w1.answer('OK');
  assert.equal(w1.closed, true, 'one job per worker');
  assert.equal(w1.jobs.length, 1);
  assert.equal(h.workers.length, 4, 'a fresh worker for the third job');
  w1.exit(0);
  h.workers[3]!.becomeReady();
  assert.equal(loginOf(h.workers[3]!), 'c');
  w2.answer('OK');
  h.workers[3]!.answer('OK');
  await Promise.all(jobs.map((job) => job.done));
  assert.equal(h.pool.stats().respawns, 3);
  assert.equal(h.pool.stats().crashes, 0);
});

test('the first worker failing to start the mechanism fails start() and stops everything', async () => {
  const h = harness({ size: 2 });
  const start = h.pool.start();
  h.workers[0]!.emit('failed', 'no such PAM service');
  h.workers[0]!.exit(1);
  await assert.rejects(start, /no such PAM service/);
  assert.equal(h.workers.length, 1, 'no other worker was started');
  assert.equal((await submit(h, 'late').done).reply, POOL_REPLY.shuttingDown);
});

test('stop answers queued and running jobs "shutting down", closes every worker, SIGKILLs those still there after 2 s', async () => {
  const h = harness({ size: 1 });
  await started(h);
  const [w0] = h.workers as [FakeWorker];
  const running = submit(h, 'running');
  const queued = [submit(h, 'q1'), submit(h, 'q2', 'repeat')];
  let stopped = false;
  const stop = h.pool.stop(0).then(() => (stopped = true));
  for (const job of [running, ...queued]) assert.equal((await job.done).reply, POOL_REPLY.shuttingDown);
  assert.equal(w0.closed, true);
  assert.equal((await submit(h, 'after').done).reply, POOL_REPLY.shuttingDown);
  h.timers.advance(1_999);
  assert.deepEqual(w0.signals, []);
  h.timers.advance(1);
  assert.deepEqual(w0.signals, ['SIGKILL']);
  await settle();
  assert.equal(stopped, false, 'stop waits for the exit');
  w0.exit(null, 'SIGKILL');
  await stop;
  assert.equal(h.pool.stats().crashes, 0);
  assert.equal(h.workers.length, 1, 'nothing restarted during the shutdown');
});

test('stop with a grace period lets running jobs finish first', async () => {
  const h = harness({ size: 1 });
  await started(h);
  const [w0] = h.workers as [FakeWorker];
  const running = submit(h, 'running');
  const stop = h.pool.stop(10_000);
  await settle();
  assert.equal(w0.closed, false, 'within the grace period the worker keeps its job');
  w0.answer('OK');
  assert.equal((await running.done).reply, 'OK');
  await settle();
  assert.equal(w0.closed, true, 'closed once every job is answered, before the grace ends');
  w0.exit(0);
  await stop;
});
