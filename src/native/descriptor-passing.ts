/**
 * Passing open descriptors between the daemon's processes over a Unix stream socket
 * (sendmsg/recvmsg with an SCM_RIGHTS control message), through koffi and libc: a worker
 * hands a client connection to the primary this way.
 *
 * The C structures (struct msghdr, struct iovec, struct cmsghdr) are laid out by hand in
 * Buffers allocated once per process: field offsets come from koffi's layout of the same
 * structs for this machine (koffi.offsetof), the control-message sizes from the CMSG_*
 * arithmetic of <sys/socket.h>, and integers are written in the machine's byte order.
 * Pointers inside them are the addresses of Buffers (koffi.address), which V8 never moves:
 * the kernel reads and writes the caller's Buffer in place, no copy.
 *
 * Like posix-sockets.ts: every call returns the raw result, failures as -errno, never a throw.
 *
 * What Linux does with descriptors on an AF_UNIX SOCK_STREAM socket (asserted in
 * test/descriptor-passing.test.ts): the descriptors of one sendmsg travel with the first byte
 * of that sendmsg's data. One recvmsg never returns the descriptors of two sendmsg calls: it
 * stops at the end of the data of the first sendmsg that carried descriptors (bytes of earlier
 * sendmsg calls without descriptors may come before it in the same read; bytes after it come in
 * the next read). If the read buffer ends inside that data, the descriptors come with the first
 * part. So a reader that queues received descriptors in arrival order (FIFO) and gives the next
 * one to each frame that says it carries one has the frame's descriptor in the queue by the time
 * the frame's first byte has been read. A non-blocking sendmsg that sends only part of its data
 * still sent the descriptors (with the first part); one that fails (EAGAIN) sent nothing.
 */
import koffi from 'koffi';
import { endianness } from 'node:os';
import { libcHandle } from './libc.js';

const SOL_SOCKET = 1;
const SCM_RIGHTS = 1;
/** sendmsg flag: a vanished peer gives EPIPE, never SIGPIPE. */
const MSG_NOSIGNAL = 0x4000;
/** recvmsg flag: received descriptors are close-on-exec from the start (no window for a fork). */
const MSG_CMSG_CLOEXEC = 0x40000000;
/** recvmsg result flag: the control buffer was too small; the kernel dropped what did not fit. */
const MSG_CTRUNC = 0x8;
const EINVAL = 22;
/** The kernel's limit of descriptors in one SCM_RIGHTS message (SCM_MAX_FD). */
export const MAX_DESCRIPTORS_PER_SEND = 253;
/**
 * Room for descriptors in one receive. Ours send one per message and Linux delivers one
 * message's descriptors per recvmsg, so 16 only matters for a peer that sends more at once
 * (its message is then reported as truncated).
 */
export const MAX_DESCRIPTORS_PER_RECEIVE = 16;

const MessageHeader = koffi.struct({
  msg_name: 'void *',
  msg_namelen: 'uint32_t',
  msg_iov: 'void *',
  msg_iovlen: 'size_t',
  msg_control: 'void *',
  msg_controllen: 'size_t',
  msg_flags: 'int',
});
const IoVector = koffi.struct({ iov_base: 'void *', iov_len: 'size_t' });
const ControlHeader = koffi.struct({ cmsg_len: 'size_t', cmsg_level: 'int', cmsg_type: 'int' });

const WORD_BYTES = koffi.sizeof('size_t');
const POINTER_BYTES = koffi.sizeof('void *');
const DESCRIPTOR_BYTES = koffi.sizeof('int');
const LITTLE_ENDIAN = endianness() === 'LE';

const MSG = {
  bytes: koffi.sizeof(MessageHeader),
  iov: koffi.offsetof(MessageHeader, 'msg_iov'),
  iovlen: koffi.offsetof(MessageHeader, 'msg_iovlen'),
  control: koffi.offsetof(MessageHeader, 'msg_control'),
  controllen: koffi.offsetof(MessageHeader, 'msg_controllen'),
  flags: koffi.offsetof(MessageHeader, 'msg_flags'),
};
const IOV = {
  bytes: koffi.sizeof(IoVector),
  base: koffi.offsetof(IoVector, 'iov_base'),
  len: koffi.offsetof(IoVector, 'iov_len'),
};
const CMSG = {
  len: koffi.offsetof(ControlHeader, 'cmsg_len'),
  level: koffi.offsetof(ControlHeader, 'cmsg_level'),
  type: koffi.offsetof(ControlHeader, 'cmsg_type'),
};

