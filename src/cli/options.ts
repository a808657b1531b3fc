/**
 * saslauthd's command line, parsed like its getopt string `a:cdhO:lm:n:rs:t:vV` (plus `-f`,
 * from the unreleased upstream master, and long options for our own deadlines and limits).
 * commander gives POSIX getopt behaviour here: `-n5`, `-dc`, `-m/path`, any order; stray
 * words are ignored as GNU getopt's permutation does. Validation messages are the original's.
 */
import { Command, CommanderError, Option } from 'commander';
import { isAbsolute } from 'node:path';
import {
  DEFAULT_CACHE_TIMEOUT_SECONDS,
  DEFAULT_DEADLINES,
  DEFAULT_LIMITS,
  DEFAULT_RUN_DIRECTORY,
  DEFAULT_WORKERS,
  type Config,
} from '../config.js';
import { availableMechanismNames } from '../mechanisms/registry.js';
import { parseListenAddress } from '../metrics/listen-address.js';
import { packageVersion } from '../version.js';

export type ParsedCommandLine =
  | { readonly action: 'run'; readonly config: Config }
  | { readonly action: 'print'; readonly text: string; readonly exitCode: number };

/**
 * Upper bound of `-n`: each worker is a Node process (tens of MB); a typo like `-n 5000`
 * should be an error, not a machine out of memory.
 */
const MAX_WORKERS = 256;

/** An option value the original rejects with a fatal error (exit 1). */
class FatalOptionError extends Error {}
/** A command line the original answers with its usage text. */
class UsageError extends Error {}

/** The original's version, whose behaviour we reproduce; our own release follows it. */
const COMPATIBLE_VERSION = '2.1.28';

/** `-v`: the original's two lines and blank line; line 1 also names this implementation. */
export function versionText(): string {
  return `saslauthd ${COMPATIBLE_VERSION} (saslauthd-ts ${packageVersion()})\nauthentication mechanisms: ${availableMechanismNames().join(' ')}\n\n`;
}


export function usageText(): string {
  return `usage: saslauthd [options]

option information:
  -a <authmech>  Selects the authentication mechanism to use.
  -c             Enable credential caching.
  -d             Debugging (don't detach from tty, implies -V)
  -r             Combine the realm with the login before passing to authentication mechanism
                 Ex. login: "foo" realm: "bar" will get passed as login: "foo@bar"
                 The realm name is passed untouched.
  -O <option>    Optional argument to pass to the authentication
                 mechanism.
  -l             Disable accept() locking. Increases performance, but
                 may not be compatible with some operating systems.
  -m <path>      Alternate path for the saslauthd working directory,
                 must be absolute.
  -n <procs>     Number of worker processes to create.
  -s <kilobytes> Size of the credential cache (in kilobytes)
  -t <seconds>   Timeout for items in the credential cache (in seconds)
  -v             Display version information and available mechs
  -V             Enable verbose logging
  -h             Display this message.

${versionText()}`;
}

/** `--help`: the original's text, then what saslauthd-ts adds. */
export function extendedUsageText(): string {
  return `${usageText()}saslauthd-ts additions:
  -f                          Stay in the foreground without verbose logging (for systemd).
  --read-timeout <ms>         Deadline for a client to send its request (default ${DEFAULT_DEADLINES.readTimeoutMs}).
  --drain-timeout <ms>        Deadline for a client to close after the reply (default ${DEFAULT_DEADLINES.drainTimeoutMs}).
  --job-timeout <ms>          Deadline for the mechanism's answer (default ${DEFAULT_DEADLINES.jobTimeoutMs}).
  --shutdown-timeout <ms>     Time in-flight requests get on SIGTERM (default ${DEFAULT_DEADLINES.shutdownTimeoutMs}).
  --max-connections <n>       Open client connections (default ${DEFAULT_LIMITS.maxConnections}).
  --max-queue <n>             Requests waiting for a worker (default ${DEFAULT_LIMITS.maxQueuedJobs}).
  --max-jobs-per-worker <n>   Recycle a worker after n requests, 0 = never (default ${DEFAULT_LIMITS.maxJobsPerWorker}).
  --max-suspect-checks <n>    Checks for logins that failed in the last 10 minutes that may
                              run at once, daemon-wide, failure delays included (default
                              ${DEFAULT_LIMITS.maxSuspectChecks}: the guessing rate of the original's -n 5).
  --idle-workers <n>          Workers kept started without work; the other -n workers start
                              when requests wait (default: all, as the original).
  --worker-idle-timeout <ms>  How long such an extra worker may go without a request before
                              it stops (default ${DEFAULT_DEADLINES.workerIdleTimeoutMs}).
  --log-format <text|json>    json: one JSON object per line on stderr (pino), for log
                              pipelines; syslog keeps the original's text (default text).
  --metrics-listen <[host:]port>
                              Serve OpenMetrics/Prometheus metrics at http://host:port/metrics
                              (host: 127.0.0.1 unless given; off unless given).
`;
}

