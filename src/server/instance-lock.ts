/**
 * One daemon per run directory. The lock is proper-lockfile's directory lock; liveness of a
 * holder is decided by the pid it recorded and by the socket, not by the lock's age, so a
 * daemon restarted right after a crash (systemd Restart=on-failure) starts at once, and a
 * running daemon never dies because its lock could not be refreshed.
 */
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { connect } from 'node:net';
import lockfile from 'proper-lockfile';
import type { Logger } from '../log/logger.js';
import type { RunFiles } from './run-directory.js';
import { StartupError } from './run-directory.js';

/** Pause before looking again at a holder that seems gone (it may be writing its pid file). */
const HOLDER_RECHECK_MS = 100;
/** How long a probe of the existing socket may take before it counts as dead. */
const SOCKET_PROBE_MS = 500;

export const ALREADY_RUNNING = ['Cannot start saslauthd', 'Another instance of saslauthd is currently running'];

export interface InstanceLock {
  release(): void;
}

export async function acquireInstanceLock(files: RunFiles, log: Logger): Promise<InstanceLock> {
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const release = await lockfile.lock(files.pidFile, {
        lockfilePath: files.lock,
        realpath: false,
        stale: 10_000,
        onCompromised: (error) => log.error(`instance lock could not be refreshed: ${error.message}`),
      });
      // The pid file names the holder. (Nothing may be written inside the lock directory:
      // proper-lockfile would see its mtime change and call the lock compromised.)
      writeFileSync(files.pidFile, `${process.pid}\n`, { mode: 0o600 });
      return {
        release: () => {
          rmSync(files.pidFile, { force: true });
          release().catch(() => rmSync(files.lock, { recursive: true, force: true }));
        },
      };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ELOCKED') {
        throw new StartupError([`could not lock pid lock file: ${(error as Error).message}`], 1);
      }
      if (await holderIsAlive(files)) throw new StartupError(ALREADY_RUNNING, 2);
      log.info(`removing stale lock left by a daemon that is gone: ${files.lock}`);
      rmSync(files.lock, { recursive: true, force: true });
    }
  }
  throw new StartupError(ALREADY_RUNNING, 2);
}

/**
 * Is another process holding this run directory? Its pid file names it; a daemon that took
 * the lock an instant ago writes that file right after, so a dead or missing pid is looked
 * at twice before the lock counts as stale.
 */
function socketActivated(): boolean {
  return process.env['LISTEN_PID'] === String(process.pid);
}

async function holderIsAlive(files: RunFiles): Promise<boolean> {
  for (let look = 0; look < 2; look++) {
    if (look > 0) await sleep(HOLDER_RECHECK_MS);
    const pid = readPid(files.pidFile);
    if (pid !== undefined && pid !== process.pid && processExists(pid) && runsSaslauthd(pid)) return true;
    // A socket systemd passed us answers for systemd (socket activation), not for a holder.
    if (!socketActivated() && (await socketAnswers(files.socket))) return true;
  }
  return false;
}

function readPid(path: string): number | undefined {
  try {
    const pid = Number.parseInt(readFileSync(path, 'utf8'), 10);
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

function processExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Guards against a recycled pid: the holder's command line must name saslauthd. */
function runsSaslauthd(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'latin1').includes('saslauthd');
  } catch {
    return true; // cannot tell (no /proc): assume it is the holder
  }
}

/** Whether something accepts connections on the socket path (another daemon, ours or C). */
export function socketAnswers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = connect({ path });
    const done = (alive: boolean): void => {
      clearTimeout(timer);
      probe.destroy();
      resolve(alive);
    };
    const timer = setTimeout(() => done(false), SOCKET_PROBE_MS);
    probe.once('connect', () => done(true));
    probe.once('error', () => done(false));
  });
}
