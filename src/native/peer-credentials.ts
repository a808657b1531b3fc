/**
 * Who is at the other end of a connected Unix socket: getsockopt(SO_PEERCRED), through koffi
 * and the shared libc handle. The kernel fills it in at connect(2) time, so a client cannot
 * claim another uid, whatever the socket file's mode says.
 */
import { lastErrno, libcHandle } from './libc.js';

const SOL_SOCKET = 1;
const SO_PEERCRED = 17;
/** struct ucred { pid_t pid; uid_t uid; gid_t gid; }: three 32-bit fields. */
const UCRED_BYTES = 12;

export interface PeerCredentials {
  readonly pid: number;
  readonly uid: number;
  readonly gid: number;
}

type GetSockOpt = (fd: number, level: number, name: number, value: Buffer, length: Buffer) => number;
let getsockopt: GetSockOpt | undefined;

/** The peer's pid, uid and gid; throws with the errno when the call fails. */
export function peerCredentials(fd: number): PeerCredentials {
  getsockopt ??= libcHandle().func('getsockopt', 'int', ['int', 'int', 'int', 'void *', 'void *']) as GetSockOpt;
  const value = Buffer.alloc(UCRED_BYTES);
  const length = Buffer.alloc(4);
  length.writeUInt32LE(UCRED_BYTES, 0);
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, value, length) !== 0) {
    throw new Error(`getsockopt(SO_PEERCRED) failed: errno ${lastErrno()}`);
  }
  if (length.readUInt32LE(0) < UCRED_BYTES) throw new Error('getsockopt(SO_PEERCRED) returned a short struct ucred');
  return { pid: value.readInt32LE(0), uid: value.readUInt32LE(4), gid: value.readUInt32LE(8) };
}
