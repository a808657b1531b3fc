/**
 * Entry point of a worker process. With `-n` ≥ 1 it answers clients itself on the fast path
 * (fast-path/fast-path.ts: it accepts on the listening socket the primary passes it, reads,
 * answers a success, hands everything else to the primary) and runs the jobs the primary
 * sends over the channel (fd 3, see channel.ts). With `-n 0` it only runs those jobs.
 * It exits at EOF on fd 3: when the primary stops or retires it, and when the primary dies,
 * so a crashed primary leaves no workers behind.
 *
 * Signals meant for the daemon (a terminal's Ctrl-C, a lost session, systemd's SIGTERM to the
 * whole group, `pkill -USR1 saslauthd`) are ignored here: the primary lets in-flight requests
 * finish, then closes the channel. A worker it must stop at once gets SIGKILL.
 */
// First: shuts the Node runtime's own doors (inspector on SIGUSR1, NODE_OPTIONS, default
// signal actions) before any other module runs.
import { takeOverSignals } from '../runtime/harden-process.js';
import { createLogger } from '../log/logger.js';
import { findMechanism } from '../mechanisms/registry.js';
import type { Mechanism } from '../mechanisms/types.js';
import { FrameType, encodeSimple } from './channel.js';
import { encodeFill, encodeHandoff } from './fast-path-frames.js';
import { JobBudget } from './fast-path/accept-gate.js';
import { runBlockingWorker } from './fast-path/blocking-worker.js';
import { runEventedWorker } from './fast-path/evented-worker.js';
import { FastPath } from './fast-path/fast-path.js';
import { WorkerChannel } from './fast-path/worker-channel.js';
import { parseWorkerSettings } from './worker-settings.js';
import { setCloseOnExec } from '../native/posix-sockets.js';
import { SHARED_REGION_FD, openSharedState } from '../shared/shared-state.js';

/** The channel to the primary (the fourth stdio entry of spawn()). */
const CHANNEL_FD = 3;

const settings = parseWorkerSettings(process.argv[2]);
const log = createLogger({ format: settings.logFormat, verbose: settings.verbose });

const ignore = (): void => {};
takeOverSignals({ SIGINT: ignore, SIGHUP: ignore, SIGTERM: ignore, SIGUSR1: ignore, SIGUSR2: ignore });

const channel = new WorkerChannel(CHANNEL_FD);
// Inherited descriptors lose close-on-exec in the child: a program a module runs (pam_exec,
// a helper) must not inherit the channel or the shared region (which holds the HMAC key).
setCloseOnExec(CHANNEL_FD);
if (settings.fastPath) setCloseOnExec(SHARED_REGION_FD);
const mechanism = startMechanism();
const parts = { channel, mechanism, fastPath: startFastPath(mechanism), budget: new JobBudget(settings.fastPath?.maxJobs ?? 0), log };
if (mechanism.blocking) runBlockingWorker(parts);
else runEventedWorker(parts);

/** The configured mechanism; exits after telling the primary why it cannot start. */
function startMechanism(): Mechanism {
  try {
    const factory = findMechanism(settings.mechanism);
    if (!factory) throw new Error(`unknown authentication mechanism: ${settings.mechanism}`);
    return factory.create({ mechOption: settings.mechOption, jobTimeoutMs: settings.jobTimeoutMs, log });
  } catch (error) {
    channel.send(encodeSimple(FrameType.failed, (error as Error).message));
    process.exit(1);
  }
}

function startFastPath(running: Mechanism): FastPath | undefined {
  const fast = settings.fastPath;
  if (!fast) return undefined;
  const shared = openSharedState(SHARED_REGION_FD, fast.shared);
  return new FastPath({
    mechanism: running,
    mechanismName: settings.mechanism,
    appendRealm: fast.appendRealm,
    cache: shared.cache,
    suspects: shared.suspects,
    digest: shared.digest,
    counters: shared.counters,
    roomForClients: () => shared.connections.current < fast.maxConnections,
    activity: {
      reading: (fd) => shared.activity.reading(fast.place, fd),
      job: () => shared.activity.job(fast.place),
      begin: (fd, subject, login) => shared.activity.begin(fast.place, fd, subject, login),
      replying: () => shared.activity.replying(fast.place),
      end: (checked) => shared.activity.end(fast.place, checked),
    },
    log,
    handOff: (fd, handoff) => {
      const frame = encodeHandoff(handoff);
      try {
        channel.sendWithDescriptor(frame, fd);
      } finally {
        frame.fill(0);
      }
    },
    fill: (fill) => channel.sendFill(encodeFill(fill)),
  });
}
