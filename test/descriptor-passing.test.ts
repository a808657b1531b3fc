/**
 * sendmsg/recvmsg with SCM_RIGHTS through koffi, in-process over real socketpairs and pipes:
 * a passed descriptor reaches the same open file, and what Linux does with the descriptors of
 * several sendmsg calls on a stream socket (descriptor-passing.ts relies on it).
 */
import { afterEach, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readSync, readdirSync, writeSync } from 'node:fs';
import koffi from 'koffi';
import { libcHandle } from '../src/native/libc.js';
import {
  MAX_DESCRIPTORS_PER_RECEIVE,
  receiveWithDescriptors,
  sendWithDescriptor,
  sendWithDescriptors,
} from '../src/native/descriptor-passing.js';
import { EAGAIN, closeFd, sendSome, setNonBlocking, socketPair } from '../src/native/posix-sockets.js';

const O_CLOEXEC = 0o2000000;
const pipe2 = libcHandle().func('pipe2', 'int', ['void *', 'int']) as (fds: Buffer, flags: number) => number;

/** Every descriptor a test opened, closed after it whatever happens. */
let opened: number[] = [];
afterEach(() => {
  for (const fd of opened) closeFd(fd);
  opened = [];
});

function track<T extends number[]>(...fds: T): T {
  opened.push(...fds);
  return fds;
}

/** Closes a tracked descriptor now (for EOF checks). */
function closeNow(fd: number): void {
  closeFd(fd);
  opened = opened.filter((other) => other !== fd);
}

/** A close-on-exec pipe: [read end, write end]. */
function pipe(): [number, number] {
  const fds = Buffer.alloc(8);
  assert.equal(pipe2(fds, O_CLOEXEC), 0, `pipe2: errno ${koffi.errno()}`);
  return track(fds.readInt32LE(0), fds.readInt32LE(4));
}

function pair(): [number, number] {
  const [a, b] = socketPair();
  return track(a, b);
}

function openDescriptorCount(): number {
  return readdirSync('/proc/self/fd').length;
}

/** The open-file flags of one of our descriptors (octal in /proc/self/fdinfo). */
function openFlags(fd: number): number {
  const match = /^flags:\s+([0-7]+)$/m.exec(readFileSync(`/proc/self/fdinfo/${fd}`, 'latin1'));
  assert.ok(match, `no flags for fd ${fd}`);
  return parseInt(match[1]!, 8);
}

/** Writes `text` through `writeFd` and reads it back from `readFd`: the two are ends of one pipe. */
function assertSamePipe(writeFd: number, readFd: number, text: string): void {
  assert.equal(writeSync(writeFd, text), text.length);
  const back = Buffer.alloc(256);
  assert.equal(back.toString('latin1', 0, readSync(readFd, back)), text);
}

function receive(fd: number, bytes = 256): { text: string; fds: readonly number[]; count: number } {
  const buffer = Buffer.alloc(bytes);
  const received = receiveWithDescriptors(fd, buffer);
  track(...received.fds);
  assert.equal(received.controlTruncated, false);
  return { count: received.count, text: buffer.toString('latin1', 0, Math.max(received.count, 0)), fds: received.fds };
}

test("a pipe's write end passed over a socketpair writes into the same pipe, close-on-exec", () => {
  const [readEnd, writeEnd] = pipe();
  const [sender, receiver] = pair();
  assert.equal(sendWithDescriptor(sender, Buffer.from('H'), writeEnd), 1);
  closeNow(writeEnd); // only the received copy is left
  const got = receive(receiver);
  assert.equal(got.count, 1);
  assert.equal(got.text, 'H');
  assert.equal(got.fds.length, 1);
  const passed = got.fds[0]!;
  assert.equal(openFlags(passed) & O_CLOEXEC, O_CLOEXEC, 'received with MSG_CMSG_CLOEXEC');
  assertSamePipe(passed, readEnd, 'written through the passed descriptor');
  closeNow(passed);
  assert.equal(readSync(readEnd, Buffer.alloc(8)), 0, 'EOF: the passed copy was the last write end');
});

test('Linux gives one sendmsg\'s descriptors per recvmsg: two messages with descriptors take two reads, in order', () => {
  const [read1, write1] = pipe();
  const [read2, write2] = pipe();
  const [sender, receiver] = pair();
  assert.equal(sendWithDescriptor(sender, Buffer.from('first'), write1), 5);
  assert.equal(sendWithDescriptor(sender, Buffer.from('second'), write2), 6);
  const one = receive(receiver);
  assert.deepEqual([one.text, one.fds.length], ['first', 1]);
  const two = receive(receiver);
  assert.deepEqual([two.text, two.fds.length], ['second', 1]);
  assertSamePipe(one.fds[0]!, read1, 'pipe one');
  assertSamePipe(two.fds[0]!, read2, 'pipe two');
});

