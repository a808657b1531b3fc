/**
 * The Unix socket `<run dir>/mux`. Mode 0777 like the original: access control is the
 * directory's job (Debian: root:sasl 0710). A socket file left by a crash is replaced; one
 * that still answers belongs to a live daemon and is left alone.
 *
 * Connections are accepted with accept4(2) straight from the socket poller (see
 * native/posix-sockets.ts for why not node:net) and handed over as bare descriptors.
 */
import { chmodSync, lstatSync, unlinkSync } from 'node:fs';
import { connect } from 'node:net';
import { EAGAIN, EPOLLEXCLUSIVE, EPOLLIN, acceptConnection, closeFd, errnoName, listenUnix } from '../native/posix-sockets.js';
import { ALREADY_RUNNING, StartupError } from './run-directory.js';
import { RateLimitedReport } from '../log/rate-limited-report.js';
import { ACCEPT_PAUSE_MS, isTransientAcceptError } from '../native/accept-errors.js';
import { InheritedSocketError, adoptInheritedListener, inheritedListener, type InheritedSocket } from './socket-activation.js';
import type { SocketPoller } from '../native/socket-poller.js';

/**
 * listen(2) backlog (the kernel caps it at net.core.somaxconn, 4096 on Debian 12). The
 * original uses 32. A burst of clients should queue, not fail: a non-blocking connect on a
 * Unix socket whose backlog is full fails at once with EAGAIN.
 */
const SOCKET_BACKLOG = 4096;
/** Unix socket paths are limited by sun_path (108 bytes with the terminating NUL). */
const MAX_SOCKET_PATH_BYTES = 107;
/** Accepts per readiness report: later connections wait one event-loop turn, not forever. */
const MAX_ACCEPTS_PER_TURN = 64;
/** At most one log line per this period while accepting keeps failing. */
const ACCEPT_ERROR_LOG_PERIOD_MS = 1_000;

/**
 * With the fast path the workers accept; the primary watches the socket only while they
 * cannot (setAccepting(): every worker gone, or busy with a slow check — see
 * workers/fast-path-hub.ts), then with EPOLLEXCLUSIVE like the workers, behind them in the
 * socket's queue of waiters (requeue() after each worker started watching): the kernel wakes
 * the first waiting watcher, so a worker that frees up still gets the next connection.
 */
const WATCH_MASK = EPOLLIN | EPOLLEXCLUSIVE;

export interface Listener {
  /** The listening descriptor (workers get a copy). */
  readonly fd: number;
  /** Moves the primary's watch behind every other watcher of the socket (see WATCH_MASK). */
  requeue(): void;
  /** Whether the primary takes connections itself (it does from the start). */
  setAccepting(accepting: boolean): void;
  /**
   * A connection a worker accepted could not be taken by the primary (out of descriptors):
   * logged like the primary's own accept failures, in the same rate-limited line.
   */
  reportAcceptFailure(code: string): void;
  /** Stops accepting and closes the socket (the file stays; the primary removes it). */
  close(): void;
  /** The socket is systemd's (socket activation): its file outlives this daemon. */
  readonly fromSystemd: boolean;
}

