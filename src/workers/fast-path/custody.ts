/**
 * Custody of the client a worker is checking on its fast path, so that a worker that dies
 * mid-check (a crashing PAM module, SIGKILL at the check's deadline) leaves its client an
 * answer, not just a closed connection.
 *
 * The primary makes a socket pair per worker and gives the worker both ends (fds 5 and 6),
 * keeping a copy of the receiving end. Before a check, the worker sends the client's
 * descriptor into the pair (SCM_RIGHTS): in flight, it is a reference the kernel holds for the
 * pair, not for the worker. After the check, before it writes any reply, the worker receives
 * it back and closes that copy. If the worker dies in between, its own descriptors close but
 * the one in flight does not: the primary receives it from its copy of the receiving end and
 * answers the client NO. One send, one receive and one close per check; the primary takes no
 * part in it until a worker exits.
 */
import { receiveWithDescriptors, sendWithDescriptor } from '../../native/descriptor-passing.js';
import { closeFd } from '../../native/posix-sockets.js';

/** The worker's ends of its custody pair (the fourth and fifth extra stdio entries). */
export const CUSTODY_IN_FD = 5;
export const CUSTODY_OUT_FD = 6;

const token = Buffer.from([1]);
const scratch = Buffer.alloc(16);

export class Custody {
  constructor(
    private readonly inFd = CUSTODY_IN_FD,
    private readonly outFd = CUSTODY_OUT_FD,
  ) {}

  /** Puts the client in custody for the length of a check; false if it could not be. */
  hold(clientFd: number): boolean {
    return sendWithDescriptor(this.inFd, token, clientFd) === 1;
  }

  /** Takes the client back out of custody (the check ended) and closes that copy. */
  release(): void {
    const { fds } = receiveWithDescriptors(this.outFd, scratch);
    for (const fd of fds) closeFd(fd);
  }
}
