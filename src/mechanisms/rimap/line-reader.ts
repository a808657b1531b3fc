/**
 * Reads CRLF- (or LF-) terminated lines from an IMAP connection, each wait with a timeout.
 * The outcome says what ended a wait, because the original answers a timeout or EOF, a
 * read error and an oversized response differently.
 */
import type { Socket } from 'node:net';

export type ReadOutcome =
  | { readonly kind: 'line'; readonly line: Buffer }
  | { readonly kind: 'timeout' }
  | { readonly kind: 'closed' }
  | { readonly kind: 'error'; readonly message: string }
  | { readonly kind: 'overflow' };

const LF = 0x0a;
const CR = 0x0d;

export class LineReader {
  private buffered: Buffer = Buffer.alloc(0);
  private ended = false;
  private failure: string | undefined;
  private wake: (() => void) | undefined;
  private readonly onData = (chunk: Buffer): void => {
    this.buffered = this.buffered.length === 0 ? chunk : Buffer.concat([this.buffered, chunk]);
    this.notify();
  };
  private readonly onEnd = (): void => {
    this.ended = true;
    this.notify();
  };
  private readonly onError = (error: Error): void => {
    this.failure ??= error.message;
    this.notify();
  };

  /** `maxLineBytes`: a longer line is an overflow (the original's fixed response buffer). */
  constructor(
    private readonly socket: Socket,
    private readonly maxLineBytes: number,
  ) {
    socket.on('data', this.onData);
    socket.on('end', this.onEnd);
    socket.on('close', this.onEnd);
    socket.on('error', this.onError);
  }

  /** The next line without its line ending, or what stopped the wait. */
  async nextLine(timeoutMs: number): Promise<ReadOutcome> {
    const until = performance.now() + timeoutMs;
    for (;;) {
      const lf = this.buffered.indexOf(LF);
      if (lf >= 0 && lf <= this.maxLineBytes) {
        const end = lf > 0 && this.buffered[lf - 1] === CR ? lf - 1 : lf;
        const line = Buffer.from(this.buffered.subarray(0, end));
        this.buffered = this.buffered.subarray(lf + 1);
        return { kind: 'line', line };
      }
      if (lf > this.maxLineBytes || (lf < 0 && this.buffered.length > this.maxLineBytes)) return { kind: 'overflow' };
      if (this.failure !== undefined) return { kind: 'error', message: this.failure };
      if (this.ended) return { kind: 'closed' };
      const left = until - performance.now();
      if (left <= 0) return { kind: 'timeout' };
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  }

  /** Bytes received but not yet read as lines. */
  get pendingBytes(): number {
    return this.buffered.length;
  }

  /** Stops listening (before a TLS upgrade hands the socket over). */
  detach(): void {
    this.socket.removeListener('data', this.onData);
    this.socket.removeListener('end', this.onEnd);
    this.socket.removeListener('close', this.onEnd);
    this.socket.removeListener('error', this.onError);
    this.wake = undefined;
  }

  private notify(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }
}
