/**
 * The primary's side of the fast path: the workers that accept clients themselves.
 *   - gives each worker a place (its activity record in shared memory) and the listening
 *     socket once it is ready, and takes the socket back (quiesce) at shutdown;
 *   - receives what workers send it: connections handed over (to the front door), cache
 *     fills (to the cache, which only the primary writes), requests to be retired;
 *   - keeps the one deadline per check: a worker whose fast-path check is past --job-timeout
 *     is killed and replaced, and its client answered `NO authentication timed out`;
 *   - a worker that dies mid-check (a crashing PAM module) leaves its client in custody
 *     (fast-path/custody.ts): the primary answers it `NO authentication worker failed`.
 */
import { fstatSync } from 'node:fs';
import type { Logger } from '../log/logger.js';
import type { SocketPoller } from '../native/socket-poller.js';
import { closeFd } from '../native/posix-sockets.js';
import { systemMonotonicMs } from '../runtime/monotonic-clock.js';
import type { Timers, CancelTimer } from '../runtime/timers.js';
import { ActivityState, type CheckSubject, type WorkerActivity } from '../shared/worker-activity.js';
import type { CacheFill, Handoff } from './fast-path-frames.js';
import type { FastPathActivity } from './worker-lifecycle.js';
import { WorkerProcess } from './worker-process.js';
import { serializeWorkerSettings, type FastPathSettings, type WorkerSettings } from './worker-settings.js';

/** How often fast-path checks are looked at for their deadline, at most (and at least 4× per --job-timeout). */
const MAX_SUPERVISION_PERIOD_MS = 250;

function inodeOf(fd: number): number | undefined {
  try {
    return fstatSync(fd).ino;
  } catch {
    return undefined;
  }
}

/** While shutting down, how often workers are looked at for checks still running. */
const QUIET_POLL_MS = 10;

/** What the hub hands on to the rest of the primary. */
export interface FastPathHooks {
  /** A connection a worker handed over. */
  adopt(fd: number, handoff: Handoff): void;
  /** A client whose check ran past its deadline: answer it `NO` (the worker is gone). */
  answerTimedOut(fd: number, subject: CheckSubject): void;
  /** A client whose worker died during its check: answer it `NO`. */
  answerWorkerDied(fd: number, subject: CheckSubject): void;
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
}

interface Member {
  readonly worker: WorkerProcess;
  readonly place: number;
  /** Inode of the last connection it handed over (a worker dying mid-handoff: see its exit). */
  lastHandedOver: number | undefined;
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
    const member: Member = { worker, place, lastHandedOver: undefined };
    this.members.set(worker, member);
    worker.on('ready', () => {
      if (this.listenFd >= 0) worker.listen(this.listenFd);
    });
    worker.on('accepting', () => this.hooks?.workerAccepting());
    worker.on('handoff', (fd, handoff) => {
      member.lastHandedOver = inodeOf(fd);
      if (this.hooks) this.hooks.adopt(fd, handoff);
      else closeFd(fd);
    });
    worker.on('fill', (fill) => {
      this.hooks?.fill?.(fill);
      worker.filled(); // stored (or refused by the generation rule): the worker may answer now
    });
    worker.on('retire', () => this.hooks?.retire(worker));
    worker.on('exit', (code, signal) => {
      const late = this.killedLate.delete(worker);
      const client = worker.reclaimCustody();
      if (client !== undefined) this.answerOrphan(member, client, late, signal ?? `status ${code}`);
      this.members.delete(worker);
      this.freePlaces.push(place);
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
    for (const { worker } of this.members.values()) worker.quiesce();
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

  /**
   * The client a worker held when it died (its custody, fast-path/custody.ts). Its record,
   * still now that nothing writes it, says how far the worker got: a reply being written may
   * be out already (no second one: the client just sees the close); a connection it had
   * handed over already is the primary's (the handoff came in before the exit); otherwise the
   * client gets NO.
   */
  private answerOrphan({ worker, place, lastHandedOver }: Member, client: number, late: boolean, how: string): void {
    const record = this.options.activity.read(place);
    if (record.state === ActivityState.replying || (lastHandedOver !== undefined && inodeOf(client) === lastHandedOver) || !this.hooks) {
      closeFd(client);
      return;
    }
    const subject = this.options.activity.subject(place);
    if (late && record.state === ActivityState.checking) {
      this.hooks.answerTimedOut(client, subject);
      return;
    }
    this.options.log.error(`worker ${worker.pid} died during a request (${how}); the client gets NO`);
    this.hooks.answerWorkerDied(client, subject);
  }

  /** Answers every fast-path check past its deadline (see the file comment). */
  private supervise(): void {
    this.hooks?.tick?.();
    const now = systemMonotonicMs();
    for (const member of [...this.members.values()]) {
      const record = this.options.activity.read(member.place);
      if (record.state !== ActivityState.checking || now - record.startedAt < this.options.jobTimeoutMs) continue;
      this.overdue(member);
    }
  }

  private overdue({ worker }: Member): void {
    if (this.killedLate.has(worker)) return; // killed already, its exit not seen yet
    this.killedLate.add(worker);
    this.timeouts++;
    this.hooks?.killing(worker);
    this.options.log.error(`mechanism did not answer within ${this.options.jobTimeoutMs} ms: worker ${worker.pid} killed and replaced (a client it answered itself)`);
    worker.kill('SIGKILL'); // its client waits in custody: answered at its exit
  }
}