/** CMSG_ALIGN: control messages are aligned to size_t. */
function controlAlign(length: number): number {
  return (length + WORD_BYTES - 1) & ~(WORD_BYTES - 1);
}
const CONTROL_HEADER_SPACE = controlAlign(koffi.sizeof(ControlHeader));
/** CMSG_LEN: a control message's cmsg_len for `dataBytes` of data. */
function controlLength(dataBytes: number): number {
  return CONTROL_HEADER_SPACE + dataBytes;
}
/** CMSG_SPACE: the room a control message with `dataBytes` of data takes in the buffer. */
function controlSpace(dataBytes: number): number {
  return CONTROL_HEADER_SPACE + controlAlign(dataBytes);
}

/** Writes a size_t or pointer in the machine's width and byte order. */
function writeWord(buffer: Buffer, offset: number, value: bigint | number, bytes = WORD_BYTES): void {
  if (bytes === 8) {
    const big = BigInt(value);
    if (LITTLE_ENDIAN) buffer.writeBigUInt64LE(big, offset);
    else buffer.writeBigUInt64BE(big, offset);
  } else {
    const small = Number(value);
    if (LITTLE_ENDIAN) buffer.writeUInt32LE(small, offset);
    else buffer.writeUInt32BE(small, offset);
  }
}

function readWord(buffer: Buffer, offset: number): number {
  if (WORD_BYTES === 8) {
    return Number(LITTLE_ENDIAN ? buffer.readBigUInt64LE(offset) : buffer.readBigUInt64BE(offset));
  }
  return LITTLE_ENDIAN ? buffer.readUInt32LE(offset) : buffer.readUInt32BE(offset);
}

function writeInt(buffer: Buffer, offset: number, value: number): void {
  if (LITTLE_ENDIAN) buffer.writeInt32LE(value, offset);
  else buffer.writeInt32BE(value, offset);
}

function readInt(buffer: Buffer, offset: number): number {
  return LITTLE_ENDIAN ? buffer.readInt32LE(offset) : buffer.readInt32BE(offset);
}

/** A msghdr with one iovec and a control buffer, each in its own never-freed Buffer. */
interface MessageScratch {
  readonly header: Buffer;
  readonly vector: Buffer;
  readonly control: Buffer;
}

function makeScratch(controlBytes: number): MessageScratch {
  const scratch = { header: Buffer.alloc(MSG.bytes), vector: Buffer.alloc(IOV.bytes), control: Buffer.alloc(controlBytes) };
  // msg_name stays NULL (connected socket), msg_namelen 0.
  writeWord(scratch.header, MSG.iov, koffi.address(scratch.vector), POINTER_BYTES);
  writeWord(scratch.header, MSG.iovlen, 1);
  writeWord(scratch.header, MSG.control, koffi.address(scratch.control), POINTER_BYTES);
  return scratch;
}

/** Points the scratch's one iovec at `data`. */
function setData(scratch: MessageScratch, data: Buffer): void {
  writeWord(scratch.vector, IOV.base, koffi.address(data), POINTER_BYTES);
  writeWord(scratch.vector, IOV.len, data.length);
}

type IntFn = (...args: unknown[]) => number;
interface Calls {
  sendmsg: IntFn;
  recvmsg: IntFn;
  close: IntFn;
  sending: MessageScratch;
  receiving: MessageScratch;
}
let calls: Calls | undefined;

function load(): Calls {
  if (calls) return calls;
  const lib = libcHandle();
  calls = {
    sendmsg: lib.func('sendmsg', 'long', ['int', 'void *', 'int']) as IntFn,
    recvmsg: lib.func('recvmsg', 'long', ['int', 'void *', 'int']) as IntFn,
    close: lib.func('close', 'int', ['int']) as IntFn,
    sending: makeScratch(controlSpace(MAX_DESCRIPTORS_PER_SEND * DESCRIPTOR_BYTES)),
    receiving: makeScratch(controlSpace(MAX_DESCRIPTORS_PER_RECEIVE * DESCRIPTOR_BYTES)),
  };
  return calls;
}

function checked(result: number): number {
  return result < 0 ? -koffi.errno() : result;
}

/** Writes the SCM_RIGHTS header for `count` descriptors; the caller writes the descriptors. */
function prepareRights(scratch: MessageScratch, count: number): void {
  const dataBytes = count * DESCRIPTOR_BYTES;
  writeWord(scratch.control, CMSG.len, controlLength(dataBytes));
  writeInt(scratch.control, CMSG.level, SOL_SOCKET);
  writeInt(scratch.control, CMSG.type, SCM_RIGHTS);
  writeWord(scratch.header, MSG.controllen, controlSpace(dataBytes));
}

