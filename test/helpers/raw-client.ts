/**
 * A raw socket client for byte-exact tests: sends exactly the bytes given (optionally in
 * pieces), and collects every byte the server sends until it closes.
 */
import { connect, type Socket } from 'node:net';
import { encodeRequest } from '../../src/protocol/codec.js';

/** A test exchange never waits longer than this for the server to close. */
const EXCHANGE_DEADLINE_MS = 10_000;

export function request(...fields: (string | Buffer)[]): Buffer {
  return encodeRequest(fields.map((field) => (typeof field === 'string' ? Buffer.from(field, 'latin1') : field)));
}

export interface ExchangeOptions {
  /** Write the bytes in pieces of this size, one write per tick. */
  readonly pieceSize?: number;
  /** Half-close (SHUT_WR) after sending. Default true, as the bytes are all we send. */
  readonly endAfterSend?: boolean;
  readonly deadlineMs?: number;
}

/** Sends `bytes` and resolves with all bytes received until the server closed. */
export function exchange(path: string, bytes: Buffer, options: ExchangeOptions = {}): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const socket = connect({ path });
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`server did not close within ${options.deadlineMs ?? EXCHANGE_DEADLINE_MS} ms`));
    }, options.deadlineMs ?? EXCHANGE_DEADLINE_MS);
    socket.on('connect', () => void send(socket, bytes, options));
    socket.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
    });
    socket.on('end', () => {
      clearTimeout(timer);
      socket.end();
      resolve(Buffer.concat(chunks));
    });
    socket.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
  });
}

async function send(socket: Socket, bytes: Buffer, options: ExchangeOptions): Promise<void> {
  const piece = options.pieceSize ?? bytes.length;
  for (let offset = 0; offset < bytes.length; offset += piece) {
    if (socket.destroyed) return;
    socket.write(bytes.subarray(offset, offset + piece));
    if (piece < bytes.length) await new Promise((resolve) => setTimeout(resolve, 1));
  }
  if (options.endAfterSend ?? false) socket.end();
}

/** The reply frame for a text, as the server should send it. */
export function replyFrame(text: string): Buffer {
  const body = Buffer.from(text, 'latin1');
  const frame = Buffer.alloc(2 + body.length);
  frame.writeUInt16BE(body.length, 0);
  body.copy(frame, 2);
  return frame;
}

/** Sends one request and returns the reply text (the frame must be complete and alone). */
export async function ask(path: string, ...fields: (string | Buffer)[]): Promise<string> {
  const bytes = await exchange(path, request(...fields));
  const length = bytes.readUInt16BE(0);
  if (bytes.length !== 2 + length) throw new Error(`malformed reply: ${bytes.toString('hex')}`);
  return bytes.subarray(2).toString('latin1');
}

/** Opens a connection and keeps it open, sending nothing. */
export function idleConnection(path: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ path });
    socket.on('connect', () => resolve(socket));
    socket.on('error', reject);
  });
}

/**
 * For a client whose connection a killed worker held (the fast path): the kernel drops the
 * connection with the process — EOF, or ECONNRESET / EPIPE when the request was not read yet.
 * Any of them counts as "closed" (an empty reply); any other error is the test's failure.
 */
export function droppedByKill(error: NodeJS.ErrnoException): Buffer {
  if (error.code === 'ECONNRESET' || error.code === 'EPIPE') return Buffer.alloc(0);
  throw error;
}
