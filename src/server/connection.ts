/**
 * One client connection, as the C daemon handles it: read one request, answer it,
 * half-close, wait for the client's EOF, close. Unlike the original, both waits have a
 * deadline, so a client that stalls or lingers costs a few bytes and nothing else.
 */
import type { Socket } from 'node:net';
import { REPLY, RequestDecoder, encodeReply, MAX_FIELD_BYTES, type WireRequest } from '../protocol/codec.js';
import type { Logger } from '../log/logger.js';

export interface ConnectionDeadlines {
  /** From accept to a complete request. Real clients send it in one write at once. */
  readonly readTimeoutMs: number;
  /** After the reply, how long the client may keep its end open before we close. */
  readonly drainTimeoutMs: number;
}

export interface ConnectionContext {
  readonly deadlines: ConnectionDeadlines;
  readonly log: Logger;
  readonly answer: (request: WireRequest) => Promise<string>;
}

export function serveConnection(socket: Socket, context: ConnectionContext): void {
  const { log, deadlines } = context;
  const decoder = new RequestDecoder();
  let state: 'reading' | 'answering' | 'draining' = 'reading';
  let timer = setTimeout(() => {
    log.debug(`no complete request within ${deadlines.readTimeoutMs} ms: connection closed`);
    socket.destroy();
  }, deadlines.readTimeoutMs);

  const reply = (text: string): void => {
    if (socket.destroyed) return;
    state = 'draining';
    clearTimeout(timer);
    timer = replyAndDrain(socket, text, deadlines.drainTimeoutMs);
  };

  socket.on('data', (chunk: Buffer) => {
    if (state !== 'reading') return; // anything after the request is discarded, as the original does
    const result = decoder.push(chunk);
    chunk.fill(0); // the decoder copied what it needs; no password bytes left in socket buffers
    if (result.kind === 'incomplete') return;
    if (result.kind === 'field-too-long') {
      log.error(`${result.field} exceeded MAX_REQ_LEN: ${MAX_FIELD_BYTES}`);
      reply(REPLY.fieldTooLong);
      return;
    }
    state = 'answering';
    clearTimeout(timer);
    context.answer(result.request).then(reply, (error: unknown) => {
      log.error(`internal failure while answering: ${(error as Error).message}`);
      reply(REPLY.internalFailure);
    });
  });

  socket.on('end', () => {
    // EOF mid-request: nothing to answer. While answering: the client half-closed after its
    // request; the reply still goes out. After the reply: replyAndDrain closes.
    if (state === 'reading') socket.destroy();
  });

  socket.on('error', (error: NodeJS.ErrnoException) => {
    if (state === 'draining' && socket.writableLength > 0) log.error(`write failure: ${error.code ?? error.message}`);
    else log.debug(`connection error: ${error.code ?? error.message}`);
  });

  socket.on('close', () => {
    clearTimeout(timer);
    decoder.dispose();
  });
}

/**
 * Answers a connection at once without reading its request (server busy): the same reply,
 * half-close and drain as a served connection, so the client reads the reply instead of a
 * reset caused by closing over its unread request.
 */
export function refuseConnection(socket: Socket, text: string, drainTimeoutMs: number): void {
  socket.on('error', () => {});
  socket.on('data', (chunk: Buffer) => chunk.fill(0)); // discard the request unread
  const timer = replyAndDrain(socket, text, drainTimeoutMs);
  socket.on('close', () => clearTimeout(timer));
}

/**
 * Writes the reply and half-closes (SHUT_WR: the client sees EOF at once), then waits for
 * the client's EOF, at most `drainTimeoutMs`, before closing. Returns the drain timer.
 */
function replyAndDrain(socket: Socket, text: string, drainTimeoutMs: number): NodeJS.Timeout {
  socket.end(encodeReply(text));
  if (socket.readableEnded) socket.destroySoon();
  else socket.once('end', () => socket.destroySoon());
  return setTimeout(() => socket.destroy(), drainTimeoutMs);
}
