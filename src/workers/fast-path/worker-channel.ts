/**
 * The worker's end of the channel to the primary (fd 3, a Unix socket pair; framing in
 * channel.ts). Besides frames it carries descriptors: the listening socket comes in with a
 * LISTEN frame, client connections go out with HANDOFF frames (SCM_RIGHTS).
 *
 * A cache fill is acknowledged: the worker sends it and waits (briefly) for FILLED before it
 * answers OK, so a client that got OK finds the entry on its next request, whichever process
 * takes it. Frames that arrive meanwhile are kept and handed out by the next receive().
 */
import { receiveWithDescriptors, sendWithDescriptor } from '../../native/descriptor-passing.js';
import { EAGAIN, EINTR, closeFd, sendSome, setNonBlocking, waitReadable, waitWritable } from '../../native/posix-sockets.js';
import { monotonicMs } from '../../runtime/monotonic-clock.js';
import { FrameReader, FrameType } from '../channel.js';

/** A fill not acknowledged by then is given up on: the client gets its OK anyway. */
const FILL_ACK_DEADLINE_MS = 200;
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
  /** Frames read while waiting for an acknowledgement, not handed out yet. */
  private kept: ChannelFrame[] = [];
  private ended = false;

  constructor(readonly fd: number) {
    setNonBlocking(fd);
  }

  /** Frames that arrived; `ended` once the primary closed its end (or it died). */
  receive(): { frames: ChannelFrame[]; ended: boolean } {
    const frames = this.kept;
    this.kept = [];
    if (this.ended) return { frames, ended: true };
    for (;;) {
      const { count, fds } = receiveWithDescriptors(this.fd, this.buffer);
      this.descriptors.push(...fds);
      if (count === -EAGAIN || count === -EINTR) return { frames, ended: false };
      if (count <= 0) {
        this.ended = true;
        return { frames, ended: true };
      }
      const chunk = Buffer.from(this.buffer.subarray(0, count));
      this.buffer.fill(0, 0, count); // a job frame holds a password
      for (const frame of this.reader.push(chunk)) {
        const fd = frame.type === FrameType.listen ? (this.descriptors.shift() ?? -1) : -1;
        frames.push({ type: frame.type, payload: frame.payload, fd }); // the caller zeroes a job's payload
      }
    }
  }

  /** Frames (or the end) read already and waiting for the next receive(). */
  get hasKept(): boolean {
    return this.kept.length > 0 || this.ended;
  }

  /** Writes a frame now (waiting for room if the primary is slow to read). */
  send(frame: Buffer): void {
    this.write(frame);
  }

  /**
   * Sends a cache fill and waits until the primary stored it (FILLED), at most
   * FILL_ACK_DEADLINE_MS; other frames read meanwhile are kept for receive().
   */
  sendFill(frame: Buffer): void {
    this.write(frame);
    const deadline = monotonicMs() + FILL_ACK_DEADLINE_MS;
    for (;;) {
      const { frames, ended } = this.receive();
      const ack = frames.findIndex((candidate) => candidate.type === FrameType.filled);
      if (ack !== -1) frames.splice(ack, 1);
      this.kept.push(...frames);
      this.ended = ended;
      if (ack !== -1 || ended) return;
      const left = deadline - monotonicMs();
      if (left <= 0 || waitReadable(this.fd, left) <= 0) return;
    }
  }

  /** Writes a frame with a descriptor attached; closes our copy of the descriptor. */
  sendWithDescriptor(frame: Buffer, fd: number): void {
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
