/**
 * Taking a hung worker's client connection: the sequence alone with injected process
 * operations (each outcome, the order of signals, the bounded wait), and for real against
 * child `node` processes that publish an activity record in shared memory and then hang
 * (busy loop or sleep) holding one end of a socketpair.
 */
import { afterEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { constants } from 'node:os';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { SharedRegion } from '../src/native/shared-memory.js';
import { processState } from '../src/native/pidfd.js';
import { EAGAIN, closeFd, readInto, sendSome, setNonBlocking, socketPair } from '../src/native/posix-sockets.js';
import {
  STOP_WAIT_MS,
  seizeClient,
  systemSeizeOperations,
  type ActivityRecord,
  type SeizeOperations,
} from '../src/workers/seize-client.js';
import { eventually } from './helpers/processes.js';

const signalName = new Map(Object.entries(constants.signals).map(([name, number]) => [number, name]));

/** Injected operations that log every call; the clock moves only when the sequence sleeps. */
class ScriptedProcess implements SeizeOperations {
  readonly calls: string[] = [];
  private clock = 0;
  constructor(
    private readonly script: {
      pidfd?: number;
      /** The state letter at each look; the last one repeats. */
      states?: (string | undefined)[];
      getfd?: number;
    } = {},
  ) {}
  private looks = 0;
  openPidfd(pid: number): number {
    this.calls.push(`open ${pid}`);
    return this.script.pidfd ?? 50;
  }
  signal(pidfd: number, signal: number): number {
    this.calls.push(`${signalName.get(signal)} ${pidfd}`);
    return 0;
  }
  killByPid(pid: number): void {
    this.calls.push(`kill-by-pid ${pid}`);
  }
  state(): string | undefined {
    const states = this.script.states ?? ['T'];
    this.looks++;
    return states[Math.min(this.looks, states.length) - 1];
  }
  getfd(pidfd: number, targetFd: number): number {
    this.calls.push(`getfd ${pidfd} ${targetFd}`);
    return this.script.getfd ?? 60;
  }
  closeFd(fd: number): void {
    this.calls.push(`close ${fd}`);
  }
  sleepMs(ms: number): void {
    this.clock += ms;
  }
  nowMs(): number {
    return this.clock;
  }
  get stateLooks(): number {
    return this.looks;
  }
  get elapsedMs(): number {
    return this.clock;
  }
}

const checking = (seq: number, fd = 9): (() => ActivityRecord) => () => ({ seq, state: 'checking', fd });

describe('the sequence, with injected process operations', () => {
  test('stopped, same check: the descriptor is taken, then the worker killed, the pidfd closed', () => {
    const ops = new ScriptedProcess({ states: ['R', 'R', 'T'], getfd: 61 });
    assert.equal(seizeClient(1234, checking(7, 9), 7, ops), 61);
    assert.deepEqual(ops.calls, ['open 1234', 'SIGSTOP 50', 'getfd 50 9', 'SIGKILL 50', 'close 50']);
    assert.equal(ops.stateLooks, 3);
  });

  test("a tracer's stop (t) counts as stopped", () => {
    const ops = new ScriptedProcess({ states: ['t'] });
    assert.equal(seizeClient(1, checking(3), 3, ops), 60);
  });

  test('finished meanwhile (the record shows the next check): SIGCONT, nothing taken', () => {
    const ops = new ScriptedProcess({ states: ['S', 'T'] });
    assert.equal(seizeClient(1234, checking(8), 7, ops), 'finished');
    assert.deepEqual(ops.calls, ['open 1234', 'SIGSTOP 50', 'SIGCONT 50', 'close 50']);
  });

  test('finished meanwhile (same check, no longer checking): SIGCONT, nothing taken', () => {
    const ops = new ScriptedProcess();
    const replying = (): ActivityRecord => ({ seq: 7, state: 'replying', fd: 9 });
    assert.equal(seizeClient(1234, replying, 7, ops), 'finished');
    assert.deepEqual(ops.calls, ['open 1234', 'SIGSTOP 50', 'SIGCONT 50', 'close 50']);
  });

  test(`never stops: SIGKILL after about ${STOP_WAIT_MS} ms of 1 ms looks, the record never read`, () => {
    const ops = new ScriptedProcess({ states: ['D'] });
    let reads = 0;
    const record = (): ActivityRecord => {
      reads++;
      return { seq: 7, state: 'checking', fd: 9 };
    };
    assert.equal(seizeClient(1234, record, 7, ops), 'killed');
    assert.deepEqual(ops.calls, ['open 1234', 'SIGSTOP 50', 'SIGKILL 50', 'close 50']);
    assert.equal(reads, 0);
    assert.equal(ops.elapsedMs, STOP_WAIT_MS);
    assert.equal(ops.stateLooks, STOP_WAIT_MS + 1);
  });

  test('exits while being stopped (zombie, then gone): killed at once, without waiting out the deadline', () => {
    for (const states of [['R', 'Z'], ['R', undefined]]) {
      const ops = new ScriptedProcess({ states });
      assert.equal(seizeClient(1234, checking(7), 7, ops), 'killed');
      assert.equal(ops.stateLooks, 2);
      assert.deepEqual(ops.calls, ['open 1234', 'SIGSTOP 50', 'SIGKILL 50', 'close 50']);
    }
  });

  test('pidfd_getfd fails: killed, nothing returned', () => {
    const ops = new ScriptedProcess({ getfd: -9 });
    assert.equal(seizeClient(1234, checking(7), 7, ops), 'killed');
    assert.deepEqual(ops.calls, ['open 1234', 'SIGSTOP 50', 'getfd 50 9', 'SIGKILL 50', 'close 50']);
  });

  test('no pidfd: gone already (ESRCH) is left alone; out of descriptors (EMFILE) is killed by pid', () => {
    const gone = new ScriptedProcess({ pidfd: -constants.errno.ESRCH });
    assert.equal(seizeClient(1234, checking(7), 7, gone), 'killed');
    assert.deepEqual(gone.calls, ['open 1234']);
    const noRoom = new ScriptedProcess({ pidfd: -constants.errno.EMFILE });
    assert.equal(seizeClient(1234, checking(7), 7, noRoom), 'killed');
    assert.deepEqual(noRoom.calls, ['open 1234', 'kill-by-pid 1234']);
  });

  test('reading the record throws: killed, never left stopped', () => {
    const ops = new ScriptedProcess();
    const broken = (): ActivityRecord => {
      throw new Error('torn');
    };
    assert.equal(seizeClient(1234, broken, 7, ops), 'killed');
    assert.deepEqual(ops.calls, ['open 1234', 'SIGSTOP 50', 'SIGKILL 50', 'close 50']);
  });
});

/** Record layout in the test's shared region: Int32 [seq, state, fd]. */
const SEQ = 0;
const STATE = 1;
const FD = 2;
const STATE_NAMES = ['idle', 'checking'];
const SHARED_MEMORY_JS = fileURLToPath(new URL('../src/native/shared-memory.js', import.meta.url));

/** The client's end of the socketpair (fd 3 in the child) as the child sees it. */
const CHILD_CLIENT_FD = 3;
const CHILD_REGION_FD = 4;

interface HungWorker {
  readonly child: ChildProcess;
  readonly exited: Promise<[number | null, NodeJS.Signals | null]>;
  readonly record: Int32Array;
  /** Our end of the client's socketpair, non-blocking. */
  readonly clientEnd: number;
  readRecord(): ActivityRecord;
}

let cleanups: (() => void)[] = [];
afterEach(() => {
  for (const cleanup of cleanups.reverse()) cleanup();
  cleanups = [];
});

/**
 * A child node that maps the region, publishes check `seq` as 'checking' on client fd
 * `publishedFd`, and hangs (`spin`: a busy loop, `sleep`: a blocking wait).
 */
async function startHungWorker(mode: 'spin' | 'sleep', seq: number, publishedFd = CHILD_CLIENT_FD): Promise<HungWorker> {
  const region = SharedRegion.create('seize-client-test', 64);
  cleanups.push(() => closeFd(region.fd));
  const record = new Int32Array(region.buffer, 0, 3);
  const [clientEnd, workerEnd] = socketPair();
  cleanups.push(() => closeFd(clientEnd));
  const script = `
    import { SharedRegion } from ${JSON.stringify(SHARED_MEMORY_JS)};
    const record = new Int32Array(SharedRegion.map(${CHILD_REGION_FD}).buffer, 0, 3);
    Atomics.store(record, ${FD}, ${publishedFd});
    Atomics.store(record, ${STATE}, 1);
    Atomics.store(record, ${SEQ}, ${seq});
    if (${JSON.stringify(mode)} === 'spin') for (;;) {}
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0);
  `;
  let child: ChildProcess;
  try {
    child = spawn(process.execPath, ['--input-type=module', '-e', script], {
      stdio: ['ignore', 'inherit', 'inherit', workerEnd, region.fd],
    });
  } finally {
    closeFd(workerEnd); // the child has its own copy: the worker's end is now only in the child
  }
  const exited = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
  cleanups.push(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  assert.equal(setNonBlocking(clientEnd), 0);
  await eventually(() => Atomics.load(record, SEQ) === seq, 'the child published its record');
  // let it reach its hang (the loop or the wait)
  await new Promise((resolve) => setTimeout(resolve, 50));
  return {
    child,
    exited,
    record,
    clientEnd,
    readRecord: () => ({
      seq: Atomics.load(record, SEQ),
      state: STATE_NAMES[Atomics.load(record, STATE)] ?? 'unknown',
      fd: Atomics.load(record, FD),
    }),
  };
}

/** Everything readable on a non-blocking descriptor now, and whether the peer closed. */
function drain(fd: number): { text: string; closed: boolean } {
  const chunk = Buffer.alloc(256);
  let text = '';
  for (;;) {
    const count = readInto(fd, chunk);
    if (count === 0) return { text, closed: true };
    if (count === -EAGAIN) return { text, closed: false };
    assert.ok(count > 0, `read: ${count}`);
    text += chunk.toString('latin1', 0, count);
  }
}

async function assertKilled(worker: HungWorker): Promise<void> {
  const [code, signal] = await Promise.race([
    worker.exited,
    new Promise<never>((_, reject) => setTimeout(() => reject(new Error('the worker did not exit within 5 s')), 5000)),
  ]);
  assert.deepEqual([code, signal], [null, 'SIGKILL']);
}

describe('against real hung child processes', () => {
  for (const mode of ['spin', 'sleep'] as const) {
    test(`a worker hung in a ${mode === 'spin' ? 'busy loop' : 'blocking wait'}: its client is seized, the worker killed, the client answered through the seized descriptor`, async () => {
      const worker = await startHungWorker(mode, 7);
      assert.equal(processState(worker.child.pid!), mode === 'spin' ? 'R' : 'S');
      const started = performance.now();
      const seized = seizeClient(worker.child.pid!, () => worker.readRecord(), 7, systemSeizeOperations);
      const tookMs = performance.now() - started;
      assert.equal(typeof seized, 'number', `outcome: ${seized}`);
      const fd = seized as number;
      cleanups.push(() => closeFd(fd));
      // a copy shares the open file, flags included: the worker's end was blocking
      assert.equal(setNonBlocking(fd), 0);
      assert.ok(tookMs < STOP_WAIT_MS, `took ${tookMs.toFixed(1)} ms`);
      await assertKilled(worker);
      // the worker is gone, its copy closed with it: the seized one still holds the connection
      assert.deepEqual(drain(worker.clientEnd), { text: '', closed: false });
      const reply = Buffer.from('\x00\x1bNO authentication timed out');
      assert.equal(sendSome(fd, reply), reply.length);
      assert.deepEqual(drain(worker.clientEnd), { text: reply.toString('latin1'), closed: false });
      // and the client can still talk to whoever holds it now
      assert.equal(sendSome(worker.clientEnd, Buffer.from('bye')), 3);
      assert.deepEqual(drain(fd), { text: 'bye', closed: false });
      closeFd(fd);
      cleanups.pop();
      assert.deepEqual(drain(worker.clientEnd), { text: '', closed: true }, 'the seized descriptor was the last copy');
    });
  }

  test('a worker already on its next check: finished, continued (not stopped, not killed), nothing taken', async () => {
    const worker = await startHungWorker('spin', 8);
    assert.equal(seizeClient(worker.child.pid!, () => worker.readRecord(), 7, systemSeizeOperations), 'finished');
    await eventually(() => processState(worker.child.pid!) === 'R', 'the worker runs again after SIGCONT', 2000);
    assert.equal(worker.child.exitCode, null);
    assert.equal(worker.child.signalCode, null);
    assert.deepEqual(drain(worker.clientEnd), { text: '', closed: false }, 'the worker still holds its client');
    // and it can still be seized once its check really is late
    const seized = seizeClient(worker.child.pid!, () => worker.readRecord(), 8, systemSeizeOperations);
    assert.equal(typeof seized, 'number');
    closeFd(seized as number);
    await assertKilled(worker);
  });

  test('a published descriptor the worker does not have: pidfd_getfd fails, the worker is killed, its client sees a clean close', async () => {
    const worker = await startHungWorker('sleep', 7, 900);
    assert.equal(seizeClient(worker.child.pid!, () => worker.readRecord(), 7, systemSeizeOperations), 'killed');
    await assertKilled(worker);
    assert.deepEqual(drain(worker.clientEnd), { text: '', closed: true });
  });

  test('a pid with no process: killed (nothing to do, nothing signalled), no throw', () => {
    // above pid_max: no process can have it, so no unrelated process can be hit by mistake
    const pid = Number(readFileSync('/proc/sys/kernel/pid_max', 'latin1')) + 1;
    let reads = 0;
    const record = (): ActivityRecord => {
      reads++;
      return { seq: 1, state: 'checking', fd: 3 };
    };
    assert.equal(seizeClient(pid, record, 1, systemSeizeOperations), 'killed');
    assert.equal(reads, 0);
  });
});
