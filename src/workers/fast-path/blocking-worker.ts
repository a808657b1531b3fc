/**
 * The loop of a worker whose mechanism answers synchronously (pam, shadow, getpwent,
 * sasldb): one blocking epoll_wait on the channel and the listening socket, and everything
 * else straight through, with no event-loop turn between requests — the cheapest path per
 * request. The listening socket is watched with EPOLLEXCLUSIVE: a connection wakes one idle
 * worker, not all of them; a busy worker is not waiting, so the kernel passes the wake-up on
 * (to another worker, or to the primary, which watches the socket after every worker).
 *
 * Channel frames are handled before connections in the same wake-up, so an EOF (stop, or
 * retirement) is seen before taking another client.
 */
import type { Logger } from '../../log/logger.js';
import type { Mechanism } from '../../mechanisms/types.js';
import {
  EPOLLEXCLUSIVE,
  EPOLLIN,
  EPOLL_CTL_ADD,
  EPOLL_CTL_DEL,
  EPOLL_EVENT_BYTES,
  closeFd,
  epollControl,
  epollCreate,
  epollWaitBlocking,
  readyEvent,
} from '../../native/posix-sockets.js';
import { monotonicMs } from '../../runtime/monotonic-clock.js';
import { FrameType, decodeJob, encodeResult, encodeSimple, type ResultFrame } from '../channel.js';
import { runJob } from '../job-runner.js';
import { ACCEPT_PAUSE_MS } from '../../native/accept-errors.js';
import { AcceptGate, JobBudget } from './accept-gate.js';
import type { FastPath } from './fast-path.js';
import type { WorkerChannel } from './worker-channel.js';

export interface WorkerLoopParts {
  readonly channel: WorkerChannel;
  readonly mechanism: Mechanism;
  /** undefined: this worker only runs jobs the primary sends (`-n 0`). */
  readonly fastPath: FastPath | undefined;
  readonly budget: JobBudget;
  readonly log: Logger;
}

const MAX_EVENTS = 4;

export function runBlockingWorker({ channel, mechanism, fastPath, budget, log }: WorkerLoopParts): never {
  const epollFd = epollCreate();
  const gate = new AcceptGate(log);
  epollControl(epollFd, EPOLL_CTL_ADD, channel.fd, EPOLLIN);
  const events = Buffer.alloc(MAX_EVENTS * EPOLL_EVENT_BYTES);
  let listenFd = -1;
  let watching = false;
  let resumeAt = 0;
  const stopAccepting = (): void => {
    if (watching) epollControl(epollFd, EPOLL_CTL_DEL, listenFd, 0);
    watching = false;
    if (listenFd >= 0) closeFd(listenFd);
    listenFd = -1;
  };
  const watchListener = (): void => {
    watching = epollControl(epollFd, EPOLL_CTL_ADD, listenFd, EPOLLIN | EPOLLEXCLUSIVE) === 0;
  };
  const jobDone = (): void => {
    if (!budget.spend()) return;
    stopAccepting();
    channel.send(encodeSimple(FrameType.retire));
  };

  /** Jobs, the listening socket, quiesce; exits at the channel's end. */
  const readChannel = (): void => {
    const { frames, ended } = channel.receive();
    for (const frame of frames) {
      if (frame.type === FrameType.job) {
        fastPath?.jobStarted();
        channel.send(encodeResult(runJob(decodeJob(frame.payload), mechanism, log) as ResultFrame));
        fastPath?.jobEnded();
        frame.payload.fill(0);
        jobDone();
      } else if (frame.type === FrameType.listen && frame.fd >= 0) {
        if (!fastPath || listenFd >= 0) {
          closeFd(frame.fd);
          continue;
        }
        listenFd = frame.fd;
        watchListener();
        channel.send(encodeSimple(FrameType.accepting));
      } else if (frame.type === FrameType.quiesce) {
        stopAccepting();
      }
    }
    if (ended) {
      stopAccepting();
      process.exit(0);
    }
  };

  channel.send(encodeSimple(FrameType.ready));
  for (;;) {
    // Frames kept while a cache fill waited for its acknowledgement are handled without waiting.
    let timeout = channel.hasKept ? 0 : -1;
    if (resumeAt > 0 && timeout < 0) timeout = Math.max(0, Math.ceil(resumeAt - monotonicMs()));
    const count = epollWaitBlocking(epollFd, events, timeout);
    if (resumeAt > 0 && monotonicMs() >= resumeAt && listenFd >= 0) {
      resumeAt = 0;
      watchListener();
    }
    let listenReady = false;
    let channelReady = channel.hasKept;
    for (let i = 0; i < count; i++) {
      const { fd } = readyEvent(events, i);
      if (fd === channel.fd) channelReady = true;
      else if (fd === listenFd) listenReady = true;
    }
    if (channelReady) readChannel();
    if (!listenReady || !watching || !fastPath) continue;
    const accepted = gate.acceptOne(listenFd);
    if (accepted === 'none') continue;
    if (accepted === 'pause') {
      epollControl(epollFd, EPOLL_CTL_DEL, listenFd, 0);
      watching = false;
      resumeAt = monotonicMs() + ACCEPT_PAUSE_MS;
      continue;
    }
    const check = fastPath.take(accepted.fd);
    if (check) {
      fastPath.checkNow(check);
      jobDone();
    }
  }
}
