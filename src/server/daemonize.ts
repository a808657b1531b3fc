/**
 * Detaching from the terminal (no `-d`/`-f`). Node cannot fork(), so the launcher starts a
 * detached copy of itself (new session, stdin/stdout on /dev/null) and waits on a pipe for
 * its verdict. Unlike the original, whose launcher exits 0 before the socket even exists,
 * ours exits 0 only once the daemon listens, and with the daemon's own status otherwise
 * (2 when another instance runs, 1 for any other failure), printing its reasons.
 */
import { spawn } from 'node:child_process';
import type { Readable } from 'node:stream';
import { closeSync, writeSync } from 'node:fs';
import { selfCommand } from '../native/self-exec.js';
import { takeOverSignals } from '../runtime/harden-process.js';

/** Environment variable telling the detached copy which fd reports its startup status. */
export const STATUS_FD_VARIABLE = 'SASLAUTHD_TS_STATUS_FD';
/** The launcher gives up on a daemon that neither listens nor fails within this time. */
const STARTUP_DEADLINE_MS = 60_000;
/** Status fd number in the detached copy (after stdin, stdout, stderr). */
const STATUS_FD = 3;

export async function launchDetached(script: string, argv: readonly string[]): Promise<number> {
  const self = selfCommand('saslauthd', script, argv, { [STATUS_FD_VARIABLE]: String(STATUS_FD) });
  const child = spawn(self.command, self.args, {
    detached: true,
    // Detached means detached, as the original: stdin, stdout and stderr are /dev/null and
    // the lines go to syslog (log/logger.ts). A daemon holding the launcher's stdout or
    // stderr would keep whoever ran `/etc/init.d/saslauthd start` and reads its output
    // (a configuration-management tool, a test) waiting until the daemon exits.
    stdio: ['ignore', 'ignore', 'ignore', 'pipe'],
    env: self.env,
  });
  // Ctrl-C or a stop while waiting is meant for the daemon being started: it gets it (and
  // stops once it has started). Other signals never kill the launcher.
  const forward = (signal: NodeJS.Signals) => (): void => void child.kill(signal);
  const ignore = (): void => {};
  takeOverSignals({ SIGTERM: forward('SIGTERM'), SIGINT: forward('SIGINT'), SIGHUP: ignore, SIGUSR1: ignore, SIGUSR2: ignore });
  const status = child.stdio[STATUS_FD] as Readable;
  let text = '';
  status.setEncoding('utf8');
  status.on('data', (chunk: string) => (text += chunk));
  const verdict = await new Promise<string>((resolve) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL'); // a daemon that may still come up must not outlive a failed start
      resolve('FAIL 1\tsaslauthd did not start within 60 s');
    }, STARTUP_DEADLINE_MS);
    status.on('close', () => {
      clearTimeout(timer);
      resolve(text);
    });
  });
  const [head = '', ...lines] = verdict.trim().split('\t');
  if (head === 'READY') {
    child.unref();
    return 0;
  }
  const code = Number.parseInt(head.replace(/^FAIL /, ''), 10);
  for (const line of lines.length > 0 ? lines : ['saslauthd exited during startup']) process.stderr.write(`${line}\n`);
  return Number.isInteger(code) && code > 0 ? code : 1;
}

/** In the detached copy: the channel to the waiting launcher, if there is one. */
export function startupReporter(): { ready(): void; failed(code: number, lines: readonly string[]): void } | undefined {
  const fd = process.env[STATUS_FD_VARIABLE];
  if (fd === undefined) return undefined;
  delete process.env[STATUS_FD_VARIABLE]; // workers must not inherit it
  // Synchronous: a failing daemon exits right after reporting, before any async write.
  const report = (text: string): void => {
    try {
      writeSync(Number(fd), text);
      closeSync(Number(fd));
    } catch {
      // the launcher is gone; nobody is waiting for the verdict
    }
  };
  return {
    ready: () => report('READY'),
    failed: (code, lines) => report(`FAIL ${code}\t${lines.join('\t')}`),
  };
}