export async function listenOnSocket(
  path: string,
  poller: SocketPoller,
  onConnection: (fd: number) => void,
  onAcceptError: (code: string) => void,
): Promise<Listener> {
  if (Buffer.byteLength(path) > MAX_SOCKET_PATH_BYTES) {
    throw new StartupError([`could not bind to socket: ${path}`, `socket path longer than ${MAX_SOCKET_PATH_BYTES} bytes`], 1);
  }
  const fromSystemd = socketFromSystemd(path);
  const fd = fromSystemd?.fd ?? (await bindSocket(path));

  let closed = false;
  /** The primary takes connections itself (setAccepting). */
  let wanted = true;
  let watching = false;
  let pauseTimer: NodeJS.Timeout | undefined;
  let lastError = '';
  const acceptFailures = new RateLimitedReport(ACCEPT_ERROR_LOG_PERIOD_MS, (count) =>
    onAcceptError(count > 1 ? `${lastError} (${count} times)` : lastError),
  );
  const unwatch = (): void => {
    if (watching) poller.unwatch(fd);
    watching = false;
  };
  const watch = (): void => {
    if (closed || !wanted || watching || pauseTimer !== undefined) return;
    watching = poller.watch(fd, WATCH_MASK, acceptWaiting);
    if (!watching) pauseAccepting();
  };
  const pauseAccepting = (): void => {
    unwatch();
    pauseTimer = setTimeout(() => {
      pauseTimer = undefined;
      // Watching again can fail too (ENOMEM): then wait another round, never stop for good.
      watch();
    }, ACCEPT_PAUSE_MS);
  };
  const acceptWaiting = (): void => {
    for (let i = 0; i < MAX_ACCEPTS_PER_TURN; i++) {
      const connection = acceptConnection(fd);
      if (connection >= 0) {
        onConnection(connection);
        continue;
      }
      if (connection === -EAGAIN) return;
      if (isTransientAcceptError(-connection)) continue;
      // EMFILE, ENFILE, ENOBUFS, ENOMEM: the socket stays readable, so polling it now would spin.
      lastError = errnoName(-connection);
      acceptFailures.note();
      pauseAccepting();
      return;
    }
  };
  watch();

  return {
    fd,
    fromSystemd: fromSystemd !== undefined,
    requeue(): void {
      if (!watching) return;
      unwatch();
      watch();
    },
    reportAcceptFailure(code: string): void {
      lastError = code;
      acceptFailures.note();
    },
    setAccepting(accepting: boolean): void {
      wanted = accepting;
      if (accepting) watch();
      else unwatch();
    },
    close(): void {
      if (closed) return;
      closed = true;
      clearTimeout(pauseTimer);
      unwatch();
      closeFd(fd);
    },
  };
}

/** The listening socket saslauthd.socket passed, if the daemon was socket-activated. */
function socketFromSystemd(path: string): InheritedSocket | undefined {
  try {
    const inherited = inheritedListener(path);
    if (inherited) adoptInheritedListener(inherited);
    return inherited;
  } catch (error) {
    if (!(error instanceof InheritedSocketError)) throw error;
    throw new StartupError([`could not use the socket from systemd: ${path}`, error.message], 1);
  }
}

/** Binds `path` (replacing a dead daemon's socket file) and listens, mode 0777. */
async function bindSocket(path: string): Promise<number> {
  await removeStaleSocket(path);
  let fd: number;
  try {
    fd = listenUnix(path, SOCKET_BACKLOG);
  } catch (error) {
    throw new StartupError([`could not bind to socket: ${path}`, (error as Error).message], 1);
  }
  try {
    chmodSync(path, 0o777);
  } catch (error) {
    closeFd(fd);
    unlinkSync(path);
    throw new StartupError([`could not chmod socket: ${path}`, `chmod: ${(error as Error).message}`], 1);
  }
  return fd;
}

async function removeStaleSocket(path: string): Promise<void> {
  let isSocket: boolean;
  try {
    isSocket = lstatSync(path).isSocket();
  } catch {
    return; // nothing there
  }
  if (!isSocket) return; // let bind report what is in the way, as the original does
  if (await socketAnswers(path)) throw new StartupError(ALREADY_RUNNING, 2);
  unlinkSync(path);
}

/** How long a probe of an existing socket may take before it counts as dead. */
const SOCKET_PROBE_MS = 500;

/** Whether something accepts connections on the socket path (another daemon, ours or C). */
export function socketAnswers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = connect({ path });
    const done = (alive: boolean): void => {
      clearTimeout(timer);
      probe.destroy();
      resolve(alive);
    };
    const timer = setTimeout(() => done(false), SOCKET_PROBE_MS);
    probe.once('connect', () => done(true));
    probe.once('error', () => done(false));
  });
}
