/**
 * How accept4(2) failures are told apart, by every process that accepts (the primary's
 * listener, and workers on the fast path): some concern one connection only and the next
 * accept may succeed; the others (EMFILE, ENFILE, ENOBUFS, ENOMEM) leave the socket readable,
 * so watching it on would spin — the caller stops watching it for ACCEPT_PAUSE_MS.
 */
import { constants } from 'node:os';

/** Out of descriptors or memory: accepting pauses this long (the backlog holds the clients). */
export const ACCEPT_PAUSE_MS = 100;

const TRANSIENT_ACCEPT_ERRORS = new Set([constants.errno.ECONNABORTED, constants.errno.EINTR, constants.errno.EPROTO]);

/** `errno` (positive) concerns one connection only: accept again at once. */
export function isTransientAcceptError(errno: number): boolean {
  return TRANSIENT_ACCEPT_ERRORS.has(errno);
}
