/**
 * The few socket and epoll system calls the front door makes itself, through koffi and libc.
 *
 * Why not node:net: a Node `net.Socket` costs about 45 µs of CPU per connection (objects,
 * streams, events), which caps one Node process near 23,000 connections a second — below
 * what the C daemon answers from its cache. These calls cost about a microsecond each, and
 * a connection needs six of them (accept4, read, write, shutdown, read, close).
 *
 * Every call returns the raw result; failures come back as a negative errno (`-EAGAIN`),
 * never as an exception, so the hot path stays free of try/catch and allocations.
 * Buffers are passed in place (no copy): koffi hands their memory to the kernel directly.
 */
import koffi from 'koffi';
import { libcHandle } from './libc.js';
import { constants, endianness } from 'node:os';
import { getSystemErrorMap } from 'node:util';


export const AF_UNIX = 1;
export const SOCK_STREAM = 1;
export const SOCK_NONBLOCK = 0o4000;
export const SOCK_CLOEXEC = 0o2000000;
export const SHUT_WR = 1;
/** send(2) flag: a vanished peer gives EPIPE, never SIGPIPE. */
const MSG_NOSIGNAL = 0x4000;
export const EPOLLIN = 0x001;
export const EPOLLOUT = 0x004;
export const EPOLLERR = 0x008;
export const EPOLLHUP = 0x010;
/** Wake one waiting epoll set per event, not all (workers sharing the listening socket). */
export const EPOLLEXCLUSIVE = 1 << 28;
const POLLIN = 0x001;
const POLLOUT = 0x004;
export const EPOLL_CTL_ADD = 1;
export const EPOLL_CTL_DEL = 2;
export const EPOLL_CTL_MOD = 3;
const F_SETFD = 2;
const F_GETFL = 3;
const F_SETFL = 4;
const FD_CLOEXEC = 1;
const O_NONBLOCK = 0o4000;
const EPOLL_CLOEXEC = 0o2000000;
const EFD_CLOEXEC = 0o2000000;
const EFD_NONBLOCK = 0o4000;
/** sizeof(struct sockaddr_un) and the offset of sun_path in it. */
const SOCKADDR_UN_BYTES = 110;
const SUN_PATH_OFFSET = 2;
/**
 * struct epoll_event is { u32 events; u64 data }: packed on x86 (12 bytes, data at 4),
 * naturally aligned elsewhere (16 bytes, data at 8). `data` holds the fd, as a u64 in the
 * machine's byte order.
 */
const EPOLL_PACKED = process.arch === 'x64' || process.arch === 'ia32';
export const EPOLL_EVENT_BYTES = EPOLL_PACKED ? 12 : 16;
const EPOLL_DATA_OFFSET = EPOLL_PACKED ? 4 : 8;
const LITTLE_ENDIAN = endianness() === 'LE';

export const EAGAIN = constants.errno.EAGAIN;
export const EINTR = constants.errno.EINTR;

type IntFn = (...args: unknown[]) => number;

interface Libc {
  socket: IntFn;
  bind: IntFn;
  listen: IntFn;
  accept4: IntFn;
  read: IntFn;
  send: IntFn;
  shutdown: IntFn;
  close: IntFn;
  epollCreate1: IntFn;
  epollCtl: IntFn;
  epollWait: IntFn & { async: (...args: unknown[]) => void };
  eventfd: IntFn;
  write: IntFn;
  socketpair: IntFn;
  fcntl: IntFn;
  poll: IntFn;
}

let libc: Libc | undefined;

function load(): Libc {
  if (libc) return libc;
  const lib = libcHandle();
  const fn = (name: string, result: string, args: string[]): IntFn => lib.func(name, result, args) as IntFn;
  libc = {
    socket: fn('socket', 'int', ['int', 'int', 'int']),
    bind: fn('bind', 'int', ['int', 'void *', 'uint32_t']),
    listen: fn('listen', 'int', ['int', 'int']),
    accept4: fn('accept4', 'int', ['int', 'void *', 'void *', 'int']),
    read: fn('read', 'long', ['int', 'void *', 'unsigned long']),
    send: fn('send', 'long', ['int', 'void *', 'unsigned long', 'int']),
    write: fn('write', 'long', ['int', 'void *', 'unsigned long']),
    shutdown: fn('shutdown', 'int', ['int', 'int']),
    close: fn('close', 'int', ['int']),
    epollCreate1: fn('epoll_create1', 'int', ['int']),
    epollCtl: fn('epoll_ctl', 'int', ['int', 'int', 'int', 'void *']),
    epollWait: fn('epoll_wait', 'int', ['int', 'void *', 'int', 'int']) as Libc['epollWait'],
    eventfd: fn('eventfd', 'int', ['unsigned int', 'int']),
    socketpair: fn('socketpair', 'int', ['int', 'int', 'int', 'void *']),
    fcntl: fn('fcntl', 'int', ['int', 'int', '...']),
    poll: fn('poll', 'int', ['void *', 'unsigned long', 'int']),
  };
  return libc;
}

