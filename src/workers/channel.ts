/**
 * Framing of the primary <-> worker channel: a Unix socket pair (the worker's fd 3).
 * Binary frames rather than Node's JSON IPC: passwords stay bytes end to end (never a JS
 * string), nothing is serialized twice, and a frame costs a few copies.
 *
 * Frame: u32 BE length of what follows, u8 type, payload.
 *   JOB     primary -> worker  u32 jobId, 5 × (u16 length + bytes): login, password,
 *                              service, realm, remote host (empty = none)
 *   READY   worker -> primary  (empty): the mechanism is initialized, jobs may come
 *   RESULT  worker -> primary  u32 jobId, u32 flags+failDelayMs (bit 31: the backend was
 *                              unavailable; bits 0-30: the delay), reply bytes (the rest)
 *   FAILED  worker -> primary  utf-8 reason: the mechanism could not start in this worker
 * and those of the fast path (fast-path-frames.ts), where workers accept clients themselves:
 *   LISTEN     primary -> worker  (empty) + the listening socket (SCM_RIGHTS): accept on it
 *   QUIESCE    primary -> worker  (empty): stop accepting (shutdown, retirement)
 *   ACCEPTING  worker -> primary  (empty): the worker now waits on the listening socket
 *   HANDOFF    worker -> primary  a client connection (SCM_RIGHTS) with what was read from
 *                                 it, and the mechanism's NO when there is one
 *   FILL       worker -> primary  a cache entry to store (digests, never the password)
 *   FILLED     primary -> worker  (empty): that entry is stored; the worker may answer OK
 *   RETIRE     worker -> primary  (empty): --max-jobs-per-worker reached; replace me
 */

export const FrameType = {
  job: 1,
  ready: 2,
  result: 3,
  failed: 4,
  listen: 5,
  quiesce: 6,
  accepting: 7,
  handoff: 8,
  fill: 9,
  retire: 10,
  filled: 11,
} as const;
export type FrameTypeCode = (typeof FrameType)[keyof typeof FrameType];

/** Upper bound of a frame: 5 fields of at most 64 KiB plus headers; anything larger is a bug. */
const MAX_FRAME_BYTES = 5 * (2 + 0xffff) + 16;

export interface JobFrame {
  readonly jobId: number;
  readonly login: Buffer;
  readonly password: Buffer;
  readonly service: Buffer;
  readonly realm: Buffer;
  readonly remoteHost: Buffer;
}

export interface ResultFrame {
  readonly jobId: number;
  readonly failDelayMs: number;
  readonly reply: string;
  /** The mechanism could not reach its backend: the NO says nothing about the password. */
  readonly unavailable?: boolean;
}

/** Bit 31 of a result's delay word: AuthResult.unavailable. The delay keeps 31 bits (24 days). */
const UNAVAILABLE_BIT = 0x8000_0000;
const MAX_DELAY_MS = 0x7fff_ffff;

export function encodeJob(job: JobFrame): Buffer {
  const fields = [job.login, job.password, job.service, job.realm, job.remoteHost];
  let size = 1 + 4;
  for (const field of fields) size += 2 + field.length;
  const frame = Buffer.allocUnsafe(4 + size);
  frame.writeUInt32BE(size, 0);
  frame.writeUInt8(FrameType.job, 4);
  frame.writeUInt32BE(job.jobId, 5);
  let offset = 9;
  for (const field of fields) {
    frame.writeUInt16BE(field.length, offset);
    field.copy(frame, offset + 2);
    offset += 2 + field.length;
  }
  return frame;
}

export function decodeJob(payload: Buffer): JobFrame {
  const jobId = payload.readUInt32BE(0);
  let offset = 4;
  const fields: Buffer[] = [];
  for (let i = 0; i < 5; i++) {
    const length = payload.readUInt16BE(offset);
    fields.push(payload.subarray(offset + 2, offset + 2 + length));
    offset += 2 + length;
  }
  const [login, password, service, realm, remoteHost] = fields as [Buffer, Buffer, Buffer, Buffer, Buffer];
  return { jobId, login, password, service, realm, remoteHost };
}

export function encodeResult(result: ResultFrame): Buffer {
  const reply = Buffer.from(result.reply, 'latin1');
  const frame = Buffer.allocUnsafe(4 + 1 + 8 + reply.length);
  frame.writeUInt32BE(1 + 8 + reply.length, 0);
  frame.writeUInt8(FrameType.result, 4);
  frame.writeUInt32BE(result.jobId, 5);
  const delay = Math.max(0, Math.min(MAX_DELAY_MS, Math.ceil(result.failDelayMs)));
  frame.writeUInt32BE((delay | (result.unavailable ? UNAVAILABLE_BIT : 0)) >>> 0, 9);
  reply.copy(frame, 13);
  return frame;
}

export function decodeResult(payload: Buffer): ResultFrame {
  const word = payload.readUInt32BE(4);
  return {
    jobId: payload.readUInt32BE(0),
    failDelayMs: word & MAX_DELAY_MS,
    reply: payload.subarray(8).toString('latin1'),
    ...((word & UNAVAILABLE_BIT) !== 0 ? { unavailable: true } : {}),
  };
}

export function encodeSimple(type: FrameTypeCode, text = ''): Buffer {
  const body = Buffer.from(text, 'utf8');
  const frame = Buffer.allocUnsafe(5 + body.length);
  frame.writeUInt32BE(1 + body.length, 0);
  frame.writeUInt8(type, 4);
  body.copy(frame, 5);
  return frame;
}

/** Splits a byte stream into frames. Throws on a frame that cannot be ours. */
export class FrameReader {
  private pending: Buffer = Buffer.alloc(0);

  *push(chunk: Buffer): Generator<{ type: number; payload: Buffer }> {
    this.pending = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
    let offset = 0;
    while (this.pending.length - offset >= 5) {
      const size = this.pending.readUInt32BE(offset);
      if (size < 1 || size > MAX_FRAME_BYTES) throw new Error(`corrupt worker frame (size ${size})`);
      if (this.pending.length - offset - 4 < size) break;
      const type = this.pending.readUInt8(offset + 4);
      const payload = this.pending.subarray(offset + 5, offset + 4 + size);
      offset += 4 + size;
      yield { type, payload };
    }
    this.pending = offset === this.pending.length ? Buffer.alloc(0) : this.pending.subarray(offset);
  }
}
