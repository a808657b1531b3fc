/**
 * `node dist/bench/koffi-overhead.js`: what one call through koffi costs here, for the calls
 * the daemon makes per request (the fast-path issue asks for the hot path to make as few
 * calls as the C daemon, so each call's price matters). Measures, in one process:
 *   - getpid(): a function with no arguments (koffi's floor plus the cheapest system call);
 *   - read(fd, buffer, 0) on /dev/null: a call passing a Buffer;
 *   - epoll_wait(epfd, events, 8, 0) on an empty set: the poller's per-turn call;
 *   - the same getpid through process.pid's uncached twin (a JS built-in) as a baseline.
 * Prints microseconds per call (median of 5 rounds of 200,000 calls).
 */
import { openSync, closeSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { libcHandle } from '../src/native/libc.js';

const CALLS = 200_000;
const ROUNDS = 5;

type Fn = (...args: unknown[]) => number;

function perCallMicros(call: () => void): number {
  const rounds: number[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    const start = performance.now();
    for (let i = 0; i < CALLS; i++) call();
    rounds.push(((performance.now() - start) * 1000) / CALLS);
  }
  rounds.sort((a, b) => a - b);
  return rounds[Math.floor(ROUNDS / 2)]!;
}

const libc = libcHandle();
const getpid = libc.func('getpid', 'int', []) as Fn;
const read = libc.func('read', 'long', ['int', 'void *', 'unsigned long']) as Fn;
const epollCreate1 = libc.func('epoll_create1', 'int', ['int']) as Fn;
const epollWait = libc.func('epoll_wait', 'int', ['int', 'void *', 'int', 'int']) as Fn;

const devNull = openSync('/dev/null', 'r');
const buffer = Buffer.alloc(16);
const epfd = epollCreate1(0);
const events = Buffer.alloc(12 * 8);
const results: Record<string, number> = {
  'JS baseline (process.cpuUsage)': perCallMicros(() => void process.cpuUsage()),
  'getpid() through koffi': perCallMicros(() => void getpid()),
  'read(/dev/null, Buffer, 0) through koffi': perCallMicros(() => void read(devNull, buffer, 0)),
  'epoll_wait(empty set, 8 events, 0) through koffi': perCallMicros(() => void epollWait(epfd, events, 8, 0)),
};
closeSync(devNull);
closeSync(epfd);
for (const [name, micros] of Object.entries(results)) process.stdout.write(`${name.padEnd(52)} ${micros.toFixed(3)} µs/call\n`);
