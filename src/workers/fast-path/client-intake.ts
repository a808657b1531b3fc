/**
 * A worker's first look at a client it accepted: read the request, waiting only a very short
 * window for it. libsasl2 and testsaslauthd write the whole request at once right after
 * connecting, so it is nearly always there at the first read; a client that is slower, sends
 * a byte at a time, says nothing, or sends more than one request's bytes is unusual and goes
 * to the primary (with the bytes read so far), where it costs a few bytes and a deadline
 * instead of a worker.
 */
import { RequestDecoder, type WireRequest } from '../../protocol/codec.js';
import { EAGAIN, EINTR, readInto, waitReadable } from '../../native/posix-sockets.js';
import { monotonicMs } from '../../runtime/monotonic-clock.js';

/**
 * How long a worker waits for a request to be complete: long enough for a client that was
 * accepted between its connect() and its write() (an idle worker accepts at once), short
 * enough to cost little. The fast path waits only after a client that sent its request in
 * time (fast-path.ts): a flood of idle or byte-at-a-time clients would otherwise cost this
 * much per connection, ahead of the real clients queued behind them in the listen backlog
 * (with 2 ms each, 300 of them made the right password wait for 140 checks of a burst in
 * test/guessing-bounds).
 */
export const REQUEST_WINDOW_MS = 2;
/** Bytes a worker reads at most: a request is ≤ 5 × 258 bytes; more means something unusual. */
const MAX_INTAKE_BYTES = 2048;

export type Intake =
  /** The whole request and nothing after it: answerable here. `received` holds its bytes. */
  | { readonly kind: 'request'; readonly request: WireRequest; readonly received: Buffer }
  /** Not answerable here (incomplete, more bytes after it, a field too long): hand it over. */
  | { readonly kind: 'unusual'; readonly received: Buffer }
  /** The client closed (or reset) before sending a whole request: nothing to answer. */
  | { readonly kind: 'closed' };

const chunk = Buffer.alloc(MAX_INTAKE_BYTES);

/** Reads one request from a freshly accepted, non-blocking `fd`. The caller zeroes `received`. */
export function readRequest(fd: number, windowMs = REQUEST_WINDOW_MS, now: () => number = monotonicMs): Intake {
  const decoder = new RequestDecoder();
  let length = 0;
  const deadline = now() + windowMs;
  try {
    for (;;) {
      const count = readInto(fd, chunk.subarray(length));
      if (count === -EAGAIN || count === -EINTR) {
        const left = deadline - now();
        if (left <= 0 || waitReadable(fd, left) <= 0) return { kind: 'unusual', received: Buffer.from(chunk.subarray(0, length)) };
        continue;
      }
      if (count <= 0) return { kind: 'closed' };
      const result = decoder.push(chunk.subarray(length, length + count));
      length += count;
      if (result.kind === 'incomplete') {
        if (length < chunk.length) continue;
        return { kind: 'unusual', received: Buffer.from(chunk.subarray(0, length)) };
      }
      const received = Buffer.from(chunk.subarray(0, length));
      if (result.kind === 'request' && result.trailingBytes === 0) return { kind: 'request', request: result.request, received };
      if (result.kind === 'request') wipe(result.request);
      return { kind: 'unusual', received };
    }
  } finally {
    chunk.fill(0, 0, length);
    decoder.dispose();
  }
}

function wipe(request: WireRequest): void {
  request.password.fill(0);
}