test('bytes without descriptors before a message with descriptors come in the same read; bytes after it do not', () => {
  const [, writeEnd] = pipe();
  const [sender, receiver] = pair();
  assert.equal(sendSome(sender, Buffer.from('plain|')), 6);
  assert.equal(sendWithDescriptor(sender, Buffer.from('with-fd|'), writeEnd), 8);
  assert.equal(sendSome(sender, Buffer.from('after')), 5);
  const one = receive(receiver);
  assert.deepEqual([one.text, one.fds.length], ['plain|with-fd|', 1]);
  const two = receive(receiver);
  assert.deepEqual([two.text, two.fds.length], ['after', 0]);
});

test('a message read in pieces: its descriptors come with the first piece', () => {
  const [readEnd, writeEnd] = pipe();
  const [sender, receiver] = pair();
  assert.equal(sendWithDescriptor(sender, Buffer.from('ABCDEF'), writeEnd), 6);
  const pieces = [receive(receiver, 2), receive(receiver, 2), receive(receiver, 2)];
  assert.deepEqual(
    pieces.map((piece) => [piece.text, piece.fds.length]),
    [['AB', 1], ['CD', 0], ['EF', 0]],
  );
  assertSamePipe(pieces[0]!.fds[0]!, readEnd, 'first piece');
});

test('several descriptors in one sendmsg arrive together, in order', () => {
  const [read1, write1] = pipe();
  const [read2, write2] = pipe();
  const [sender, receiver] = pair();
  assert.equal(sendWithDescriptors(sender, Buffer.from('two'), [write1, write2]), 3);
  const got = receive(receiver);
  assert.deepEqual([got.text, got.fds.length], ['two', 2]);
  assertSamePipe(got.fds[0]!, read1, 'first');
  assertSamePipe(got.fds[1]!, read2, 'second');
});

test('an empty non-blocking socket gives -EAGAIN; a closed peer gives 0', () => {
  const [sender, receiver] = pair();
  assert.equal(setNonBlocking(receiver), 0);
  const empty = receiveWithDescriptors(receiver, Buffer.alloc(16));
  assert.deepEqual([empty.count, empty.fds.length, empty.controlTruncated], [-EAGAIN, 0, false]);
  closeNow(sender);
  const closed = receiveWithDescriptors(receiver, Buffer.alloc(16));
  assert.deepEqual([closed.count, closed.fds.length], [0, 0]);
});

test('more descriptors than the room: reported as truncated, the ones that came are closed, the bytes kept', () => {
  const [, writeEnd] = pipe();
  const [sender, receiver] = pair();
  const many = Array.from({ length: MAX_DESCRIPTORS_PER_RECEIVE + 4 }, () => writeEnd);
  assert.equal(sendWithDescriptors(sender, Buffer.from('M'), many), 1);
  const before = openDescriptorCount();
  const buffer = Buffer.alloc(16);
  const received = receiveWithDescriptors(receiver, buffer);
  assert.deepEqual([received.count, received.fds.length, received.controlTruncated], [1, 0, true]);
  assert.equal(buffer.toString('latin1', 0, 1), 'M');
  assert.equal(openDescriptorCount(), before, 'no descriptor left open by the truncated receive');
});

test('refusals come back as -errno, never a throw', () => {
  const [, writeEnd] = pipe();
  const [sender, receiver] = pair();
  assert.equal(sendWithDescriptor(sender, Buffer.alloc(0), writeEnd), -22, 'EINVAL: no byte to carry the descriptor');
  assert.equal(sendWithDescriptors(sender, Buffer.from('x'), []), -22);
  assert.equal(receiveWithDescriptors(receiver, Buffer.alloc(0)).count, -22);
  assert.equal(sendWithDescriptor(sender, Buffer.from('x'), 1_000_000), -9, 'EBADF: no such descriptor to pass');
  assert.equal(sendWithDescriptor(-1, Buffer.from('x'), writeEnd), -9, 'EBADF: no such socket');
  closeNow(receiver);
  assert.equal(sendWithDescriptor(sender, Buffer.from('x'), writeEnd), -32, 'EPIPE (MSG_NOSIGNAL: no SIGPIPE)');
});