function integer(text: string): number | undefined {
  return /^[+-]?\d+$/.test(text.trim()) ? Number.parseInt(text, 10) : undefined;
}

/** Node's timers cap at 2^31-1 ms (about 24.8 days); a larger value would fire at once. */
const MAX_TIMER_MS = 2 ** 31 - 1;

function positiveMs(name: string) {
  return (text: string): number => {
    const value = integer(text);
    if (value === undefined || value <= 0 || value > MAX_TIMER_MS) {
      throw new FatalOptionError(`${name} must be a number of milliseconds from 1 to ${MAX_TIMER_MS}`);
    }
    return value;
  };
}

function count(name: string, allowZero: boolean) {
  return (text: string): number => {
    const value = integer(text);
    if (value === undefined || value < (allowZero ? 0 : 1)) throw new FatalOptionError(`invalid ${name}: ${text}`);
    return value;
  };
}

function buildProgram(): Command {
  return new Command('saslauthd')
    .helpOption(false)
    .allowExcessArguments(true)
    .exitOverride()
    .configureOutput({ writeErr: () => {}, writeOut: () => {} })
    .addOption(
      new Option('-a <authmech>').argParser((value: string, previous: string | undefined) => {
        if (previous !== undefined) throw new UsageError('-a given twice');
        return value;
      }),
    )
    .option('-c')
    .option('-d')
    .option('-f')
    .option('-h')
    .option('--help')
    .option('-O <option>')
    .option('-l')
    .option('-m <path>', '', (value: string) => {
      if (!isAbsolute(value)) throw new FatalOptionError('-m requires an absolute pathname');
      return value;
    })
    .option('-n <procs>', '', (value: string) => {
      const procs = integer(value);
      if (procs === undefined || procs < 0) throw new FatalOptionError('invalid number of worker processes defined');
      if (procs > MAX_WORKERS) throw new FatalOptionError(`invalid number of worker processes defined: at most ${MAX_WORKERS}`);
      return procs;
    })
    .option('-r')
    .option('-s <kilobytes>', '', (value: string) => {
      const size = integer(value);
      if (size === undefined || size <= 0) throw new FatalOptionError('cache size must be positive and non zero');
      return size;
    })
    .option('-t <seconds>', '', (value: string) => {
      const seconds = integer(value);
      if (seconds === undefined || seconds <= 0) throw new FatalOptionError('cache timeout must be positive');
      return seconds;
    })
    .option('-v')
    .option('-V')
    .option('--read-timeout <ms>', '', positiveMs('--read-timeout'))
    .option('--drain-timeout <ms>', '', positiveMs('--drain-timeout'))
    .option('--job-timeout <ms>', '', positiveMs('--job-timeout'))
    .option('--shutdown-timeout <ms>', '', positiveMs('--shutdown-timeout'))
    .option('--max-connections <n>', '', count('--max-connections', false))
    .option('--max-queue <n>', '', count('--max-queue', false))
    .option('--max-jobs-per-worker <n>', '', count('--max-jobs-per-worker', true))
    .option('--max-suspect-checks <n>', '', count('--max-suspect-checks', false))
    .option('--idle-workers <n>', '', count('--idle-workers', false))
    .option('--worker-idle-timeout <ms>', '', positiveMs('--worker-idle-timeout'))
    .option('--log-format <format>', '', (value: string) => {
      if (value !== 'text' && value !== 'json') throw new FatalOptionError(`--log-format must be text or json, not ${value}`);
      return value;
    })
    .option('--metrics-listen <address>', '', (value: string) => {
      const address = parseListenAddress(value);
      if (!address) throw new FatalOptionError(`--metrics-listen must be [host:]port, not ${value}`);
      return address;
    });
}

interface RawOptions {
  a?: string;
  c?: boolean;
  d?: boolean;
  f?: boolean;
  h?: boolean;
  help?: boolean;
  O?: string;
  l?: boolean;
  m?: string;
  n?: number;
  r?: boolean;
  s?: number;
  t?: number;
  v?: boolean;
  V?: boolean;
  readTimeout?: number;
  drainTimeout?: number;
  jobTimeout?: number;
  shutdownTimeout?: number;
  maxConnections?: number;
  maxQueue?: number;
  maxJobsPerWorker?: number;
  maxSuspectChecks?: number;
  idleWorkers?: number;
  workerIdleTimeout?: number;
  logFormat?: 'text' | 'json';
  metricsListen?: { host: string; port: number };
}

