/**
 * systemd socket activation (sd_listen_fds(3)): when saslauthd.socket owns `mux`, systemd
 * starts the daemon with the listening socket as fd 3 and LISTEN_PID/LISTEN_FDS saying so.
 * The daemon then accepts on that descriptor instead of binding its own, and leaves the
 * socket file alone when it stops: connections made while it restarts wait in the socket's
 * backlog for the next daemon.
 *
 * Only a stream socket listening on exactly the run directory's `mux` is taken; one bound
 * elsewhere is refused with the reason (the .socket unit and -m disagree), because serving
 * another path than systemd listens on would split the clients between two sockets.
 */
import { readFileSync, readlinkSync, statSync } from 'node:fs';
import { setCloseOnExec, setNonBlocking } from '../native/posix-sockets.js';

/** sd_listen_fds(3): passed descriptors start at 3. */
export const SD_LISTEN_FDS_START = 3;
const ACTIVATION_VARIABLES = ['LISTEN_PID', 'LISTEN_FDS', 'LISTEN_FDNAMES'] as const;
/** /proc/net/unix: the flag of a listening socket (__SO_ACCEPTCON) and the stream type. */
const SO_ACCEPTCON = 0x10000;
const SOCK_STREAM_TYPE = 1;

export interface InheritedSocket {
  readonly fd: number;
}

/** Where an inherited descriptor cannot be used: the reason, for the start failure. */
export class InheritedSocketError extends Error {}

export interface ActivationEnvironment {
  readonly env: NodeJS.ProcessEnv;
  readonly pid: number;
  /** The socket's inode ("socket:[N]" of /proc/self/fd/FD), or undefined if not a socket. */
  readonly socketInode: (fd: number) => number | undefined;
  /** The text of /proc/net/unix. */
  readonly unixSockets: () => string;
  /** Whether two paths name the same file (/run and /var/run are one directory). */
  readonly sameFile: (a: string, b: string) => boolean;
}

const procEnvironment: ActivationEnvironment = {
  env: process.env,
  pid: process.pid,
  socketInode: (fd) => {
    try {
      const match = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/self/fd/${fd}`));
      return match ? Number(match[1]) : undefined;
    } catch {
      return undefined;
    }
  },
  unixSockets: () => readFileSync('/proc/net/unix', 'latin1'),
  sameFile: (a, b) => {
    try {
      const [first, second] = [statSync(a), statSync(b)];
      return first.dev === second.dev && first.ino === second.ino;
    } catch {
      return false;
    }
  },
};

/**
 * The listening socket systemd passed for `socketPath`, or undefined when the daemon was not
 * socket-activated (no LISTEN_FDS for this process). Throws InheritedSocketError when one was
 * passed but is not a stream socket listening on `socketPath`. The activation variables are
 * removed either way: they concern this process only, not the workers it starts.
 */
export function inheritedListener(socketPath: string, environment: ActivationEnvironment = procEnvironment): InheritedSocket | undefined {
  const { env } = environment;
  const listenPid = env['LISTEN_PID'];
  const count = Number(env['LISTEN_FDS'] ?? '0');
  for (const name of ACTIVATION_VARIABLES) delete env[name];
  if (listenPid === undefined || Number(listenPid) !== environment.pid || !Number.isInteger(count) || count < 1) return undefined;
  if (count > 1) throw new InheritedSocketError(`systemd passed ${count} sockets; saslauthd.socket must have one ListenStream=`);
  const fd = SD_LISTEN_FDS_START;
  const inode = environment.socketInode(fd);
  if (inode === undefined) throw new InheritedSocketError(`descriptor ${fd} from systemd is not a socket`);
  const entry = unixSocketEntry(environment.unixSockets(), inode);
  if (!entry) throw new InheritedSocketError(`descriptor ${fd} from systemd is not a Unix socket`);
  if (entry.type !== SOCK_STREAM_TYPE || (entry.flags & SO_ACCEPTCON) === 0) {
    throw new InheritedSocketError(`descriptor ${fd} from systemd is not a listening stream socket`);
  }
  if (entry.path === '' || !environment.sameFile(entry.path, socketPath)) {
    throw new InheritedSocketError(`the socket from systemd is ${entry.path || 'unnamed'}, not ${socketPath} (saslauthd.socket's ListenStream= and -m must agree)`);
  }
  return { fd };
}

/** Makes an inherited descriptor fit for the accept loop: non-blocking, not passed to workers. */
export function adoptInheritedListener(socket: InheritedSocket): void {
  if (setNonBlocking(socket.fd) < 0 || setCloseOnExec(socket.fd) < 0) {
    throw new InheritedSocketError(`descriptor ${socket.fd} from systemd cannot be set up`);
  }
}

interface UnixSocketEntry {
  readonly flags: number;
  readonly type: number;
  readonly path: string;
}

/** The /proc/net/unix line of `inode`: "Num RefCount Protocol Flags Type St Inode [Path]". */
export function unixSocketEntry(table: string, inode: number): UnixSocketEntry | undefined {
  for (const line of table.split('\n').slice(1)) {
    const fields = line.trim().split(/\s+/);
    if (fields.length < 7 || Number(fields[6]) !== inode) continue;
    return { flags: Number.parseInt(fields[3]!, 16), type: Number.parseInt(fields[4]!, 16), path: fields.slice(7).join(' ') };
  }
  return undefined;
}
