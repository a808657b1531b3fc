/**
 * The Unix socket `<run dir>/mux`. Mode 0777 like the original: access control is the
 * directory's job (Debian: root:sasl 0710). A socket file left by a crash is replaced; one
 * that still answers belongs to a live daemon and is left alone.
 */
import { chmodSync, lstatSync, unlinkSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { StartupError } from './run-directory.js';
import { ALREADY_RUNNING, socketAnswers } from './instance-lock.js';

/**
 * listen(2) backlog (the kernel caps it at net.core.somaxconn, 4096 on Debian 12). The
 * original uses 32. A burst of clients should queue, not fail: a non-blocking connect on a
 * Unix socket whose backlog is full fails at once with EAGAIN.
 */
const SOCKET_BACKLOG = 4096;
/** Unix socket paths are limited by sun_path (108 bytes with the terminating NUL). */
const MAX_SOCKET_PATH_BYTES = 107;

export async function listenOnSocket(
  path: string,
  onConnection: (socket: Socket) => void,
  onAcceptError: (error: NodeJS.ErrnoException) => void,
): Promise<Server> {
  if (Buffer.byteLength(path) > MAX_SOCKET_PATH_BYTES) {
    throw new StartupError([`could not bind to socket: ${path}`, `socket path longer than ${MAX_SOCKET_PATH_BYTES} bytes`], 1);
  }
  await removeStaleSocket(path);
  const server = createServer({ allowHalfOpen: true, pauseOnConnect: false }, onConnection);
  await new Promise<void>((resolve, reject) => {
    server.once('error', (error: NodeJS.ErrnoException) =>
      reject(new StartupError([`could not bind to socket: ${path}`, `bind: ${error.message}`], 1)),
    );
    server.listen({ path, backlog: SOCKET_BACKLOG }, () => resolve());
  });
  // After listen, errors are accept failures (EMFILE, ENFILE…): log them, keep serving.
  server.on('error', onAcceptError);
  try {
    chmodSync(path, 0o777);
  } catch (error) {
    server.close();
    throw new StartupError([`could not chmod socket: ${path}`, `chmod: ${(error as Error).message}`], 1);
  }
  return server;
}

async function removeStaleSocket(path: string): Promise<void> {
  let isSocket: boolean;
  try {
    isSocket = lstatSync(path).isSocket();
  } catch {
    return; // nothing there
  }
  if (!isSocket) return; // let bind report what is in the way, as the original does
  if (await socketAnswers(path)) throw new StartupError(ALREADY_RUNNING, 2);
  unlinkSync(path);
}
