/**
 * The primary's handle on one worker process: spawns it, speaks the channel protocol
 * (channel.ts) over its fd 3, and reports what happens as events. Scheduling decisions
 * (who gets which job, deadlines, replacement) belong to the pool, not here.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { selfCommand } from '../native/self-exec.js';
import {
  EAGAIN,
  EINTR,
  EPOLLIN,
  EPOLLOUT,
  closeFd,
  sendSome,
  setNonBlocking,
  shutdownWrite,
  socketPair,
} from '../native/posix-sockets.js';
import { receiveWithDescriptors, sendWithDescriptor } from '../native/descriptor-passing.js';
import type { SocketPoller } from '../native/socket-poller.js';
import { FrameReader, FrameType, decodeResult, encodeJob, encodeSimple, type JobFrame, type ResultFrame } from './channel.js';
import { decodeFill, decodeHandoff, type CacheFill, type Handoff } from './fast-path-frames.js';

export interface WorkerProcessEvents {
  ready: [];
  failed: [reason: string];
  result: [result: ResultFrame];
  exit: [code: number | null, signal: NodeJS.Signals | null];
  /** The worker now takes clients from the listening socket itself. */
  accepting: [];
  /** A client connection the worker handed over (the descriptor is ours now). */
  handoff: [fd: number, handoff: Handoff];
  /** A cache entry the worker asks the primary to store. */
  fill: [fill: CacheFill];
  /** The worker reached --max-jobs-per-worker and stopped accepting. */
  retire: [];
  /** A connection it handed over was lost on the way: this process is out of descriptors. */
  handoffDropped: [];
}

/** How a worker process is started: the real one spawns; tests may pass their own. */
export interface WorkerSpawnOptions {
  /** With the fast path: the shared region's descriptor, inherited as the worker's fd 4 (shared/shared-state.ts). */
  readonly sharedRegionFd?: number;
}

/**
 * What the pool needs of one worker process. WorkerProcess is the real one; unit tests drive
 * fakes through the same events (test/worker-pool-units.test.ts).
 */
export interface WorkerHandle extends Pick<EventEmitter<WorkerProcessEvents>, 'on' | 'once' | 'removeAllListeners'> {
  readonly pid: number;
  readonly alive: boolean;
  send(job: JobFrame): void;
  kill(signal: NodeJS.Signals): void;
  close(): void;
}

/** Read size on the primary's end of a channel: results are a few dozen bytes each. */
const CHANNEL_READ_BYTES = 4096;
const channelChunk = Buffer.alloc(CHANNEL_READ_BYTES);

export class WorkerProcess extends EventEmitter<WorkerProcessEvents> implements WorkerHandle {
  readonly pid: number;
  private readonly child: ChildProcess | undefined;
  /** Our end of the channel (the worker's fd 3), non-blocking, on the socket poller; -1 when none. */
  private channelFd = -1;
  /** Frames the kernel did not take yet (a worker that stopped reading), whole, to be zeroed whole. */
  private unsent: Buffer[] = [];
  /** Bytes of unsent[0] already sent. */
  private sentOfFirst = 0;
  private readonly reader = new FrameReader();
  /** EPOLLOUT is being watched (only while frames wait for room). */
  private waitingForRoom = false;
  private exited = false;

  /** Descriptors received with frames, not yet matched to their HANDOFF frame (oldest first). */
  private readonly descriptors: number[] = [];
  /** Descriptors the kernel could not give us (EMFILE): their frames come without one. */
  private descriptorsLost = 0;
  /** close() shut our writing side: the worker reads EOF after what was sent. */
  private writeShut = false;

  constructor(
    script: string,
    settingsJson: string,
    private readonly poller: SocketPoller,
    spawnOptions: WorkerSpawnOptions = {},
  ) {
    super();
    const self = selfCommand('worker', script, [settingsJson]);
    let child: ChildProcess | undefined;
    let workerEnd = -1;
    try {
      const [ours, theirs] = socketPair();
      this.channelFd = ours;
      workerEnd = theirs;
      const extra = spawnOptions.sharedRegionFd === undefined ? [] : [spawnOptions.sharedRegionFd];
      child = spawn(self.command, self.args, { stdio: ['ignore', 'inherit', 'inherit', workerEnd, ...extra], env: self.env });
    } catch {
      child = undefined; // EMFILE, ENOMEM, EAGAIN…: reported below as a worker that exited at once
    }
    if (workerEnd >= 0) closeFd(workerEnd); // the worker has its own copy (or none)
    this.pid = child?.pid ?? -1;
    if (!child || this.pid < 0 || setNonBlocking(this.channelFd) < 0 || !this.poller.watch(this.channelFd, EPOLLIN, this.onChannelReady)) {
      // Out of file descriptors leaves no channel: a start failure, not a crash of the
      // primary; the pool retries with a backoff.
      child?.on('error', () => {});
      child?.kill('SIGKILL');
      this.child = undefined;
      setImmediate(() => this.onExit(null, null));
      return;
    }
    this.child = child;
    child.on('error', () => this.onExit(null, null));
    child.on('exit', (code, signal) => this.onExit(code, signal));
  }

  /** Hands a job to the worker. The frame holding the password is zeroed once written. */
  send(job: JobFrame): void {
    const frame = encodeJob(job);
    if (this.channelFd < 0 || this.writeShut) {
      frame.fill(0); // no worker: its exit event answers the job
      return;
    }
    this.unsent.push(frame);
    if (this.unsent.length === 1) this.flush();
  }

