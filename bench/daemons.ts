/**
 * Starting and stopping the two daemons the way an admin runs them, with the same PAM world
 * and the same `-n`:
 *   - ours: `node dist/src/cli/saslauthd.js -f -a pam -n N -m DIR` (or another `-a`) (foreground without verbose
 *     logging, as its systemd unit runs it), or without `-f` (`detached`: the launcher starts
 *     the daemon and exits once it listens, as Debian's init script runs it);
 *   - Debian's C saslauthd: `saslauthd -a pam -n N -m DIR` (it detaches itself; `-d` would make it
 *     log every request).
 * Startup is timed from spawn to the first connection the socket accepts.
 */
import { spawn, spawnSync } from 'node:child_process';
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { createConnection } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isAlive, processTree, sleep } from './processes.js';

export type DaemonKind = 'ours' | 'c';

/** Debian's C daemon; while our package diverts /usr/sbin/saslauthd, the original is saslauthd.cyrus. */
const C_CANDIDATES = ['/usr/sbin/saslauthd.cyrus', '/usr/sbin/saslauthd'];
const OURS_JS = fileURLToPath(new URL('../src/cli/saslauthd.js', import.meta.url));
/** A daemon that has not listened by then has failed to start. */
const START_DEADLINE_MS = 20_000;
/** SIGTERM → gone, before SIGKILL. */
const STOP_DEADLINE_MS = 15_000;
/** Pause between connection attempts while waiting for the socket. */
const CONNECT_POLL_MS = 1;

/** The C saslauthd binary, checked to be the C one (its -v does not name us). */
export function cSaslauthd(): string {
  for (const candidate of C_CANDIDATES) {
    if (!existsSync(candidate)) continue;
    const version = spawnSync(candidate, ['-v'], { encoding: 'utf8' });
    const text = `${version.stdout}${version.stderr}`;
    if (/^saslauthd 2\./.test(text) && !text.includes('saslauthd-ts')) return candidate;
  }
  throw new Error(`Debian's C saslauthd not found (tried ${C_CANDIDATES.join(', ')}): apt-get install sasl2-bin`);
}

export interface DaemonSetup {
  readonly kind: DaemonKind;
  /** `-a`: default pam. */
  readonly mechanism?: string;
  /** `-n` */
  readonly workers: number;
  readonly extraArgs: readonly string[];
  /** Environment for this kind (pam_wrapper variables etc.). */
  readonly env: NodeJS.ProcessEnv;
  /** Command prefix (the private mount namespace of the pam_unix scenarios), or none. */
  readonly wrap?: readonly string[];
  /** Ours without `-f`: it detaches (the C daemon always does). */
  readonly detached?: boolean;
}

export class RunningDaemon {
  private constructor(
    readonly kind: DaemonKind,
    readonly pid: number,
    readonly runDirectory: string,
    readonly startupMs: number,
    private readonly logFile: string,
  ) {}

  get socket(): string {
    return join(this.runDirectory, 'mux');
  }

  /** The daemon's processes right now (the main one and its workers). */
  pids(): number[] {
    return processTree(this.pid);
  }

  static async start(setup: DaemonSetup): Promise<RunningDaemon> {
    const runDirectory = mkdtempSync('/tmp/sts-bench-');
    const socket = join(runDirectory, 'mux');
    const logFile = join(runDirectory, 'daemon.log');
    const args = ['-a', setup.mechanism ?? 'pam', '-n', String(setup.workers), '-m', runDirectory, ...setup.extraArgs];
    const detached = setup.kind === 'c' || setup.detached === true;
    const command =
      setup.kind === 'ours' ? [process.execPath, OURS_JS, ...(detached ? [] : ['-f']), ...args] : [cSaslauthd(), ...args];
    const [file, ...rest] = [...(setup.wrap ?? []), ...command];
    const log = openSync(logFile, 'a');
    const started = process.hrtime.bigint();
    // detached: the C daemon signals its whole process group when it stops.
    const child = spawn(file!, rest, { env: setup.env, stdio: ['ignore', log, log], detached: true });
    closeSync(log);
    let exited = false;
    child.on('exit', () => (exited = true));
    const deadline = Date.now() + START_DEADLINE_MS;
    while (!(await accepts(socket))) {
      // a detaching launcher exits once it has started the daemon; a foreground one must stay
      if ((exited && !detached) || Date.now() > deadline) {
        child.kill('SIGKILL');
        throw new Error(`${setup.kind} daemon did not start:\n${readFileSync(logFile, 'latin1')}`);
      }
      await sleep(CONNECT_POLL_MS);
    }
    const startupMs = Number(process.hrtime.bigint() - started) / 1e6;
    const pid = detached ? await pidFromFile(join(runDirectory, 'saslauthd.pid')) : child.pid!;
    return new RunningDaemon(setup.kind, pid, runDirectory, startupMs, logFile);
  }

  /** SIGTERM, wait for every process of the daemon to be gone (SIGKILL after a deadline). */
  async stop(): Promise<void> {
    const pids = this.pids();
    try {
      process.kill(this.pid, 'SIGTERM');
    } catch {
      // already gone
    }
    const deadline = Date.now() + STOP_DEADLINE_MS;
    while (pids.some(isAlive)) {
      if (Date.now() > deadline) for (const pid of pids) killQuietly(pid);
      await sleep(10);
    }
    rmSync(this.runDirectory, { recursive: true, force: true });
  }

  /** The daemon's log so far (for error reports). */
  log(): string {
    try {
      return readFileSync(this.logFile, 'latin1');
    } catch {
      return '';
    }
  }
}

function killQuietly(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // gone
  }
}

/** Does the socket accept a connection now? */
function accepts(path: string): Promise<boolean> {
  if (!existsSync(path)) return Promise.resolve(false);
  return new Promise((resolve) => {
    const socket = createConnection(path);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

async function pidFromFile(path: string): Promise<number> {
  for (let attempt = 0; attempt < 1000; attempt++) {
    try {
      const pid = Number.parseInt(readFileSync(path, 'latin1'), 10);
      if (pid > 0) return pid;
    } catch {
      // not written yet
    }
    await sleep(5);
  }
  throw new Error(`no pid in ${path}`);
}
