/**
 * A job the primary sent over the channel, run through the worker's mechanism: a throw
 * becomes `NO internal mechanism failure`, and the password is zeroed afterwards.
 * Synchronous when the mechanism is.
 */
import type { Logger } from '../log/logger.js';
import type { AuthResult, Mechanism } from '../mechanisms/types.js';
import type { JobFrame, ResultFrame } from './channel.js';

export function runJob(job: JobFrame, mechanism: Mechanism, log: Logger): ResultFrame | Promise<ResultFrame> {
  const failure = (error: unknown): ResultFrame => {
    log.error(`internal mechanism failure: ${(error as Error).message}`);
    return { jobId: job.jobId, failDelayMs: 0, reply: 'NO internal mechanism failure' };
  };
  let settledSynchronously = true;
  try {
    const result = mechanism.authenticate(toRequest(job));
    if (!(result instanceof Promise)) return resultFrame(job, result);
    settledSynchronously = false;
    return result.then((value) => resultFrame(job, value), failure).finally(() => job.password.fill(0));
  } catch (error) {
    return failure(error);
  } finally {
    if (settledSynchronously) job.password.fill(0);
  }
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

function resultFrame(job: JobFrame, result: AuthResult): ResultFrame {
  return { jobId: job.jobId, failDelayMs: result.failDelayMs ?? 0, reply: result.reply, ...(result.unavailable ? { unavailable: true } : {}) };
}
