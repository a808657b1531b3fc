/**
 * Readiness of the front door's sockets (the listening socket and every client connection),
 * through one epoll set of our own, beside Node's event loop.
 *
 * While there is work, the set is polled without waiting once per event-loop turn
 * (setImmediate), so worker replies, timers and signals are served between batches. When
 * nothing is ready, epoll_wait blocks on a thread-pool thread and its result comes back as
 * an ordinary callback: an idle daemon costs no CPU, a busy one no thread hand-offs.
 *
 * Events are hints: a descriptor may have been closed, and its number reused, between the
 * kernel's report and the dispatch. Handlers therefore act on what read/accept/send return,
 * never on the event mask alone.
 */
import {
  EINTR,
  EPOLLIN,
  EPOLL_CTL_ADD,
  EPOLL_CTL_DEL,
  EPOLL_CTL_MOD,
  EPOLL_EVENT_BYTES,
  closeFd,
  createEventFd,
  epollControl,
  epollCreate,
  epollWaitInBackground,
  epollWaitNow,
  errnoName,
  readInto,
  readyEvent,
  signalEventFd,
} from './posix-sockets.js';

/** Pause before polling again when a background wait could not even be queued. */
const BACKGROUND_RETRY_MS = 100;
/** Events taken per epoll_wait: enough to amortize the call, few enough to keep turns short. */
const MAX_EVENTS_PER_TURN = 128;

export type ReadinessHandler = (mask: number) => void;

export class SocketPoller {
  private readonly epollFd = epollCreate();
  /** Written at stop, so a background wait returns at once. */
  private readonly wakeFd = createEventFd();
  private readonly handlers = new Map<number, ReadinessHandler>();
  private readonly eventsNow = Buffer.alloc(MAX_EVENTS_PER_TURN * EPOLL_EVENT_BYTES);
  /** Written by the background thread; read only after its callback. */
  private readonly eventsInBackground = Buffer.alloc(MAX_EVENTS_PER_TURN * EPOLL_EVENT_BYTES);
  private turnScheduled = false;
  private waitingInBackground = false;
  private stopped = false;
  private readonly wakeScratch = Buffer.alloc(8);

  constructor(private readonly onFailure: (message: string) => void) {
    epollControl(this.epollFd, EPOLL_CTL_ADD, this.wakeFd, EPOLLIN);
    this.checkEventLayout();
    this.handlers.set(this.wakeFd, () => void readInto(this.wakeFd, this.wakeScratch));
    this.scheduleTurn();
  }

  /**
   * Signals the wake-up eventfd and checks that epoll reports it back under its own fd: a
   * wrong struct epoll_event layout for this machine fails here, at startup, instead of
   * dropping every event.
   */
  private checkEventLayout(): void {
    signalEventFd(this.wakeFd);
    const count = epollWaitNow(this.epollFd, this.eventsNow);
    readInto(this.wakeFd, this.wakeScratch);
    const reported = count === 1 ? readyEvent(this.eventsNow, 0) : undefined;
    if (reported?.fd !== this.wakeFd || (reported.mask & EPOLLIN) === 0) {
      this.closeSet();
      throw new Error(`epoll self-test failed on ${process.arch}: events are not decoded as written`);
    }
  }

  /** Starts reporting `mask` events of `fd` to `handler`; false (with the errno logged) if refused. */
  watch(fd: number, mask: number, handler: ReadinessHandler): boolean {
    const result = epollControl(this.epollFd, EPOLL_CTL_ADD, fd, mask);
    if (result < 0) {
      this.onFailure(`epoll_ctl add: ${errnoName(-result)}`);
      return false;
    }
    this.handlers.set(fd, handler);
    return true;
  }

  change(fd: number, mask: number): void {
    epollControl(this.epollFd, EPOLL_CTL_MOD, fd, mask);
  }

  /** Stops reporting `fd`; call before closing it. */
  unwatch(fd: number): void {
    if (!this.handlers.delete(fd)) return;
    epollControl(this.epollFd, EPOLL_CTL_DEL, fd, 0);
  }

  /** Ends the polling; the epoll set is closed once a background wait has returned. */
  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    if (this.waitingInBackground) signalEventFd(this.wakeFd);
    else this.closeSet();
  }

  private closeSet(): void {
    closeFd(this.wakeFd);
    closeFd(this.epollFd);
    this.handlers.clear();
  }

  private scheduleTurn(): void {
    if (this.turnScheduled || this.waitingInBackground || this.stopped) return;
    this.turnScheduled = true;
    setImmediate(this.turn);
  }

  private readonly turn = (): void => {
    this.turnScheduled = false;
    if (this.stopped) return;
    const count = epollWaitNow(this.epollFd, this.eventsNow);
    if (count > 0) {
      this.dispatch(this.eventsNow, count);
      this.scheduleTurn();
      return;
    }
    if (count < 0 && count !== -EINTR) this.onFailure(`epoll_wait: ${errnoName(-count)}`);
    this.waitingInBackground = true;
    try {
      epollWaitInBackground(this.epollFd, this.eventsInBackground, -1, this.afterBackgroundWait);
    } catch (error) {
      // koffi could not queue the call (out of memory): poll again shortly rather than stop.
      this.waitingInBackground = false;
      this.onFailure(`epoll_wait in the background: ${(error as Error).message}`);
      setTimeout(() => this.scheduleTurn(), BACKGROUND_RETRY_MS).unref();
    }
  };

  private readonly afterBackgroundWait = (ready: number): void => {
    this.waitingInBackground = false;
    if (this.stopped) {
      this.closeSet();
      return;
    }
    if (ready > 0) this.dispatch(this.eventsInBackground, ready);
    this.scheduleTurn(); // a failed wait (ready < 0) is simply polled again
  };

  private dispatch(events: Buffer, count: number): void {
    for (let i = 0; i < count; i++) {
      const { fd, mask } = readyEvent(events, i);
      const handler = this.handlers.get(fd);
      if (!handler) continue;
      try {
        handler(mask);
      } catch (error) {
        // A handler bug must not stop every other connection's events.
        this.onFailure(`socket event handler failed: ${(error as Error).message}`);
      }
    }
  }
}
