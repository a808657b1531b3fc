/**
 * The primary's handle on one worker process: spawns it, speaks the channel protocol
 * (channel.ts) over its fd 3, and reports what happens as events. Scheduling decisions
 * (who gets which job, deadlines, replacement) belong to the pool, not here.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import { selfCommand } from '../native/self-exec.js';
import { FrameReader, FrameType, decodeResult, encodeJob, type JobFrame, type ResultFrame } from './channel.js';

export interface WorkerProcessEvents {
  ready: [];
  failed: [reason: string];
  result: [result: ResultFrame];
  exit: [code: number | null, signal: NodeJS.Signals | null];
}

export class WorkerProcess extends EventEmitter<WorkerProcessEvents> {
  readonly pid: number;
  private readonly child: ChildProcess | undefined;
  private readonly channel: Socket | undefined;
  private exited = false;

  constructor(script: string, settingsJson: string) {
    super();
    const self = selfCommand('worker', script, [settingsJson]);
    let child: ChildProcess | undefined;
    try {
      child = spawn(self.command, self.args, {
        stdio: ['ignore', 'inherit', 'inherit', 'pipe'],
        env: { ...process.env, ...self.env },
      });
    } catch {
      child = undefined; // ENOMEM, EAGAIN…: reported below as a worker that exited at once
    }
    const channel = child?.stdio[3] as Socket | undefined;
    this.pid = child?.pid ?? -1;
    if (!child || !channel) {
      // Out of file descriptors (EMFILE) leaves no stdio: a start failure, not a crash of
      // the primary; the pool retries with a backoff.
      this.child = undefined;
      this.channel = undefined;
      child?.on('error', () => {});
      setImmediate(() => this.onExit(null, null));
      return;
    }
    this.child = child;
    this.channel = channel;
    const reader = new FrameReader();
    channel.on('data', (chunk: Buffer) => {
      let frames: { type: number; payload: Buffer }[];
      try {
        frames = [...reader.push(chunk)];
      } catch {
        this.kill('SIGKILL'); // a worker that speaks garbage cannot be trusted with a reply
        return;
      }
      for (const frame of frames) this.onFrame(frame.type, frame.payload);
    });
    channel.on('error', () => {}); // the exit event tells the story
    child.on('error', () => this.onExit(null, null));
    child.on('exit', (code, signal) => this.onExit(code, signal));
  }

  /** Hands a job to the worker. The frame holding the password is zeroed once written. */
  send(job: JobFrame): void {
    const frame = encodeJob(job);
    if (this.channel) this.channel.write(frame, () => frame.fill(0));
    else frame.fill(0); // no worker: its exit event answers the job
  }

  get alive(): boolean {
    return !this.exited;
  }

  kill(signal: NodeJS.Signals): void {
    if (!this.exited) this.child?.kill(signal);
  }

  /** Asks the worker to exit once idle: it exits at EOF on its channel (worker-main.ts). */
  close(): void {
    this.channel?.end();
  }

  private onFrame(type: number, payload: Buffer): void {
    if (type === FrameType.ready) this.emit('ready');
    else if (type === FrameType.result) this.emit('result', decodeResult(payload));
    else if (type === FrameType.failed) this.emit('failed', payload.toString('utf8'));
  }

  private onExit(code: number | null, signal: NodeJS.Signals | null): void {
    if (this.exited) return;
    this.exited = true;
    this.channel?.destroy();
    this.emit('exit', code, signal);
  }
}