  /** Gives the worker the listening socket: it accepts clients itself from then on. */
  listen(listenFd: number): void {
    if (this.channelFd < 0 || this.writeShut || this.unsent.length > 0) {
      // Frames are queued (a worker not reading): the socket is not worth queuing behind them.
      return;
    }
    const frame = encodeSimple(FrameType.listen);
    let sent = sendWithDescriptor(this.channelFd, frame, listenFd);
    if (sent === -EINTR) sent = sendWithDescriptor(this.channelFd, frame, listenFd);
    if (sent < 0 && sent !== -EAGAIN) this.kill('SIGKILL');
    // -EAGAIN: the channel is full; the worker stays on the jobs the primary sends it.
  }

  /** Asks the worker to stop accepting clients (it still runs jobs until its channel closes). */
  quiesce(): void {
    this.sendFrame(encodeSimple(FrameType.quiesce));
  }

  /** Tells the worker its cache fill is stored (it answers its client OK then). */
  filled(): void {
    this.sendFrame(encodeSimple(FrameType.filled));
  }

  private sendFrame(frame: Buffer): void {
    // After close() the worker reads EOF instead (a fill it waits on is given up on there).
    if (this.channelFd < 0 || this.writeShut) return;
    this.unsent.push(frame);
    if (this.unsent.length === 1) this.flush();
  }

  get alive(): boolean {
    return !this.exited;
  }

  kill(signal: NodeJS.Signals): void {
    if (!this.exited) this.child?.kill(signal);
  }

  /** Asks the worker to exit once idle: it exits at EOF on its channel (worker-main.ts). */
  close(): void {
    if (this.channelFd < 0 || this.writeShut) return;
    this.writeShut = true;
    for (const frame of this.unsent) frame.fill(0); // a worker told to go gets nothing more
    this.unsent = [];
    this.sentOfFirst = 0;
    shutdownWrite(this.channelFd);
  }

  private readonly onChannelReady = (mask: number): void => {
    if (mask & EPOLLOUT) this.flush();
    this.readResults();
  };

  private flush(): void {
    while (this.unsent.length > 0) {
      const frame = this.unsent[0]!;
      const rest = this.sentOfFirst === 0 ? frame : frame.subarray(this.sentOfFirst);
      const sent = sendSome(this.channelFd, rest);
      if (sent === -EAGAIN || (sent >= 0 && sent < rest.length)) {
        if (sent > 0) this.sentOfFirst += sent;
        if (!this.waitingForRoom) this.poller.change(this.channelFd, EPOLLIN | EPOLLOUT);
        this.waitingForRoom = true;
        return;
      }
      frame.fill(0);
      this.unsent.shift();
      this.sentOfFirst = 0;
      if (sent < 0) {
        this.kill('SIGKILL'); // the channel is broken: the exit event answers the job
        return;
      }
    }
    if (this.waitingForRoom) this.poller.change(this.channelFd, EPOLLIN);
    this.waitingForRoom = false;
  }

  private readResults(): void {
    for (;;) {
      const { count, fds, controlTruncated } = receiveWithDescriptors(this.channelFd, channelChunk);
      this.descriptors.push(...fds);
      if (controlTruncated) this.descriptorsLost++;
      if (count === -EAGAIN || count === -EINTR) return;
      if (count <= 0) {
        // EOF or an error: the worker is gone or going; its exit event tells the story.
        this.poller.unwatch(this.channelFd);
        return;
      }
      let frames: { type: number; payload: Buffer }[];
      try {
        frames = [...this.reader.push(Buffer.from(channelChunk.subarray(0, count)))];
        channelChunk.fill(0, 0, count); // a handoff holds a client's request
      } catch {
        this.kill('SIGKILL'); // a worker that speaks garbage cannot be trusted with a reply
        return;
      }
      for (const frame of frames) this.onFrame(frame.type, frame.payload);
    }
  }

  private onFrame(type: number, payload: Buffer): void {
    if (type === FrameType.ready) this.emit('ready');
    else if (type === FrameType.result) this.emit('result', decodeResult(payload));
    else if (type === FrameType.handoff) this.onHandoff(payload);
    else if (type === FrameType.fill) this.emit('fill', decodeFill(payload));
    else if (type === FrameType.accepting) this.emit('accepting');
    else if (type === FrameType.retire) this.emit('retire');
    else if (type === FrameType.failed) this.emit('failed', payload.toString('utf8'));
  }

  /** A descriptor arrives no later than the first byte of the frame it was sent with. */
  private onHandoff(payload: Buffer): void {
    const fd = this.descriptors.shift();
    const handoff = decodeHandoff(payload);
    payload.fill(0); // the request's bytes (a password) were copied into the handoff
    if (fd === undefined) {
      handoff.received.fill(0);
      if (this.descriptorsLost > 0) {
        // We are out of descriptors: the kernel closed the connection instead of passing it.
        this.descriptorsLost--;
        this.emit('handoffDropped');
        return;
      }
      this.kill('SIGKILL'); // a handoff without its connection: this worker's channel is not to be trusted
      return;
    }
    this.emit('handoff', fd, handoff);
  }

  private onExit(code: number | null, signal: NodeJS.Signals | null): void {
    if (this.exited) return;
    this.exited = true;
    if (this.channelFd >= 0) {
      this.readResults(); // a result written just before the exit still counts
      for (const fd of this.descriptors.splice(0)) closeFd(fd);
      this.poller.unwatch(this.channelFd);
      closeFd(this.channelFd);
      this.channelFd = -1;
    }
    for (const frame of this.unsent) frame.fill(0);
    this.unsent = [];
    this.emit('exit', code, signal);
  }
}
