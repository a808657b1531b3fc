/**
 * The primary's side of the fast path: the workers that accept clients themselves.
 *   - gives each worker a place (its activity record in shared memory) and the listening
 *     socket once it is ready, and takes the socket back (quiesce) at shutdown;
 *   - receives what workers send it: connections handed over (to the front door), cache
 *     fills (to the cache, which only the primary writes), requests to be retired;
 *   - keeps the one deadline per check: a worker whose fast-path check is past --job-timeout
 *     is stopped, its client's descriptor taken (pidfd_getfd: workers/seize-client.ts), the
 *     worker killed and replaced, and the client answered `NO authentication timed out`.
 * A worker that dies by itself mid-request (a crashing module, a kill by someone else) takes
 * its client's connection with it: the client sees it closed, never a hang — as with the
 * original. Keeping a copy of every client in the primary's reach for that case (SCM_RIGHTS
 * per request) was measured: the kernel's garbage collector for descriptors in flight then
 * runs at every close of a Unix socket, and the fast path lost about 40 % of its throughput.
 */
import type { Logger } from '../log/logger.js';
import type { SocketPoller } from '../native/socket-poller.js';
import { closeFd } from '../native/posix-sockets.js';
import { systemMonotonicMs } from '../runtime/monotonic-clock.js';
import type { Timers, CancelTimer } from '../runtime/timers.js';
import { ActivityState, type CheckSubject, type WorkerActivity } from '../shared/worker-activity.js';
import type { CacheFill, Handoff } from './fast-path-frames.js';
import { seizeClient, systemSeizeOperations, type SeizeOperations } from './seize-client.js';
import type { FastPathActivity } from './worker-lifecycle.js';
import { WorkerProcess } from './worker-process.js';
import { serializeWorkerSettings, type FastPathSettings, type WorkerSettings } from './worker-settings.js';

/**
 * How often workers' records are looked at (deadlines, whether the primary must take
 * connections): at most this period, and at least 4× per --job-timeout.
 */
const MAX_SUPERVISION_PERIOD_MS = 50;
/**
 * A worker busy with one check for this long is slow (pam_unix's hash, a network backend,
 * a hung module): when every worker is, the primary takes new connections itself and queues
 * them with its deadlines and bounds, rather than leave them in the listen backlog.
 */
const SLOW_CHECK_MS = 100;

/** While shutting down, how often workers are looked at for checks still running. */
const QUIET_POLL_MS = 10;

/** What the hub hands on to the rest of the primary. */
export interface FastPathHooks {
  /** A connection a worker handed over. */
  adopt(fd: number, handoff: Handoff): void;
  /** A client whose check ran past its deadline: answer it `NO` (the worker is gone). */
  answerTimedOut(fd: number, subject: CheckSubject): void;
  /** A cache entry a worker asks to store (undefined without -c). */
  fill?: ((fill: CacheFill) => void) | undefined;
  /** A worker began waiting on the listening socket: the primary's watch goes behind it. */
  workerAccepting(): void;
  /** A worker asks to be replaced (--max-jobs-per-worker). */
  retire(worker: WorkerProcess): void;
  /** A worker is being killed for its late check: its exit is expected. */
  killing(worker: WorkerProcess): void;
  /** Every supervision tick: checks in workers may have ended (waiting turns and jobs may start now). */
  tick?(): void;
  /** Whether the primary must take connections itself (no worker can now). */
  overflow(takeConnections: boolean): void;
  /** A connection handed over was lost: the primary is out of descriptors. */
  handoffDropped(): void;
}

export interface FastPathHubOptions {
  readonly activity: WorkerActivity;
  /** The shared region's descriptor, inherited by every worker. */
  readonly sharedRegionFd: number;
  readonly workerScript: string;
  readonly settings: WorkerSettings;
  /** Everything but the place, which the hub gives each worker. */
  readonly fastPath: Omit<FastPathSettings, 'place'>;
  readonly poller: SocketPoller;
  readonly jobTimeoutMs: number;
  readonly log: Logger;
  readonly timers: Timers;
  /** How a late worker's client is taken (tests pass their own). */
  readonly seizeOperations?: SeizeOperations;
}

interface Member {
  readonly worker: WorkerProcess;
  readonly place: number;
  /** It waits on the listening socket (ACCEPTING came). */
  accepting: boolean;
}

export class FastPathHub {
  private readonly members = new Map<WorkerProcess, Member>();
  /** Workers killed because a check ran past its deadline (their exit is expected). */
  private readonly killedLate = new Set<WorkerProcess>();
  private readonly freePlaces: number[] = [];
  private listenFd = -1;
  private hooks: FastPathHooks | undefined;
  private cancelSupervision: CancelTimer | undefined;
  /** Fast-path checks answered NO by the primary at their deadline. */
  timeouts = 0;
  /** Last told: workers take the connections (the primary does not). */
  private workersTake = false;

  constructor(private readonly options: FastPathHubOptions) {
    for (let place = options.activity.places - 1; place >= 0; place--) this.freePlaces.push(place);
  }

  /** Connects the hub to the parts it hands things to (they exist only once the pool does). */
  connect(hooks: FastPathHooks): void {
    this.hooks = hooks;
    const period = Math.max(10, Math.min(MAX_SUPERVISION_PERIOD_MS, Math.floor(this.options.jobTimeoutMs / 4)));
    this.cancelSupervision = this.options.timers.every(period, () => this.supervise());
  }

