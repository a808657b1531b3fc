/**
 * Entry point of a worker process: runs one mechanism, one job at a time, for the primary.
 * It talks only to the primary, over fd 3 (see channel.ts); it never sees a client socket.
 * It exits at EOF on fd 3: when the primary stops or retires it, and when the primary dies,
 * so a crashed primary leaves no workers behind.
 *
 * A mechanism that answers synchronously (PAM) is driven by a blocking loop — read(2) a
 * frame, run the job, write(2) the result — with no event loop turn between jobs, the
 * cheapest path per request. Asynchronous mechanisms run on the event loop.
 * Signals meant for the daemon (a terminal's Ctrl-C, a lost session, systemd's SIGTERM to
 * the whole group, `pkill -USR1 saslauthd`) are ignored here: the primary lets in-flight requests finish, then closes
 * the channel. A worker it must stop at once gets SIGKILL.
 */
// First: shuts the Node runtime's own doors (inspector on SIGUSR1, NODE_OPTIONS, default
// signal actions) before any other module runs.
import { takeOverSignals } from '../runtime/harden-process.js';
import { readSync, writeSync } from 'node:fs';
import { Socket } from 'node:net';
import { createLogger } from '../log/logger.js';
import { findMechanism } from '../mechanisms/registry.js';
import type { AuthResult, Mechanism } from '../mechanisms/types.js';
import { FrameReader, FrameType, decodeJob, encodeResult, encodeSimple, type JobFrame, type ResultFrame } from './channel.js';
import { parseWorkerSettings } from './worker-settings.js';

/** The channel to the primary (the fourth stdio entry of spawn()). */
const CHANNEL_FD = 3;
/** Read size of the blocking loop: a job frame is at most ~1.3 KB. */
const READ_BYTES = 64 * 1024;

const settings = parseWorkerSettings(process.argv[2]);
const log = createLogger({ format: settings.logFormat, verbose: settings.verbose });

const ignore = (): void => {};
takeOverSignals({ SIGINT: ignore, SIGHUP: ignore, SIGTERM: ignore, SIGUSR1: ignore, SIGUSR2: ignore });

const mechanism = startMechanism();
if (mechanism?.blocking) runBlockingLoop(mechanism);
else if (mechanism) runEventLoop(mechanism);

/** The configured mechanism, or undefined after telling the primary why it cannot start. */
function startMechanism(): Mechanism | undefined {
  try {
    const factory = findMechanism(settings.mechanism);
    if (!factory) throw new Error(`unknown authentication mechanism: ${settings.mechanism}`);
    return factory.create({ mechOption: settings.mechOption, jobTimeoutMs: settings.jobTimeoutMs, log });
  } catch (error) {
    writeFrame(encodeSimple(FrameType.failed, (error as Error).message));
    process.exit(1);
  }
}

function runBlockingLoop(blocking: Mechanism): never {
  writeFrame(encodeSimple(FrameType.ready));
  const reader = new FrameReader();
  const buffer = Buffer.allocUnsafe(READ_BYTES);
  for (;;) {
    let count: number;
    try {
      count = readSync(CHANNEL_FD, buffer, 0, buffer.length, null);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'EAGAIN' || (error as NodeJS.ErrnoException).code === 'EINTR') continue;
      process.exit(0); // the channel is gone: so is the primary
    }
    if (count === 0) process.exit(0);
    // The reader may keep part of the chunk; give it a copy, and wipe the read buffer.
    const chunk = Buffer.from(buffer.subarray(0, count));
    buffer.fill(0, 0, count);
    for (const frame of reader.push(chunk)) {
      if (frame.type !== FrameType.job) continue;
      const job = decodeJob(frame.payload);
      const result = runJob(job, () => blocking.authenticate(toRequest(job)) as ReturnType<Mechanism['authenticate']>);
      writeFrame(encodeResult(result as ResultFrame));
    }
  }
}

function runEventLoop(evented: Mechanism): void {
  const channel = new Socket({ fd: CHANNEL_FD, readable: true, writable: true });
  const reader = new FrameReader();
  const jobs: JobFrame[] = [];
  let busy = false;
  const drain = async (): Promise<void> => {
    if (busy) return;
    busy = true;
    for (let job = jobs.shift(); job; job = jobs.shift()) {
      const current = job;
      channel.write(encodeResult(await runJob(current, () => evented.authenticate(toRequest(current)))));
    }
    busy = false;
  };
  channel.on('data', (chunk: Buffer) => {
    for (const frame of reader.push(chunk)) if (frame.type === FrameType.job) jobs.push(decodeJob(frame.payload));
    void drain();
  });
  channel.on('end', () => process.exit(0));
  channel.on('error', () => process.exit(0));
  channel.write(encodeSimple(FrameType.ready));
}

function toRequest(job: JobFrame): Parameters<Mechanism['authenticate']>[0] {
  const remoteHost = job.remoteHost.length > 0 ? job.remoteHost.toString('latin1') : undefined;
  return {
    login: job.login,
    password: job.password,
    service: job.service,
    realm: job.realm,
    ...(remoteHost === undefined ? {} : { remoteHost }),
  };
}

/**
 * Runs one job through `authenticate`, turning a throw into `NO internal mechanism failure`
 * and zeroing the password afterwards. Synchronous when `authenticate` is.
 */
function runJob(job: JobFrame, authenticate: () => ReturnType<Mechanism['authenticate']>): ResultFrame | Promise<ResultFrame> {
  const failure = (error: unknown): ResultFrame => {
    log.error(`internal mechanism failure: ${(error as Error).message}`);
    return { jobId: job.jobId, failDelayMs: 0, reply: 'NO internal mechanism failure' };
  };
  let settledSynchronously = true;
  try {
    const result = authenticate();
    if (!(result instanceof Promise)) return resultFrame(job, result);
    settledSynchronously = false;
    return result.then(
      (value) => resultFrame(job, value),
      failure,
    ).finally(() => job.password.fill(0));
  } catch (error) {
    return failure(error);
  } finally {
    if (settledSynchronously) job.password.fill(0);
  }
}

function resultFrame(job: JobFrame, result: AuthResult): ResultFrame {
  return { jobId: job.jobId, failDelayMs: result.failDelayMs ?? 0, reply: result.reply, ...(result.unavailable ? { unavailable: true } : {}) };
}

/** Writes a whole frame to the primary, blocking (a frame is small). */
function writeFrame(frame: Buffer): void {
  let offset = 0;
  while (offset < frame.length) {
    try {
      offset += writeSync(CHANNEL_FD, frame, offset);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'EAGAIN') continue;
      process.exit(0); // the primary is gone
    }
  }
}