function sendPrepared(c: Calls, socketFd: number, data: Buffer): number {
  setData(c.sending, data);
  return checked(c.sendmsg(socketFd, c.sending.header, MSG_NOSIGNAL));
}

/**
 * sendmsg(2) of `data` (at least one byte: a descriptor needs data to ride on) with `passFd`
 * attached; the peer gets its own descriptor for the same open file, this process keeps
 * `passFd` open. Returns the bytes sent (the descriptor went with the first of them), or -errno.
 */
export function sendWithDescriptor(socketFd: number, data: Buffer, passFd: number): number {
  if (data.length === 0) return -EINVAL;
  const c = load();
  prepareRights(c.sending, 1);
  writeInt(c.sending.control, CONTROL_HEADER_SPACE, passFd);
  return sendPrepared(c, socketFd, data);
}

/** sendWithDescriptor for 1 to MAX_DESCRIPTORS_PER_SEND descriptors in one message. */
export function sendWithDescriptors(socketFd: number, data: Buffer, passFds: readonly number[]): number {
  if (data.length === 0 || passFds.length === 0 || passFds.length > MAX_DESCRIPTORS_PER_SEND) return -EINVAL;
  const c = load();
  prepareRights(c.sending, passFds.length);
  passFds.forEach((fd, index) => writeInt(c.sending.control, CONTROL_HEADER_SPACE + index * DESCRIPTOR_BYTES, fd));
  return sendPrepared(c, socketFd, data);
}

export interface Received {
  /** Bytes read into the buffer (0: the peer closed), or -errno (-EAGAIN: nothing yet on a non-blocking socket). */
  readonly count: number;
  /** Descriptors that came with these bytes, in the order sent, close-on-exec; the caller owns them. */
  readonly fds: readonly number[];
  /**
   * The sender attached more descriptors than MAX_DESCRIPTORS_PER_RECEIVE: the kernel dropped
   * the rest, and the ones that came were closed here (`fds` is empty). The bytes are still
   * in the buffer; the stream's descriptors no longer match its messages.
   */
  readonly controlTruncated: boolean;
}

/** Shared by every result without descriptors (most of them): no allocation. */
const NO_DESCRIPTORS: readonly number[] = Object.freeze([]);

/** The SCM_RIGHTS descriptors in the first `controlBytes` of a received control buffer. */
function descriptorsIn(control: Buffer, controlBytes: number): readonly number[] {
  let fds: number[] | undefined;
  let offset = 0;
  // CMSG_FIRSTHDR / CMSG_NXTHDR: a header must fit whole, and its length cover the header.
  while (offset + CONTROL_HEADER_SPACE <= controlBytes) {
    const length = readWord(control, offset + CMSG.len);
    if (length < CONTROL_HEADER_SPACE || offset + length > controlBytes) break;
    if (readInt(control, offset + CMSG.level) === SOL_SOCKET && readInt(control, offset + CMSG.type) === SCM_RIGHTS) {
      const count = Math.floor((length - CONTROL_HEADER_SPACE) / DESCRIPTOR_BYTES);
      for (let index = 0; index < count; index++) {
        (fds ??= []).push(readInt(control, offset + CONTROL_HEADER_SPACE + index * DESCRIPTOR_BYTES));
      }
    }
    offset += controlAlign(length);
  }
  return fds ?? NO_DESCRIPTORS;
}

/**
 * recvmsg(2) into `buffer` (at least one byte), with room for MAX_DESCRIPTORS_PER_RECEIVE
 * descriptors, received close-on-exec. See the file comment for which descriptors come with
 * which bytes.
 */
export function receiveWithDescriptors(socketFd: number, buffer: Buffer): Received {
  if (buffer.length === 0) return { count: -EINVAL, fds: NO_DESCRIPTORS, controlTruncated: false };
  const c = load();
  const scratch = c.receiving;
  setData(scratch, buffer);
  writeWord(scratch.header, MSG.controllen, scratch.control.length);
  writeInt(scratch.header, MSG.flags, 0);
  const count = checked(c.recvmsg(socketFd, scratch.header, MSG_CMSG_CLOEXEC));
  if (count < 0) return { count, fds: NO_DESCRIPTORS, controlTruncated: false };
  const controlBytes = readWord(scratch.header, MSG.controllen);
  const fds = controlBytes === 0 ? NO_DESCRIPTORS : descriptorsIn(scratch.control, controlBytes);
  if ((readInt(scratch.header, MSG.flags) & MSG_CTRUNC) !== 0) {
    for (const fd of fds) c.close(fd);
    return { count, fds: NO_DESCRIPTORS, controlTruncated: true };
  }
  return { count, fds, controlTruncated: false };
}
