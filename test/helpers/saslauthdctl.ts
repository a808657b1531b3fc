/** Runs the compiled saslauthdctl as a child process (optionally as another user). */
import { spawn } from 'node:child_process';
import { SASLAUTHDCTL_JS } from './paths.js';

/** A command is answered at once; this only stops a hung test. */
const CTL_DEADLINE_MS = 30_000;

export interface CtlResult {
  readonly status: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

export interface CtlOptions {
  /** Written to its standard input, which is then closed. */
  readonly input?: string;
  /** Run as this uid and gid (setpriv), with no supplementary groups. */
  readonly asUser?: { readonly uid: number; readonly gid: number };
}

export function saslauthdctl(args: readonly string[], options: CtlOptions = {}): Promise<CtlResult> {
  const command = [process.execPath, SASLAUTHDCTL_JS, ...args];
  const [program, ...rest] = options.asUser
    ? ['setpriv', `--reuid=${options.asUser.uid}`, `--regid=${options.asUser.gid}`, '--clear-groups', ...command]
    : command;
  return new Promise((resolve, reject) => {
    const child = spawn(program!, rest, { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString('utf8')));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`saslauthdctl ${args.join(' ')} did not finish within ${CTL_DEADLINE_MS} ms`));
    }, CTL_DEADLINE_MS);
    child.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.on('close', (status) => {
      clearTimeout(timer);
      resolve({ status, stdout, stderr });
    });
    child.stdin.end(options.input ?? '');
  });
}