/** The result, or -errno when the call failed. */
function checked(result: number): number {
  return result < 0 ? -koffi.errno() : result;
}

/** libuv's names and texts of errno values, keyed by -errno. */
const systemErrors = getSystemErrorMap();

/** The symbolic name of an errno value (`EAGAIN`), for log lines. */
export function errnoName(errno: number): string {
  return systemErrors.get(-errno)?.[0] ?? `errno ${errno}`;
}

/** A non-blocking, close-on-exec listening Unix stream socket bound to `path`; throws on failure. */
export function listenUnix(path: string, backlog: number): number {
  const c = load();
  const address = Buffer.alloc(SOCKADDR_UN_BYTES);
  // sa_family_t is a host-order short (the socket pair and epoll code take the same care)
  if (LITTLE_ENDIAN) address.writeUInt16LE(AF_UNIX, 0);
  else address.writeUInt16BE(AF_UNIX, 0);
  address.write(path, SUN_PATH_OFFSET);
  const fd = checked(c.socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (fd < 0) throw new SyscallError('socket', -fd);
  const bound = checked(c.bind(fd, address, SOCKADDR_UN_BYTES));
  if (bound < 0) {
    c.close(fd);
    throw new SyscallError('bind', -bound);
  }
  const listening = checked(c.listen(fd, backlog));
  if (listening < 0) {
    c.close(fd);
    throw new SyscallError('listen', -listening);
  }
  return fd;
}

/** A new connection's fd (non-blocking, close-on-exec), or -errno (-EAGAIN: none waiting). */
export function acceptConnection(listenFd: number): number {
  return checked(load().accept4(listenFd, null, null, SOCK_NONBLOCK | SOCK_CLOEXEC));
}

/** Bytes read into `buffer` (0 = EOF), or -errno. */
export function readInto(fd: number, buffer: Buffer, length = buffer.length): number {
  return checked(load().read(fd, buffer, length));
}

/** Bytes of `data` sent (maybe fewer than asked), or -errno; never raises SIGPIPE. */
export function sendSome(fd: number, data: Buffer): number {
  return checked(load().send(fd, data, data.length, MSG_NOSIGNAL));
}

const pollScratch = Buffer.alloc(8);

/**
 * Waits up to `timeoutMs` for `fd` to have something to read (or EOF, or an error): 1 when
 * it has, 0 at the timeout, -errno. Blocks the calling thread: only for a worker's short
 * window on a client that has not sent its whole request yet.
 */
export function waitReadable(fd: number, timeoutMs: number): number {
  return waitFor(fd, POLLIN, timeoutMs);
}

/** Like waitReadable, for room to write (a worker's channel to the primary, when full). */
export function waitWritable(fd: number, timeoutMs: number): number {
  return waitFor(fd, POLLOUT, timeoutMs);
}

function waitFor(fd: number, events: number, timeoutMs: number): number {
  // struct pollfd { int fd; short events; short revents; }
  if (LITTLE_ENDIAN) {
    pollScratch.writeInt32LE(fd, 0);
    pollScratch.writeInt16LE(events, 4);
  } else {
    pollScratch.writeInt32BE(fd, 0);
    pollScratch.writeInt16BE(events, 4);
  }
  pollScratch.writeInt16LE(0, 6);
  return checked(load().poll(pollScratch, 1, Math.max(0, Math.ceil(timeoutMs))));
}

/**
 * Blocks until one of the epoll set's descriptors is ready or `timeoutMs` passed (-1: no
 * limit): a worker's wait, which has nothing else to do meanwhile. Count or -errno.
 */
export function epollWaitBlocking(epollFd: number, events: Buffer, timeoutMs: number): number {
  return checked(load().epollWait(epollFd, events, events.length / EPOLL_EVENT_BYTES, timeoutMs));
}

/** Half-closes: the peer reads EOF after what was sent. 0 or -errno. */
export function shutdownWrite(fd: number): number {
  return checked(load().shutdown(fd, SHUT_WR));
}

export function closeFd(fd: number): void {
  load().close(fd);
}

/**
 * A connected pair of close-on-exec Unix stream sockets, both blocking; throws on failure.
 * (A descriptor handed to a child as one of its stdio entries loses close-on-exec there.)
 */
export function socketPair(): [number, number] {
  const fds = Buffer.alloc(8);
  const result = checked(load().socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds));
  if (result < 0) throw new SyscallError('socketpair', -result);
  return LITTLE_ENDIAN ? [fds.readInt32LE(0), fds.readInt32LE(4)] : [fds.readInt32BE(0), fds.readInt32BE(4)];
}

