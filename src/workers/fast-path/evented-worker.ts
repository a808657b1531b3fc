/**
 * The loop of a worker whose mechanism answers asynchronously (ldap, rimap, httpform,
 * kerberos5): the channel on a socket poller (native/socket-poller.ts) beside Node's event
 * loop, and the listening socket in an epoll set of its own, waited on by a thread-pool thread
 * only while the worker is idle. One request at a time, as in the original: while a check
 * runs nobody waits on that set, so the kernel hands new clients to an idle worker (or the
 * primary), and jobs from the primary wait for the check to end. The socket stays registered
 * all along, keeping this worker's place ahead of the primary in the socket's waiters.
 */
import {
  EPOLLEXCLUSIVE,
  EPOLLIN,
  EPOLL_CTL_ADD,
  EPOLL_CTL_DEL,
  EPOLL_EVENT_BYTES,
  closeFd,
  epollControl,
  epollCreate,
  epollWaitInBackground,
} from '../../native/posix-sockets.js';
import { SocketPoller } from '../../native/socket-poller.js';
import { FrameType, decodeJob, encodeResult, encodeSimple } from '../channel.js';
import { runJob } from '../job-runner.js';
import { ACCEPT_PAUSE_MS } from '../../native/accept-errors.js';
import { AcceptGate } from './accept-gate.js';
import type { WorkerLoopParts } from './blocking-worker.js';

export function runEventedWorker({ channel, mechanism, fastPath, budget, log }: WorkerLoopParts): void {
  const poller = new SocketPoller((message) => log.error(message));
  const gate = new AcceptGate(log);
  const listenSet = epollCreate();
  const listenEvents = Buffer.alloc(2 * EPOLL_EVENT_BYTES);
  let listenFd = -1;
  /** A pool thread waits on listenSet now. */
  let watching = false;
  let paused = false;
  let busy = false;
  let ended = false;
  const jobs: Buffer[] = [];

  const watchListener = (): void => {
    if (listenFd < 0 || watching || busy || ended || paused) return;
    watching = true;
    epollWaitInBackground(listenSet, listenEvents, -1, () => {
      watching = false;
      onConnection();
    });
  };
  const stopAccepting = (): void => {
    if (listenFd >= 0) {
      epollControl(listenSet, EPOLL_CTL_DEL, listenFd, 0); // a waiting thread sees nothing more
      closeFd(listenFd);
    }
    listenFd = -1;
  };
  const exitIfDone = (): void => {
    if (!ended || busy) return;
    process.exit(0);
  };
  /** After a job or a check: the next job, else back to the listening socket. */
  const idle = (): void => {
    busy = false;
    if (budget.spend()) {
      stopAccepting();
      channel.send(encodeSimple(FrameType.retire));
    }
    const next = jobs.shift();
    if (next) {
      startJob(next);
      return;
    }
    if (channel.hasKept) onChannel(); // frames read while a cache fill waited
    exitIfDone();
    watchListener();
  };
  const startJob = (payload: Buffer): void => {
    busy = true;
    fastPath?.jobStarted();
    void Promise.resolve(runJob(decodeJob(payload), mechanism, log)).then((result) => {
      payload.fill(0);
      fastPath?.jobEnded();
      channel.send(encodeResult(result));
      idle();
    });
  };
  function onConnection(): void {
    if (busy || !fastPath || listenFd < 0) return;
    const accepted = gate.acceptOne(listenFd);
    if (accepted === 'pause') {
      paused = true;
      setTimeout(() => {
        paused = false;
        watchListener();
      }, ACCEPT_PAUSE_MS);
      return;
    }
    const check = accepted === 'none' ? undefined : fastPath.take(accepted.fd);
    if (!check) {
      watchListener();
      return;
    }
    busy = true;
    void fastPath.check(check).then(idle);
  }
  function onChannel(): void {
    const received = channel.receive();
    for (const frame of received.frames) {
      if (frame.type === FrameType.job) {
        if (busy) jobs.push(frame.payload);
        else startJob(frame.payload);
      } else if (frame.type === FrameType.listen && frame.fd >= 0) {
        if (!fastPath || listenFd >= 0) {
          closeFd(frame.fd);
          continue;
        }
        listenFd = frame.fd;
        epollControl(listenSet, EPOLL_CTL_ADD, listenFd, EPOLLIN | EPOLLEXCLUSIVE);
        watchListener();
        channel.send(encodeSimple(FrameType.accepting));
      } else if (frame.type === FrameType.quiesce) {
        stopAccepting();
      }
    }
    if (received.ended) {
      ended = true;
      poller.unwatch(channel.fd);
      stopAccepting();
      exitIfDone();
    }
  }
  poller.watch(channel.fd, EPOLLIN, onChannel);
  channel.send(encodeSimple(FrameType.ready));
}
