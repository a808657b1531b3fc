/**
 * Runs a daemon (ours, or Debian's C saslauthd as an oracle) as a real child process in
 * the foreground (`-d`), with a short private run directory, and collects everything it
 * logs so tests can assert on log lines and grep them for secrets.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { C_SASLAUTHD, SASLAUTHD_JS } from './paths.js';

/** How long a daemon may take to listen before the test fails. */
const START_DEADLINE_MS = 15_000;
/** How long a daemon may take to exit after SIGTERM before the test fails. */
const STOP_DEADLINE_MS = 15_000;

/** Every log line any daemon wrote during this test process (for the secrets check). */
export const allDaemonLogs: string[] = [];

export interface DaemonOptions {
  /** Extra arguments after `-d -a <mechanism> -m <dir>`. */
  readonly args?: readonly string[];
  /** The `-a` mechanism; `pam` when not given. */
  readonly mechanism?: string;
  readonly env?: NodeJS.ProcessEnv;
  /** Run the C saslauthd instead of ours. */
  readonly c?: boolean;
  /** Use this run directory instead of a fresh one. */
  readonly runDirectory?: string;
  /** A command prefix (for unshare wrappers): [command, ...args] runs the daemon's command line (ours or the C one). */
  readonly wrap?: readonly string[];
  /** Our saslauthd.js to run instead of the build's (a modified copy of dist/). */
  readonly script?: string;
}

export class Daemon {
  readonly runDirectory: string;
  readonly socket: string;
  readonly child: ChildProcess;
  private output = '';
  /** Date.now() at the arrival of each line of output (for rate checks). */
  readonly lineTimes: number[] = [];
  private exitInfo: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  private readonly exitWaiters: (() => void)[] = [];
  private readonly outputWaiters: (() => void)[] = [];

  private constructor(options: DaemonOptions) {
    this.runDirectory = options.runDirectory ?? mkdtempSync('/tmp/sts-');
    this.socket = join(this.runDirectory, 'mux');
    const daemonArgs = ['-d', '-a', options.mechanism ?? 'pam', '-m', this.runDirectory, ...(options.args ?? [])];
    const [command, ...args] = [...(options.wrap ?? []), ...(options.c ? [C_SASLAUTHD] : [process.execPath, options.script ?? SASLAUTHD_JS]), ...daemonArgs];
    // The C daemon in -d mode sends SIGTERM to its whole process group when it stops
    // (saslauthd.md §3.7): give it a group of its own so the test runner survives.
    this.child = spawn(command!, args, {
      env: options.env ?? process.env,
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: options.c === true,
    });
    const collect = (chunk: Buffer): void => {
      const text = chunk.toString('latin1');
      this.output += text;
      const now = Date.now();
      for (let index = text.indexOf('\n'); index !== -1; index = text.indexOf('\n', index + 1)) this.lineTimes.push(now);
      allDaemonLogs.push(text);
      for (const waiter of this.outputWaiters.splice(0)) waiter();
    };
    this.child.stdout!.on('data', collect);
    this.child.stderr!.on('data', collect);
    this.child.on('exit', (code, signal) => {
      this.exitInfo = { code, signal };
      for (const waiter of this.exitWaiters.splice(0)) waiter();
      for (const waiter of this.outputWaiters.splice(0)) waiter();
    });
  }

  /** Starts a daemon and resolves once it logged `listening on socket`. */
  static async start(options: DaemonOptions = {}): Promise<Daemon> {
    const daemon = new Daemon(options);
    await daemon.waitForLog(/listening on socket/, START_DEADLINE_MS);
    return daemon;
  }

  /** Starts a daemon without waiting for it (tests of its start-up window). */
  static launch(options: DaemonOptions = {}): Daemon {
    return new Daemon(options);
  }

  /** Starts a daemon that is expected to fail; resolves with its exit status and output. */
  static async startFailing(options: DaemonOptions = {}): Promise<{ code: number | null; output: string }> {
    const daemon = new Daemon(options);
    const info = await daemon.waitForExit(START_DEADLINE_MS);
    return { code: info.code, output: daemon.logs };
  }

  get logs(): string {
    return this.output;
  }

  get pid(): number {
    return this.child.pid!;
  }

  get exited(): boolean {
    return this.exitInfo !== undefined;
  }

  /** Waits until the collected output matches, or fails after `timeoutMs`. */
  async waitForLog(pattern: RegExp, timeoutMs = 5_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!pattern.test(this.output)) {
      if (this.exitInfo) throw new Error(`daemon exited (${JSON.stringify(this.exitInfo)}) before ${pattern}:\n${this.output}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no ${pattern} within ${timeoutMs} ms:\n${this.output}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.outputWaiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  waitForExit(timeoutMs = STOP_DEADLINE_MS): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    if (this.exitInfo) return Promise.resolve(this.exitInfo);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`daemon did not exit within ${timeoutMs} ms:\n${this.output}`)), timeoutMs);
      this.exitWaiters.push(() => {
        clearTimeout(timer);
        resolve(this.exitInfo!);
      });
    });
  }

  /** SIGTERM, then waits for the exit. */
  async stop(): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    if (!this.exitInfo) this.child.kill('SIGTERM');
    return this.waitForExit();
  }

  /** Stops the daemon if still running (SIGKILL after the deadline) and removes its run dir. */
  async dispose(): Promise<void> {
    if (!this.exitInfo) {
      this.child.kill('SIGTERM');
      await this.waitForExit().catch(() => {
        this.child.kill('SIGKILL');
      });
    }
    rmSync(this.runDirectory, { recursive: true, force: true });
  }
}
