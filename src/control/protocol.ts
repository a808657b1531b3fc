/**
 * The control socket's protocol (`<run directory>/control`), between saslauthdctl and the
 * primary: one request, one reply, each a single line of JSON; then the primary closes.
 * Only root may use it: the socket is mode 0600 and the primary checks the peer's uid with
 * SO_PEERCRED (control/control-server.ts).
 */
import { connect } from 'node:net';
import { join } from 'node:path';
import { errnoText } from '../protocol/client.js';

export const CONTROL_SOCKET_NAME = 'control';
/** A request is a command and a few names: anything longer is not ours. */
export const MAX_REQUEST_BYTES = 4096;
/** A reply carries at most the metrics text (a few kB per service label). */
export const MAX_REPLY_BYTES = 4 * 1024 * 1024;

export function controlSocketPath(runDirectory: string): string {
  return join(runDirectory, CONTROL_SOCKET_NAME);
}

export type ControlRequest =
  | { readonly command: 'status' }
  | { readonly command: 'metrics'; readonly format: 'openmetrics' | 'prometheus' }
  | { readonly command: 'reload' }
  | { readonly command: 'flush'; readonly user?: string; readonly realm?: string; readonly service?: string };

/** `error`'s kind: `denied` (not root), `bad-request`, `unavailable` (e.g. shutting down). */
export type ControlErrorKind = 'denied' | 'bad-request' | 'unavailable';

export type ControlReply =
  | { readonly ok: true; readonly result: unknown }
  | { readonly ok: false; readonly kind: ControlErrorKind; readonly error: string };

/** Parses one request line; undefined when it is not a valid request. */
export function parseControlRequest(line: string): ControlRequest | undefined {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    return undefined;
  }
  if (typeof value !== 'object' || value === null) return undefined;
  const request = value as Record<string, unknown>;
  const optionalString = (name: string): boolean => request[name] === undefined || typeof request[name] === 'string';
  switch (request['command']) {
    case 'status':
    case 'reload':
      return { command: request['command'] };
    case 'metrics':
      return { command: 'metrics', format: request['format'] === 'prometheus' ? 'prometheus' : 'openmetrics' };
    case 'flush':
      if (!optionalString('user') || !optionalString('realm') || !optionalString('service')) return undefined;
      if (request['user'] === undefined && (request['realm'] !== undefined || request['service'] !== undefined)) return undefined;
      return {
        command: 'flush',
        ...(typeof request['user'] === 'string' ? { user: request['user'] } : {}),
        ...(typeof request['realm'] === 'string' ? { realm: request['realm'] } : {}),
        ...(typeof request['service'] === 'string' ? { service: request['service'] } : {}),
      };
    default:
      return undefined;
  }
}

/** Why the client got no answer: `no-daemon` (nothing listens), `denied` (EACCES), `failed`. */
export class ControlClientError extends Error {
  constructor(
    readonly kind: 'no-daemon' | 'denied' | 'failed',
    message: string,
  ) {
    super(message);
  }
}

/** Sends one request to the primary and resolves with its reply. */
export function askDaemon(runDirectory: string, request: ControlRequest, deadlineMs: number): Promise<ControlReply> {
  const path = controlSocketPath(runDirectory);
  return new Promise((resolve, reject) => {
    const socket = connect({ path });
    const chunks: Buffer[] = [];
    let size = 0;
    const fail = (error: ControlClientError): void => {
      clearTimeout(timer);
      socket.destroy();
      reject(error);
    };
    const timer = setTimeout(() => fail(new ControlClientError('failed', `no reply from the daemon within ${deadlineMs} ms`)), deadlineMs);
    socket.on('connect', () => socket.write(`${JSON.stringify(request)}\n`));
    socket.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      size += chunk.length;
      if (size > MAX_REPLY_BYTES) fail(new ControlClientError('failed', 'reply from the daemon too long'));
    });
    socket.on('end', () => {
      clearTimeout(timer);
      socket.destroy();
      try {
        resolve(JSON.parse(Buffer.concat(chunks).toString('utf8')) as ControlReply);
      } catch {
        reject(new ControlClientError('failed', 'the daemon closed the control connection without a valid reply'));
      }
    });
    socket.on('error', (error: NodeJS.ErrnoException) => {
      const detail = `${path}: ${errnoText(error)}`;
      if (error.code === 'ENOENT' || error.code === 'ECONNREFUSED') fail(new ControlClientError('no-daemon', `no saslauthd running (${detail})`));
      else if (error.code === 'EACCES' || error.code === 'EPERM') fail(new ControlClientError('denied', `permission denied: only root may use ${path}`));
      else fail(new ControlClientError('failed', detail));
    });
  });
}
