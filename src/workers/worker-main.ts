/**
 * Entry point of a worker process: runs one mechanism, one job at a time, for the primary.
 * It talks only to the primary, over fd 3 (see channel.ts); it never sees a client socket.
 * It exits when the primary goes away (EOF on fd 3), so a crashed primary leaves no workers.
 */
import { Socket } from 'node:net';
import { createLogger } from '../log/logger.js';
import { findMechanism } from '../mechanisms/registry.js';
import type { Mechanism } from '../mechanisms/types.js';
import {
  FrameReader,
  FrameType,
  decodeJob,
  encodeResult,
  encodeSimple,
  type JobFrame,
} from './channel.js';
import { parseWorkerSettings } from './worker-settings.js';

const settings = parseWorkerSettings(process.argv[2]);
const log = createLogger({ format: settings.logFormat, verbose: settings.verbose });
const channel = new Socket({ fd: 3, readable: true, writable: true });

// The terminal's Ctrl-C and a lost session belong to the primary: it decides when we stop.
process.on('SIGINT', () => {});
process.on('SIGHUP', () => {});
let busy = false;
let stopRequested = false;
process.on('SIGTERM', () => {
  stopRequested = true;
  if (!busy) process.exit(0);
});

const mechanism = startMechanism();

/** The configured mechanism, or undefined after telling the primary why it cannot start. */
function startMechanism(): Mechanism | undefined {
  try {
    const factory = findMechanism(settings.mechanism);
    if (!factory) throw new Error(`unknown authentication mechanism: ${settings.mechanism}`);
    return factory.create({ mechOption: settings.mechOption, log });
  } catch (error) {
    channel.end(encodeSimple(FrameType.failed, (error as Error).message), () => process.exit(1));
    return undefined;
  }
}

const jobs: JobFrame[] = [];
const reader = new FrameReader();
channel.on('data', (chunk: Buffer) => {
  for (const frame of reader.push(chunk)) {
    if (frame.type === FrameType.job) jobs.push(decodeJob(frame.payload));
  }
  void drainJobs();
});
channel.on('end', () => process.exit(0));
channel.on('error', () => process.exit(0));
if (mechanism) channel.write(encodeSimple(FrameType.ready));

async function drainJobs(): Promise<void> {
  if (busy) return;
  busy = true;
  for (let job = jobs.shift(); job; job = jobs.shift()) {
    channel.write(encodeResult(await runJob(job)));
  }
  busy = false;
  if (stopRequested) process.exit(0);
}

async function runJob(job: JobFrame): Promise<{ jobId: number; failDelayMs: number; reply: string }> {
  try {
    const remoteHost = job.remoteHost.length > 0 ? job.remoteHost.toString('latin1') : undefined;
    if (!mechanism) throw new Error('no mechanism');
    const result = await mechanism.authenticate({
      login: job.login,
      password: job.password,
      service: job.service,
      realm: job.realm,
      ...(remoteHost === undefined ? {} : { remoteHost }),
    });
    return { jobId: job.jobId, failDelayMs: result.failDelayMs ?? 0, reply: result.reply };
  } catch (error) {
    log.error(`internal mechanism failure: ${(error as Error).message}`);
    return { jobId: job.jobId, failDelayMs: 0, reply: 'NO internal mechanism failure' };
  } finally {
    job.password.fill(0);
  }
}
