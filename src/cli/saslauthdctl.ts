#!/usr/bin/env node
/**
 * `saslauthdctl`: the admin's command for a running saslauthd-ts (root only), over the
 * control socket in the run directory (`-m`, as saslauthd's), except `test`, which goes
 * through the daemon's own socket (`mux`) as any client does.
 *   status [--json]                    the SIGUSR1 line, plus each worker's state
 *   flush [--user L [--realm R] [--service S]]   the credential cache, or one user's entries
 *   test -u USER [-s SERVICE] [-r REALM] [-a IP;PORT]   password from the terminal or stdin
 *   metrics [--format openmetrics|prometheus]
 *   reload                             what SIGHUP does
 * Exit status: see EXIT below; messages on stderr start with `saslauthdctl: `.
 */
// First: shuts the Node runtime's own doors before any other module runs (it runs as root).
import '../runtime/harden-process.js';
import { Command, CommanderError, Option } from 'commander';
import { isAbsolute, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { DEFAULT_RUN_DIRECTORY } from '../config.js';
import { askDaemon, ControlClientError, type ControlReply, type ControlRequest } from '../control/protocol.js';
import type { StatusReport } from '../control/operations.js';
import { askSaslauthd, ClientError } from '../protocol/client.js';
import { PasswordInputError, readPassword } from './read-password.js';

/** Exit statuses a script can rely on. */
export const EXIT = {
  ok: 0,
  /** `test`: the daemon answered NO. */
  refused: 1,
  usage: 2,
  /** Nothing listens in the run directory. */
  noDaemon: 3,
  /** Not root: refused by the daemon (or by the socket's mode). */
  denied: 4,
  /** Anything else: no reply in time, cache off, shutting down, bad reply. */
  failed: 5,
} as const;

/** A control command is answered at once; this is for a daemon that hangs. */
const CONTROL_DEADLINE_MS = 10_000;
/** `test`: beyond the daemon's default --job-timeout (30 s), so the daemon's own NO arrives first. */
const TEST_DEADLINE_MS = 40_000;
const DEFAULT_SERVICE = 'imap';

class Exit extends Error {
  constructor(
    readonly code: number,
    message?: string,
  ) {
    super(message ?? '');
  }
}

async function control(runDirectory: string, request: ControlRequest): Promise<unknown> {
  let reply: ControlReply;
  try {
    reply = await askDaemon(runDirectory, request, CONTROL_DEADLINE_MS);
  } catch (error) {
    if (!(error instanceof ControlClientError)) throw error;
    throw new Exit(error.kind === 'no-daemon' ? EXIT.noDaemon : error.kind === 'denied' ? EXIT.denied : EXIT.failed, error.message);
  }
  if (!reply.ok) throw new Exit(reply.kind === 'denied' ? EXIT.denied : reply.kind === 'bad-request' ? EXIT.usage : EXIT.failed, reply.error);
  return reply.result;
}

function statusText(status: StatusReport): string {
  let text = `saslauthd-ts ${status.version}, pid ${status.pid}, mechanism ${status.mechanism}, up ${status.uptimeSeconds} s\n${status.line}\n`;
  text += `workers (${status.workerStates.length}):\n`;
  for (const worker of status.workerStates) {
    text += `  pid ${worker.pid}  ${worker.state.padEnd(8)}  jobs ${worker.jobsDone}  up ${worker.uptimeSeconds} s\n`;
  }
  return text;
}

async function test(runDirectory: string, options: { u: string; s?: string; r?: string; a?: string }): Promise<number> {
  let password: Buffer;
  try {
    password = await readPassword(`Password for ${options.u}: `);
  } catch (error) {
    if (error instanceof PasswordInputError) throw new Exit(EXIT.usage, error.message);
    throw error;
  }
  const fields = [Buffer.from(options.u), password, Buffer.from(options.s ?? DEFAULT_SERVICE), Buffer.from(options.r ?? '')];
  if (options.a !== undefined) fields.push(Buffer.from(options.a));
  const socketPath = join(runDirectory, 'mux');
  const started = performance.now();
  let reply: Buffer;
  try {
    reply = await askSaslauthd({ socketPath, fields, deadlineMs: TEST_DEADLINE_MS });
  } catch (error) {
    if (!(error instanceof ClientError)) throw error;
    if (error.step === 'connect' && /No such file|Connection refused/.test(error.detail)) {
      throw new Exit(EXIT.noDaemon, `no saslauthd running (${socketPath}: ${error.detail})`);
    }
    throw new Exit(EXIT.failed, `${socketPath}: ${error.step}: ${error.detail}`);
  } finally {
    password.fill(0);
  }
  const elapsed = performance.now() - started;
  const text = reply.toString('utf8');
  process.stdout.write(`${text} (${elapsed.toFixed(1)} ms)\n`);
  return text.startsWith('OK') ? EXIT.ok : EXIT.refused;
}

async function main(argv: readonly string[]): Promise<number> {
  let result: Promise<number> = Promise.resolve(EXIT.ok);
  const runDirectory = (command: Command): string => {
    const path = (command.optsWithGlobals() as { m?: string }).m ?? DEFAULT_RUN_DIRECTORY;
    if (!isAbsolute(path)) throw new Exit(EXIT.usage, '-m requires an absolute pathname');
    return path;
  };
  const print = (text: string): number => {
    process.stdout.write(text);
    return EXIT.ok;
  };
  const program = new Command('saslauthdctl')
    .description('control a running saslauthd-ts (root only)')
    .option('-m <path>', `saslauthd's run directory (default ${DEFAULT_RUN_DIRECTORY})`)
    .exitOverride()
    .showHelpAfterError(false)
    .configureOutput({ writeErr: (text) => process.stderr.write(text) });
  program
    .command('status')
    .description('the status line, and each worker\'s state')
    .option('--json', 'as JSON')
    .action(function (this: Command, options: { json?: boolean }) {
      const dir = runDirectory(this);
      result = control(dir, { command: 'status' }).then((status) =>
        print(options.json ? `${JSON.stringify(status, null, 2)}\n` : statusText(status as StatusReport)),
      );
    });
  program
    .command('flush')
    .description("empty the credential cache, or one user's entries")
    .option('--user <login>', 'only this login (as the client sends it)')
    .option('--realm <realm>', "only the user's entries for this realm")
    .option('--service <service>', "only the user's entries for this service")
    .action(function (this: Command, options: { user?: string; realm?: string; service?: string }) {
      const dir = runDirectory(this);
      if (options.user === undefined && (options.realm !== undefined || options.service !== undefined)) {
        throw new Exit(EXIT.usage, '--realm and --service need --user');
      }
      result = control(dir, { command: 'flush', ...options }).then((answer) => {
        const removed = (answer as { removed: number }).removed;
        return print(`${removed} ${removed === 1 ? 'entry' : 'entries'} removed${options.user === undefined ? '' : ` for ${options.user}`}\n`);
      });
    });
  program
    .command('test')
    .description('check a password end to end through the daemon (read from the terminal or stdin)')
    .requiredOption('-u <user>', 'login')
    .option('-s <service>', `service (default ${DEFAULT_SERVICE})`)
    .option('-r <realm>', 'realm')
    .option('-a <address>', "client address 'ip;port' (sent as the 5th field)")
    .action(function (this: Command, options: { u: string; s?: string; r?: string; a?: string }) {
      result = test(runDirectory(this), options);
    });
  program
    .command('metrics')
    .description('the metrics, in the OpenMetrics text format (or Prometheus 0.0.4)')
    .addOption(new Option('--format <format>', 'exposition format').choices(['openmetrics', 'prometheus']).default('openmetrics'))
    .action(function (this: Command, options: { format: 'openmetrics' | 'prometheus' }) {
      const dir = runDirectory(this);
      result = control(dir, { command: 'metrics', format: options.format }).then((text) => print(text as string));
    });
  program
    .command('reload')
    .description('what SIGHUP does: flush the credential cache, start fresh workers')
    .action(function (this: Command) {
      const dir = runDirectory(this);
      result = control(dir, { command: 'reload' }).then((answer) => print(`${(answer as { text: string }).text}\n`));
    });
  try {
    if (argv.length === 0) {
      program.outputHelp({ error: true });
      return EXIT.usage;
    }
    program.parse([...argv], { from: 'user' });
    return await result;
  } catch (error) {
    if (error instanceof CommanderError) return error.exitCode === 0 ? EXIT.ok : EXIT.usage;
    if (error instanceof Exit) {
      if (error.message) process.stderr.write(`saslauthdctl: ${error.message}\n`);
      return error.code;
    }
    throw error;
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`saslauthdctl: ${(error as Error).message}\n`);
    process.exit(EXIT.failed);
  },
);