/** Exit status of a command line the daemon cannot run with (the original exits 0; see README). */
export const USAGE_EXIT_CODE = 1;

/**
 * Parses argv (without node and script). Never exits: returns what to print and the exit
 * status, or the configuration to run with.
 */
export function parseCommandLine(argv: readonly string[]): ParsedCommandLine {
  const program = buildProgram();
  try {
    program.parse([...argv], { from: 'user' });
  } catch (error) {
    if (error instanceof FatalOptionError) return { action: 'print', text: `saslauthd[${process.pid}] :${error.message}\n`, exitCode: 1 };
    if (error instanceof UsageError) return { action: 'print', text: usageText(), exitCode: USAGE_EXIT_CODE };
    if (error instanceof CommanderError) return { action: 'print', text: `${getoptMessage(error)}\n${usageText()}`, exitCode: USAGE_EXIT_CODE };
    throw error;
  }
  const raw = program.opts<RawOptions>();
  if (raw.help) return { action: 'print', text: extendedUsageText(), exitCode: 0 };
  if (raw.h) return { action: 'print', text: usageText(), exitCode: 0 };
  if (raw.v) return { action: 'print', text: versionText(), exitCode: 0 };
  if (raw.a === undefined) {
    return {
      action: 'print',
      text: `saslauthd[${process.pid}] :no authentication mechanism specified\n${usageText()}`,
      exitCode: USAGE_EXIT_CODE,
    };
  }
  const workers = raw.n ?? DEFAULT_WORKERS;
  const config: Config = {
    mechanism: raw.a.toLowerCase(),
    mechOption: raw.O,
    runDirectory: raw.m ?? DEFAULT_RUN_DIRECTORY,
    workers,
    idleWorkers: Math.min(raw.idleWorkers ?? workers, workers),
    appendRealm: raw.r === true,
    foreground: raw.d === true || raw.f === true,
    debugFormat: raw.d === true,
    verbose: raw.d === true || raw.V === true,
    acceptLockDisabled: raw.l === true,
    cache: { enabled: raw.c === true, sizeKb: raw.s, timeoutSeconds: raw.t ?? DEFAULT_CACHE_TIMEOUT_SECONDS },
    deadlines: {
      readTimeoutMs: raw.readTimeout ?? DEFAULT_DEADLINES.readTimeoutMs,
      drainTimeoutMs: raw.drainTimeout ?? DEFAULT_DEADLINES.drainTimeoutMs,
      jobTimeoutMs: raw.jobTimeout ?? DEFAULT_DEADLINES.jobTimeoutMs,
      shutdownTimeoutMs: raw.shutdownTimeout ?? DEFAULT_DEADLINES.shutdownTimeoutMs,
      workerIdleTimeoutMs: raw.workerIdleTimeout ?? DEFAULT_DEADLINES.workerIdleTimeoutMs,
    },
    limits: {
      maxConnections: raw.maxConnections ?? DEFAULT_LIMITS.maxConnections,
      maxQueuedJobs: raw.maxQueue ?? DEFAULT_LIMITS.maxQueuedJobs,
      maxJobsPerWorker: raw.maxJobsPerWorker ?? DEFAULT_LIMITS.maxJobsPerWorker,
      maxSuspectChecks: raw.maxSuspectChecks ?? DEFAULT_LIMITS.maxSuspectChecks,
      maxPerRequestWorkers: DEFAULT_LIMITS.maxPerRequestWorkers,
    },
    logFormat: raw.logFormat ?? 'text',
    metricsListen: raw.metricsListen,
  };
  return { action: 'run', config: Object.freeze(config) };
}

/** commander's complaint rephrased the way glibc getopt prints it. */
function getoptMessage(error: CommanderError): string {
  const flag = /'(-[^' ]+)/.exec(error.message)?.[1] ?? '';
  const letter = flag.startsWith('--') ? flag : flag.slice(1);
  if (error.code === 'commander.unknownOption') {
    return flag.startsWith('--') ? `saslauthd: unrecognized option '${flag}'` : `saslauthd: invalid option -- '${letter}'`;
  }
  if (error.code === 'commander.optionMissingArgument') {
    return flag.startsWith('--')
      ? `saslauthd: option '${flag}' requires an argument`
      : `saslauthd: option requires an argument -- '${letter}'`;
  }
  return `saslauthd: ${error.message.replace(/^error: /, '')}`;
}