/** Makes reads and writes on `fd` return EAGAIN instead of waiting. 0 or -errno. */
export function setNonBlocking(fd: number): number {
  const c = load();
  const flags = checked(c.fcntl(fd, F_GETFL, 'int', 0));
  if (flags < 0) return flags;
  return checked(c.fcntl(fd, F_SETFL, 'int', flags | O_NONBLOCK));
}

/** Keeps `fd` out of the processes this one starts (an inherited descriptor has no CLOEXEC). 0 or -errno. */
export function setCloseOnExec(fd: number): number {
  return checked(load().fcntl(fd, F_SETFD, 'int', FD_CLOEXEC));
}

export function epollCreate(): number {
  const fd = checked(load().epollCreate1(EPOLL_CLOEXEC));
  if (fd < 0) throw new SyscallError('epoll_create1', -fd);
  return fd;
}

const controlEvent = Buffer.alloc(EPOLL_EVENT_BYTES);

/** epoll_ctl with the fd itself as the event's data; 0 or -errno. */
export function epollControl(epollFd: number, operation: number, fd: number, events: number): number {
  if (LITTLE_ENDIAN) {
    controlEvent.writeUInt32LE(events, 0);
    controlEvent.writeBigUInt64LE(BigInt(fd), EPOLL_DATA_OFFSET);
  } else {
    controlEvent.writeUInt32BE(events, 0);
    controlEvent.writeBigUInt64BE(BigInt(fd), EPOLL_DATA_OFFSET);
  }
  return checked(load().epollCtl(epollFd, operation, fd, controlEvent));
}

/** Ready events written into `events` (see readyEvent), without waiting; or -errno. */
export function epollWaitNow(epollFd: number, events: Buffer): number {
  return checked(load().epollWait(epollFd, events, events.length / EPOLL_EVENT_BYTES, 0));
}

/**
 * Waits on a libuv thread-pool thread, so the event loop runs meanwhile; `done` gets the
 * count of ready events written into `events`, or -EINTR for any failure (the errno belongs
 * to that thread: the caller just polls again). `events` must stay untouched until then.
 * The wait holds one of libuv's four pool threads; the primary uses no other.
 */
export function epollWaitInBackground(
  epollFd: number,
  events: Buffer,
  timeoutMs: number,
  done: (count: number) => void,
): void {
  load().epollWait.async(epollFd, events, events.length / EPOLL_EVENT_BYTES, timeoutMs, (error: unknown, count: number) =>
    done(error || count < 0 ? -EINTR : count),
  );
}

/** The fd and event mask of the i-th ready event in an epoll_wait buffer. */
export function readyEvent(events: Buffer, index: number): { fd: number; mask: number } {
  const offset = index * EPOLL_EVENT_BYTES;
  // The fd is below 2^31, so its low 32 bits are the whole of it.
  return LITTLE_ENDIAN
    ? { mask: events.readUInt32LE(offset), fd: events.readInt32LE(offset + EPOLL_DATA_OFFSET) }
    : { mask: events.readUInt32BE(offset), fd: events.readInt32BE(offset + EPOLL_DATA_OFFSET + 4) };
}

/** A non-blocking eventfd, to wake a background epoll_wait. */
export function createEventFd(): number {
  const fd = checked(load().eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
  if (fd < 0) throw new SyscallError('eventfd', -fd);
  return fd;
}

const one = Buffer.from([1, 0, 0, 0, 0, 0, 0, 0]);
export function signalEventFd(fd: number): void {
  load().write(fd, one, one.length);
}

export class SyscallError extends Error {
  readonly code: string;
  constructor(
    readonly call: string,
    readonly errno: number,
  ) {
    super(`${call}: ${systemErrors.get(-errno)?.[1] ?? 'failed'} (${errnoName(errno)})`);
    this.code = errnoName(errno);
  }
}
