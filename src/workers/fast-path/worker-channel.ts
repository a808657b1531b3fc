/**
 * The worker's end of the channel to the primary (fd 3, a Unix socket pair; framing in
 * channel.ts). Besides frames it carries descriptors: the listening socket comes in with a
 * LISTEN frame, client connections go out with HANDOFF frames (SCM_RIGHTS).
 *
 * Reports that need no answer (cache fills) are queued and written together when the worker
 * is about to wait, or when many are pending: one write per batch, not one per request.
 */
import { receiveWithDescriptors, sendWithDescriptor } from '../../native/descriptor-passing.js';
import { EAGAIN, EINTR, closeFd, sendSome, setNonBlocking, waitWritable } from '../../native/posix-sockets.js';
import { FrameReader, FrameType } from '../channel.js';

/** Queued report frames written at once past this many, even while the worker is busy. */
const MAX_QUEUED_REPORTS = 32;
/** Read size: frames from the primary are jobs (≤ ~1.3 KB) and a few empty ones. */
const READ_BYTES = 16 * 1024;

export interface ChannelFrame {
  readonly type: number;
  readonly payload: Buffer;
  /** The descriptor that came with it (LISTEN), else -1. */
  readonly fd: number;
}

export class WorkerChannel {
  private readonly reader = new FrameReader();
  private readonly buffer = Buffer.alloc(READ_BYTES);
  /** Descriptors received and not yet matched to their frame, oldest first. */
  private readonly descriptors: number[] = [];
  private queued: Buffer[] = [];

  constructor(readonly fd: number) {
    setNonBlocking(fd);
  }

  /** Frames that arrived; `ended` once the primary closed its end (or it died). */
  receive(): { frames: ChannelFrame[]; ended: boolean } {
    const frames: ChannelFrame[] = [];
    for (;;) {
      const { count, fds } = receiveWithDescriptors(this.fd, this.buffer);
      this.descriptors.push(...fds);
      if (count === -EAGAIN || count === -EINTR) return { frames, ended: false };
      if (count <= 0) return { frames, ended: true };
      const chunk = Buffer.from(this.buffer.subarray(0, count));
      this.buffer.fill(0, 0, count); // a job frame holds a password
      for (const frame of this.reader.push(chunk)) {
        const fd = frame.type === FrameType.listen ? (this.descriptors.shift() ?? -1) : -1;
        frames.push({ type: frame.type, payload: frame.payload, fd }); // the caller zeroes a job's payload
      }
    }
  }

  /** Writes a frame now (waiting for room if the primary is slow to read). */
  send(frame: Buffer): void {
    this.flushQueued();
    this.write(frame);
  }

  /** Writes a frame with a descriptor attached; closes our copy of the descriptor. */
  sendWithDescriptor(frame: Buffer, fd: number): void {
    this.flushQueued();
    try {
      let sent = sendWithDescriptor(this.fd, frame, fd);
      while (sent === -EAGAIN || sent === -EINTR) {
        waitWritable(this.fd, -1);
        sent = sendWithDescriptor(this.fd, frame, fd);
      }
      if (sent < 0) process.exit(0); // the primary is gone
      if (sent < frame.length) this.write(frame.subarray(sent)); // the descriptor went with the first byte
    } finally {
      closeFd(fd);
    }
  }

  /** Queues a report (a cache fill); written with the next batch. */
  queue(frame: Buffer): void {
    this.queued.push(frame);
    if (this.queued.length >= MAX_QUEUED_REPORTS) this.flushQueued();
  }

  get hasQueued(): boolean {
    return this.queued.length > 0;
  }

  flushQueued(): void {
    if (this.queued.length === 0) return;
    const batch = Buffer.concat(this.queued);
    this.queued = [];
    this.write(batch);
  }

  private write(data: Buffer): void {
    let offset = 0;
    while (offset < data.length) {
      const sent = sendSome(this.fd, offset === 0 ? data : data.subarray(offset));
      if (sent === -EAGAIN || sent === -EINTR) {
        waitWritable(this.fd, -1);
        continue;
      }
      if (sent < 0) process.exit(0); // the primary is gone
      offset += sent;
    }
  }
}
