/**
 * A saslauthd client, as libsasl2 and testsaslauthd behave: connect, send the request in
 * one write, read the u16 length and the reply, close. Failures say which step failed,
 * with the errno text, so testsaslauthd can print the original's messages.
 */
import { connect } from 'node:net';
import { getSystemErrorMap } from 'node:util';
import { decodeReply, encodeRequest } from './codec.js';

export type ClientStep = 'connect' | 'write' | 'size read' | 'read' | 'bad response';

export class ClientError extends Error {
  constructor(
    readonly step: ClientStep,
    readonly detail: string,
  ) {
    super(`${step}: ${detail}`);
  }
}

/** Replies longer than this are cut, as libsasl2 and testsaslauthd read at most 1023 bytes. */
const MAX_READ_BYTES = 1024;

export interface ClientRequest {
  readonly socketPath: string;
  /** login, password, service, realm[, client address] */
  readonly fields: readonly Buffer[];
  /** Give up after this long (the C clients wait forever). */
  readonly deadlineMs: number;
}

/** Sends one request and resolves with the reply text (bytes). */
export function askSaslauthd(request: ClientRequest): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const socket = connect({ path: request.socketPath });
    let step: ClientStep = 'connect';
    let received = Buffer.alloc(0);
    const fail = (error: ClientError): void => {
      clearTimeout(timer);
      socket.destroy();
      reject(error);
    };
    const timer = setTimeout(() => fail(new ClientError(step, 'timed out')), request.deadlineMs);
    socket.on('connect', () => {
      step = 'write';
      socket.write(encodeRequest(request.fields), (error) => {
        if (error) fail(new ClientError('write', errnoText(error)));
        else step = 'size read';
      });
    });
    socket.on('data', (chunk: Buffer) => {
      received = Buffer.concat([received, chunk]);
      if (received.length >= 2) step = 'read';
      const reply = decodeReply(received);
      if (reply) finish(reply.text);
      else if (received.length >= MAX_READ_BYTES + 2) finish(received.subarray(2, MAX_READ_BYTES + 2));
    });
    socket.on('end', () => {
      if (received.length < 2) fail(new ClientError('size read', 'connection closed'));
      else fail(new ClientError('read', 'connection closed'));
    });
    socket.on('error', (error) => fail(new ClientError(step, errnoText(error))));
    const finish = (text: Buffer): void => {
      clearTimeout(timer);
      socket.destroy();
      if (text.length < 2) reject(new ClientError('bad response', `reply of ${text.length} bytes`));
      else resolve(Buffer.from(text.subarray(0, MAX_READ_BYTES)));
    };
  });
}

/** strerror-like text for a Node system error ("No such file or directory"). */
export function errnoText(error: Error): string {
  const errno = (error as NodeJS.ErrnoException).errno;
  const entry = typeof errno === 'number' ? getSystemErrorMap().get(errno) : undefined;
  if (!entry) return error.message;
  const message = entry[1];
  return message.charAt(0).toUpperCase() + message.slice(1);
}
