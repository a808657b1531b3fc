/**
 * The fast path's frames on the primary <-> worker channel (framing: channel.ts).
 *
 *   HANDOFF  u8 flags (bit 0: the mechanism answered, bit 1: its backend was unavailable),
 *            u32 failure delay (ms), u16 reply length + reply (latin1), then every byte read
 *            from the client so far (the primary decodes them as if it had read them itself).
 *            The client's descriptor travels with the frame (SCM_RIGHTS).
 *   FILL     32-byte key digest, 32-byte password MAC, u32 cache generation at the check's
 *            start, then user, realm, service (u16 length + bytes each; for flushUser).
 */
import { FrameType } from './channel.js';

/** Digest sizes of the cache (HMAC-SHA256). */
const DIGEST_BYTES = 32;

export interface Handoff {
  /** Bytes read from the client: a partial request, or a whole one (maybe with more after it). */
  readonly received: Buffer;
  /** What the mechanism answered (a NO, with PAM's delay), when it ran. */
  readonly answer?: { readonly reply: string; readonly failDelayMs: number; readonly unavailable: boolean };
}

export interface CacheFill {
  readonly keyDigest: Buffer;
  readonly mac: Buffer;
  readonly generation: number;
  readonly user: Buffer;
  readonly realm: Buffer;
  readonly service: Buffer;
}

const ANSWERED = 1;
const UNAVAILABLE = 2;
/** A delay word keeps 31 bits (24 days), as the RESULT frame's. */
const MAX_DELAY_MS = 0x7fff_ffff;

function header(type: number, payloadBytes: number): Buffer {
  const frame = Buffer.allocUnsafe(5 + payloadBytes);
  frame.writeUInt32BE(1 + payloadBytes, 0);
  frame.writeUInt8(type, 4);
  return frame;
}

export function encodeHandoff({ received, answer }: Handoff): Buffer {
  const reply = Buffer.from(answer?.reply ?? '', 'latin1');
  const frame = header(FrameType.handoff, 1 + 4 + 2 + reply.length + received.length);
  let flags = 0;
  if (answer) flags |= ANSWERED;
  if (answer?.unavailable) flags |= UNAVAILABLE;
  frame.writeUInt8(flags, 5);
  frame.writeUInt32BE(Math.max(0, Math.min(MAX_DELAY_MS, Math.ceil(answer?.failDelayMs ?? 0))), 6);
  frame.writeUInt16BE(reply.length, 10);
  reply.copy(frame, 12);
  received.copy(frame, 12 + reply.length);
  return frame;
}

/** The frame's `received` is a copy; the caller zeroes the payload (it may hold a password). */
export function decodeHandoff(payload: Buffer): Handoff {
  const flags = payload.readUInt8(0);
  const failDelayMs = payload.readUInt32BE(1);
  const replyLength = payload.readUInt16BE(5);
  const reply = payload.subarray(7, 7 + replyLength).toString('latin1');
  const received = Buffer.from(payload.subarray(7 + replyLength));
  return (flags & ANSWERED) !== 0
    ? { received, answer: { reply, failDelayMs, unavailable: (flags & UNAVAILABLE) !== 0 } }
    : { received };
}

export function encodeFill(fill: CacheFill): Buffer {
  const owner = [fill.user, fill.realm, fill.service];
  let size = 2 * DIGEST_BYTES + 4;
  for (const part of owner) size += 2 + part.length;
  const frame = header(FrameType.fill, size);
  fill.keyDigest.copy(frame, 5, 0, DIGEST_BYTES);
  fill.mac.copy(frame, 5 + DIGEST_BYTES, 0, DIGEST_BYTES);
  frame.writeUInt32BE(fill.generation >>> 0, 5 + 2 * DIGEST_BYTES);
  let offset = 9 + 2 * DIGEST_BYTES;
  for (const part of owner) {
    frame.writeUInt16BE(part.length, offset);
    part.copy(frame, offset + 2);
    offset += 2 + part.length;
  }
  return frame;
}

export function decodeFill(payload: Buffer): CacheFill {
  const keyDigest = Buffer.from(payload.subarray(0, DIGEST_BYTES));
  const mac = Buffer.from(payload.subarray(DIGEST_BYTES, 2 * DIGEST_BYTES));
  const generation = payload.readUInt32BE(2 * DIGEST_BYTES);
  let offset = 2 * DIGEST_BYTES + 4;
  const owner: Buffer[] = [];
  for (let i = 0; i < 3; i++) {
    const length = payload.readUInt16BE(offset);
    owner.push(Buffer.from(payload.subarray(offset + 2, offset + 2 + length)));
    offset += 2 + length;
  }
  const [user, realm, service] = owner as [Buffer, Buffer, Buffer];
  return { keyDigest, mac, generation, user, realm, service };
}
