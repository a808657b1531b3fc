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
  private readonly child: ChildProcess;
  private readonly channel: Socket;
  private exited = false;

  constructor(script: string, settingsJson: string) {
    super();
    const self = selfCommand('worker', script, [settingsJson]);
    this.child = spawn(self.command, self.args, {
      stdio: ['ignore', 'inherit', 'inherit', 'pipe'],
      env: { ...process.env, ...self.env },
    });
    this.pid = this.child.pid ?? -1;
    this.channel = this.child.stdio[3] as Socket;
    const reader = new FrameReader();
    this.channel.on('data', (chunk: Buffer) => {
      try {
        for (const frame of reader.push(chunk)) this.onFrame(frame.type, frame.payload);
      } catch {
        this.kill('SIGKILL'); // a worker that speaks garbage cannot be trusted with a reply
      }
    });
    this.channel.on('error', () => {}); // the exit event tells the story
    this.child.on('error', () => this.onExit(null, null));
    this.child.on('exit', (code, signal) => this.onExit(code, signal));
  }

  /** Hands a job to the worker. The frame holding the password is zeroed once written. */
  send(job: JobFrame): void {
    const frame = encodeJob(job);
    this.channel.write(frame, () => frame.fill(0));
  }

  get alive(): boolean {
    return !this.exited;
  }

  kill(signal: NodeJS.Signals): void {
    if (!this.exited) this.child.kill(signal);
  }

  /** Asks the worker to exit once idle: it exits at EOF on its channel (worker-main.ts). */
  close(): void {
    this.channel.end();
  }

  private onFrame(type: number, payload: Buffer): void {
    if (type === FrameType.ready) this.emit('ready');
    else if (type === FrameType.result) this.emit('result', decodeResult(payload));
    else if (type === FrameType.failed) this.emit('failed', payload.toString('utf8'));
  }

  private onExit(code: number | null, signal: NodeJS.Signals | null): void {
    if (this.exited) return;
    this.exited = true;
    this.channel.destroy();
    this.emit('exit', code, signal);
  }
}