  /** Starts a worker with a place of its own (the pool's worker starter). */
  startWorker(): WorkerProcess {
    const place = this.freePlaces.pop();
    const settings: WorkerSettings =
      place === undefined ? this.options.settings : { ...this.options.settings, fastPath: { ...this.options.fastPath, place } };
    if (place !== undefined) this.options.activity.reset(place);
    const worker = new WorkerProcess(this.options.workerScript, serializeWorkerSettings(settings), this.options.poller, {
      sharedRegionFd: this.options.sharedRegionFd,
    });
    if (place === undefined) return worker; // more workers than places (cannot happen by the sizes): jobs only
    const member: Member = { worker, place, accepting: false };
    this.members.set(worker, member);
    worker.on('ready', () => {
      if (this.listenFd >= 0) worker.listen(this.listenFd);
    });
    worker.on('accepting', () => {
      member.accepting = true;
      this.hooks?.workerAccepting();
      this.updateOverflow();
    });
    worker.on('handoff', (fd, handoff) => {
      if (this.hooks) this.hooks.adopt(fd, handoff);
      else closeFd(fd);
    });
    worker.on('handoffDropped', () => this.hooks?.handoffDropped());
    worker.on('fill', (fill) => {
      this.hooks?.fill?.(fill);
      worker.filled(); // stored (or refused by the generation rule): the worker may answer now
    });
    worker.on('retire', () => this.hooks?.retire(worker));
    worker.on('exit', (code, signal) => {
      member.accepting = false;
      const late = this.killedLate.delete(worker);
      const state = this.options.activity.read(place).state;
      if (!late && state !== ActivityState.idle && state !== ActivityState.job) {
        this.options.log.error(`worker ${worker.pid} died during a request it answered itself (${signal ?? `status ${code}`}); that client's connection is closed`);
      }
      this.members.delete(worker);
      this.freePlaces.push(place);
      this.updateOverflow();
    });
    return worker;
  }

  /** Workers may take clients from `fd` from now on (the primary listens). */
  listen(fd: number): void {
    this.listenFd = fd;
    for (const { worker } of this.members.values()) worker.listen(fd);
  }

  /** Workers stop taking clients (shutdown): what they hold they still answer. */
  quiesce(): void {
    this.listenFd = -1;
    for (const member of this.members.values()) {
      member.accepting = false;
      member.worker.quiesce();
    }
  }

  stop(): void {
    this.cancelSupervision?.();
  }

  /** Resolves once no worker is checking a client on its fast path, or after `ms` (shutdown). */
  async quiet(ms: number): Promise<void> {
    const deadline = this.options.timers.now() + ms;
    while (this.options.timers.now() < deadline && [...this.members.values()].some(({ place }) => this.options.activity.read(place).state !== ActivityState.idle)) {
      await new Promise<void>((resolve) => this.options.timers.after(QUIET_POLL_MS, resolve));
    }
  }

  /** Checks of the login (its digest, base64 as the scheduler names it) running in workers now. */
  checksOfLogin(login: string): number {
    const tag = Buffer.from(login, 'base64');
    let count = 0;
    for (const { place } of this.members.values()) if (this.options.activity.checkingLogin(place, tag)) count++;
    return count;
  }

  /** For the lifecycle: what a worker does on its fast path. */
  activityOf(worker: WorkerProcess): FastPathActivity | undefined {
    const member = this.members.get(worker);
    if (!member) return undefined;
    const record = this.options.activity.read(member.place);
    const now = systemMonotonicMs();
    return {
      checking: record.state !== ActivityState.idle,
      checkingForMs: now - record.startedAt,
      checksDone: record.checksDone,
      idleForMs: now - record.lastActiveAt,
    };
  }

  /** The primary takes connections while no worker waiting on the socket is free or quick. */
  private updateOverflow(): void {
    if (this.listenFd < 0) return;
    const now = systemMonotonicMs();
    let workerCanTake = false;
    for (const { accepting, place } of this.members.values()) {
      if (!accepting) continue;
      const record = this.options.activity.read(place);
      if (record.state === ActivityState.idle || now - record.startedAt < SLOW_CHECK_MS) workerCanTake = true;
    }
    if (workerCanTake !== this.workersTake) {
      this.workersTake = workerCanTake;
      this.hooks?.overflow(!workerCanTake);
    }
  }

  /** Answers every fast-path check past its deadline (see the file comment). */
  private supervise(): void {
    this.hooks?.tick?.();
    this.updateOverflow();
    const now = systemMonotonicMs();
    for (const member of [...this.members.values()]) {
      const record = this.options.activity.read(member.place);
      if (record.state !== ActivityState.checking || now - record.startedAt < this.options.jobTimeoutMs) continue;
      this.overdue(member, record.seq);
    }
  }

  private overdue({ worker, place }: Member, seq: number): void {
    if (this.killedLate.has(worker)) return; // killed already, its exit not seen yet
    const { activity, log, jobTimeoutMs } = this.options;
    let subject: CheckSubject | undefined;
    const outcome = seizeClient(
      worker.pid,
      () => {
        // read while the worker is stopped: exact
        const record = activity.read(place);
        subject = activity.subject(place);
        return { seq: record.seq, state: record.state === ActivityState.checking ? 'checking' : 'other', fd: record.fd };
      },
      seq,
      this.options.seizeOperations ?? systemSeizeOperations,
    );
    if (outcome === 'finished') return; // it answered just in time
    this.killedLate.add(worker);
    this.timeouts++;
    this.hooks?.killing(worker);
    log.error(`mechanism did not answer within ${jobTimeoutMs} ms: worker ${worker.pid} killed and replaced (a client it answered itself)`);
    if (typeof outcome !== 'number') return; // killed without its client: the client sees the connection closed
    if (this.hooks && subject) this.hooks.answerTimedOut(outcome, subject);
    else closeFd(outcome);
  }

}
