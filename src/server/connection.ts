/**
 * One client connection, as the C daemon handles it: read one request, answer it,
 * half-close, wait for the client's EOF, close. Unlike the original, both waits have a
 * deadline, so a client that stalls or lingers costs a few bytes and nothing else.
 *
 * The connection is a bare descriptor driven by the socket poller. The usual client has
 * sent its whole request by the time it is accepted, so the common path is: read, answer,
 * send, shut down writing, and wait (in the poller) only for the client's EOF.
 */
import { REPLY, RequestDecoder, encodeReply, MAX_FIELD_BYTES, type DecodeResult, type WireRequest } from '../protocol/codec.js';
import type { Logger } from '../log/logger.js';
import { EAGAIN, EPOLLIN, EPOLLOUT, closeFd, errnoName, readInto, sendSome, shutdownWrite } from '../native/posix-sockets.js';
import type { SocketPoller } from '../native/socket-poller.js';
import type { HandedOverAnswer } from './authenticator.js';

export interface ConnectionDeadlines {
  /** From accept to a complete request. Real clients send it in one write at once. */
  readonly readTimeoutMs: number;
  /** After the reply, how long the client may keep its end open before we close. */
  readonly drainTimeoutMs: number;
}

export interface ConnectionContext {
  readonly poller: SocketPoller;
  readonly deadlines: ConnectionDeadlines;
  readonly log: Logger;
  readonly answer: (request: WireRequest) => Promise<string>;
  /** Answers a request a worker already checked (its NO, handed over with the connection). */
  readonly answerChecked: (request: WireRequest, answer: HandedOverAnswer) => Promise<string>;
  /** Called once, when the descriptor has been closed. */
  readonly onClosed: (connection: ClientConnection) => void;
}

/**
 * Bytes taken per read(2). A request is at most 4 × 258 bytes (a 5th field, the client's
 * host, adds 258); one read usually takes all of it. Shared by every connection: the decoder
 * copies what it keeps, and the buffer is zeroed after each read.
 */
const READ_CHUNK_BYTES = 2048;
const readChunk = Buffer.alloc(READ_CHUNK_BYTES);
/** Reads of discarded bytes per readiness report: a client that keeps sending waits its turn. */
const MAX_DRAIN_READS_PER_EVENT = 16;

type State = 'reading' | 'answering' | 'sending' | 'draining' | 'closed';

export class ClientConnection {
  private state: State = 'reading';
  private decoder: RequestDecoder | undefined;
  private timer: NodeJS.Timeout | undefined;
  private watched = false;
  /** The events the poller reports for this connection while watched. */
  private watchedMask = 0;
  /** Reply bytes the kernel did not take yet (a client that does not read). */
  private unsent: Buffer | undefined;
  /**
   * The request was read and nothing came after it: the usual client. (A refused client's
   * request is not read: it may still be sending.)
   */
  private onlyTheRequest = false;
  /** Deadline for the reply to go out and the client to close, once either has to be waited for. */
  private drainMs = 0;

  constructor(
    private readonly fd: number,
    private readonly context: ConnectionContext,
  ) {}

  /**
   * Serves the request the client sends. `received`: bytes a worker already read from this
   * client before handing the connection over (the rest is read from here on); with `answer`,
   * the worker also ran the check, and only what follows a NO is left to do.
   */
  serve(received?: Buffer, answer?: HandedOverAnswer): void {
    this.decoder = new RequestDecoder();
    if (received && received.length > 0) {
      const result = this.decoder.push(received);
      received.fill(0);
      if (result.kind !== 'incomplete') {
        this.onDecoded(result, answer);
        return;
      }
    }
    if (answer) {
      // A worker sends an answer only with a whole request: this one is not ours to guess at.
      this.context.log.error('a worker handed over an answer without its request: connection closed');
      this.close();
      return;
    }
    this.readRequest();
    if (this.state === 'reading') {
      this.timer = setTimeout(() => {
        this.context.log.debug(`no complete request within ${this.context.deadlines.readTimeoutMs} ms: connection closed`);
        this.close();
      }, this.context.deadlines.readTimeoutMs);
    }
  }

  /** Answers `text` without reading the request (server busy), then drains for at most `drainMs`. */
  refuse(text: string, drainMs: number): void {
    this.state = 'answering';
    this.send(text, drainMs);
  }

