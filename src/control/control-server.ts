/**
 * The primary's end of the control socket: a Unix socket in the run directory, mode 0600,
 * served with node:net (a few requests a day, not a hot path). Every connection's peer is
 * checked with SO_PEERCRED: anyone but root is refused, even if the file's mode or the run
 * directory's were opened up. Bounded: few connections at once, one short request line
 * each, a deadline to send it.
 */
import { chmodSync, lstatSync, unlinkSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { printable, type Logger } from '../log/logger.js';
import { peerCredentials } from '../native/peer-credentials.js';
import { StartupError } from '../server/run-directory.js';
import type { Operations } from './operations.js';
import { MAX_REQUEST_BYTES, parseControlRequest, type ControlReply, type ControlRequest } from './protocol.js';

/** saslauthdctl sends its request at once; a connection silent this long is closed. */
const REQUEST_DEADLINE_MS = 5_000;
/** Control connections at once: an admin's commands, a monitoring check or two. */
const MAX_CONTROL_CONNECTIONS = 8;
const ROOT_UID = 0;

export interface ControlServer {
  /** Stops listening and removes the socket file. */
  close(): void;
}

export async function listenForControl(path: string, operations: Operations, log: Logger): Promise<ControlServer> {
  removeLeftover(path);
  const server = createServer({ allowHalfOpen: false }, (socket) => serve(socket, operations, log));
  server.maxConnections = MAX_CONTROL_CONNECTIONS;
  await new Promise<void>((resolve, reject) => {
    server.once('error', (error) => reject(new StartupError([`could not bind to control socket: ${path}`, error.message], 1)));
    server.listen({ path, exclusive: true }, () => resolve());
  });
  server.on('error', (error) => log.error(`control socket: ${error.message}`));
  chmodSync(path, 0o600);
  const inode = lstatSync(path).ino;
  return {
    close(): void {
      server.close();
      try {
        if (lstatSync(path).ino === inode) unlinkSync(path);
      } catch {
        // already gone
      }
    },
  };
}

/** A socket left by a daemon that did not stop cleanly (the instance lock says none runs now). */
function removeLeftover(path: string): void {
  try {
    if (lstatSync(path).isSocket()) unlinkSync(path);
  } catch {
    // nothing there
  }
}

function serve(socket: Socket, operations: Operations, log: Logger): void {
  socket.setTimeout(REQUEST_DEADLINE_MS, () => socket.destroy());
  socket.on('error', () => socket.destroy());
  const reply = (answer: ControlReply): void => {
    socket.end(`${JSON.stringify(answer)}\n`);
  };
  const fd = (socket as unknown as { _handle?: { fd?: number } })._handle?.fd;
  let uid: number;
  let pid: number;
  try {
    if (typeof fd !== 'number' || fd < 0) throw new Error('no descriptor for the control connection');
    ({ uid, pid } = peerCredentials(fd));
  } catch (error) {
    log.error(`control socket: cannot tell who connected: ${(error as Error).message}`);
    socket.destroy();
    return;
  }
  if (uid !== ROOT_UID) {
    log.error(`control socket: refused uid ${uid} (pid ${pid}): only root may control the daemon`);
    reply({ ok: false, kind: 'denied', error: 'permission denied: only root may control saslauthd' });
    return;
  }
  let received = Buffer.alloc(0);
  socket.on('data', (chunk: Buffer) => {
    received = Buffer.concat([received, chunk]);
    const end = received.indexOf(0x0a);
    if (end === -1 && received.length <= MAX_REQUEST_BYTES) return;
    socket.removeAllListeners('data');
    const request = end === -1 ? undefined : parseControlRequest(received.subarray(0, end).toString('utf8'));
    if (!request) {
      log.error('control socket: bad request');
      reply({ ok: false, kind: 'bad-request', error: 'bad request' });
      return;
    }
    reply(answer(request, operations, log));
  });
}

function answer(request: ControlRequest, operations: Operations, log: Logger): ControlReply {
  switch (request.command) {
    case 'status':
      return { ok: true, result: operations.status() };
    case 'metrics':
      return { ok: true, result: operations.metricsText(request.format) };
    case 'reload': {
      const result = operations.reload('reload requested by saslauthdctl');
      return result ? { ok: true, result } : { ok: false, kind: 'unavailable', error: 'the daemon is shutting down' };
    }
    case 'flush': {
      const filter =
        request.user === undefined
          ? undefined
          : {
              user: Buffer.from(request.user),
              realm: request.realm === undefined ? undefined : Buffer.from(request.realm),
              service: request.service === undefined ? undefined : Buffer.from(request.service),
            };
      const removed = operations.flush(filter);
      if (removed === null) return { ok: false, kind: 'unavailable', error: 'the credential cache is off (saslauthd runs without -c)' };
      const whose = filter ? ` for user ${printable(filter.user)}` : '';
      log.info(`credential cache flush requested by saslauthdctl${whose}: ${removed} entries removed`);
      return { ok: true, result: { removed } };
    }
  }
}