  /** Closes the descriptor whatever the state (shutdown, deadlines). */
  close(): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    clearTimeout(this.timer);
    this.decoder?.dispose();
    this.unsent = undefined;
    this.unwatch();
    closeFd(this.fd);
    this.context.onClosed(this);
  }

  private readonly onReady = (): void => {
    if (this.state === 'reading') this.readRequest();
    else if (this.state === 'sending') this.flush();
    else if (this.state === 'draining') this.drain();
  };

  private watch(mask: number): boolean {
    if (this.watched) {
      if (this.watchedMask !== mask) this.context.poller.change(this.fd, mask);
      this.watchedMask = mask;
      return true;
    }
    this.watched = this.context.poller.watch(this.fd, mask, this.onReady);
    this.watchedMask = mask;
    if (!this.watched) this.close();
    return this.watched;
  }

  private unwatch(): void {
    if (!this.watched) return;
    this.watched = false;
    this.context.poller.unwatch(this.fd);
  }

  private readRequest(): void {
    const decoder = this.decoder!;
    for (;;) {
      const count = readInto(this.fd, readChunk);
      if (count === -EAGAIN) {
        this.watch(EPOLLIN);
        return;
      }
      if (count <= 0) {
        // EOF (or a reset) mid-request: nothing to answer.
        if (count < 0) this.context.log.debug(`connection error: ${errnoName(-count)}`);
        this.close();
        return;
      }
      const result = decoder.push(readChunk.subarray(0, count));
      readChunk.fill(0, 0, count); // the decoder copied what it needs
      if (result.kind === 'incomplete') continue;
      this.onDecoded(result);
      return;
    }
  }

  private onDecoded(result: Exclude<DecodeResult, { kind: 'incomplete' }>, answer?: HandedOverAnswer): void {
    this.state = 'answering';
    this.unwatch(); // anything after the request is discarded, as the original does
    clearTimeout(this.timer);
    this.timer = undefined;
    if (result.kind === 'field-too-long') {
      this.context.log.error(`${result.field} exceeded MAX_REQ_LEN: ${MAX_FIELD_BYTES}`);
      this.send(REPLY.fieldTooLong);
      return;
    }
    this.onlyTheRequest = result.trailingBytes === 0;
    const answered = answer ? this.context.answerChecked(result.request, answer) : this.context.answer(result.request);
    answered.then(
      (text) => this.send(text),
      (error: unknown) => {
        this.context.log.error(`internal failure while answering: ${(error as Error).message}`);
        this.send(REPLY.internalFailure);
      },
    );
  }

  /** Sends the reply, half-closes (the client sees EOF at once), then drains. */
  private send(text: string, drainMs = this.context.deadlines.drainTimeoutMs): void {
    if (this.state !== 'answering') return; // closed meanwhile (shutdown)
    this.state = 'sending';
    this.unsent = encodeReply(text);
    this.drainMs = drainMs;
    this.flush();
  }

  /**
   * One deadline covers a client too slow to take the reply and one that lingers after it;
   * set only when something has to be waited for (the usual request never does).
   */
  private armDrainDeadline(): void {
    if (this.timer !== undefined) return;
    this.timer = setTimeout(() => this.close(), this.drainMs);
  }

  private flush(): void {
    const bytes = this.unsent!;
    const sent = sendSome(this.fd, bytes);
    if (sent === -EAGAIN || (sent >= 0 && sent < bytes.length)) {
      if (sent > 0) this.unsent = bytes.subarray(sent);
      this.armDrainDeadline();
      this.watch(EPOLLOUT);
      return;
    }
    if (sent < 0) {
      this.context.log.error(`write failure: ${errnoName(-sent)}`);
      this.close();
      return;
    }
    this.unsent = undefined;
    // Request read and nothing more from the client waiting here (the usual case): closing
    // now gives it the same reply-then-EOF as a drain would, two system calls and one
    // poller round cheaper. Otherwise half-close and drain as the original does.
    if (this.onlyTheRequest) {
      const more = readInto(this.fd, readChunk);
      if (more === -EAGAIN || more === 0) {
        this.close();
        return;
      }
      if (more > 0) readChunk.fill(0, 0, more);
    }
    shutdownWrite(this.fd);
    this.state = 'draining';
    this.drain();
  }

  /** Discards what the client still sends until its EOF (or the deadline). */
  private drain(): void {
    for (let reads = 0; reads < MAX_DRAIN_READS_PER_EVENT; reads++) {
      const count = readInto(this.fd, readChunk);
      if (count === -EAGAIN) {
        this.armDrainDeadline();
        this.watch(EPOLLIN);
        return;
      }
      if (count <= 0) {
        this.close();
        return;
      }
      readChunk.fill(0, 0, count);
    }
    this.armDrainDeadline();
    this.watch(EPOLLIN); // more to discard: the poller reports it again next turn
  }
}
