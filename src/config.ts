/**
 * The daemon's configuration: built once from the command line, validated, frozen, and
 * passed down. No other module reads process.argv.
 */

export interface Deadlines {
  /** Accept → complete request. libsasl2 sends the request in one write right after connect. */
  readonly readTimeoutMs: number;
  /** Reply → client's EOF. libsasl2 closes as soon as it has read the reply. */
  readonly drainTimeoutMs: number;
  /** Request → answer from the mechanism; past it the client gets NO and the worker is replaced. */
  readonly jobTimeoutMs: number;
  /** SIGTERM → exit: how long in-flight requests may still finish. */
  readonly shutdownTimeoutMs: number;
  /** A worker beyond --idle-workers that ran no job for this long stops. */
  readonly workerIdleTimeoutMs: number;
}

export interface Limits {
  /** Open client connections; past it a new client is answered `NO` at once. */
  readonly maxConnections: number;
  /** Requests waiting for a free worker; past it `NO` at once. */
  readonly maxQueuedJobs: number;
  /** Recycle a worker after this many requests (0 = never). */
  readonly maxJobsPerWorker: number;
  /** With `-n 0`: one-request workers running at once. */
  readonly maxPerRequestWorkers: number;
  /**
   * Checks for recently failed logins (or recently refused passwords) running at once,
   * failure delays included: the daemon-wide bound on password guessing (server/login-scheduler.ts).
   */
  readonly maxSuspectChecks: number;
}

export interface CacheSettings {
  /** `-c` */
  readonly enabled: boolean;
  /** `-s`, in kilobytes; undefined = default size. */
  readonly sizeKb: number | undefined;
  /** `-t`, entry lifetime in seconds. */
  readonly timeoutSeconds: number;
}

export interface Config {
  /** `-a`, lower case. */
  readonly mechanism: string;
  /** `-O` */
  readonly mechOption: string | undefined;
  /** `-m` */
  readonly runDirectory: string;
  /** `-n`: worker processes; 0 = a fresh worker per request. */
  readonly workers: number;
  /**
   * `--idle-workers`: workers kept started when there is no work (at most `workers`). The
   * others start when requests wait and exit after a while without any (workers/worker-lifecycle.ts).
   */
  readonly idleWorkers: number;
  /** `-r` */
  readonly appendRealm: boolean;
  /** `-d` or `-f`: stay in the foreground. */
  readonly foreground: boolean;
  /** `-d`: the original's `saslauthd[PID] :msg` stderr format. */
  readonly debugFormat: boolean;
  /** `-d` or `-V` */
  readonly verbose: boolean;
  /** `-l` was given: accepted for compatibility; the primary is the only acceptor anyway. */
  readonly acceptLockDisabled: boolean;
  readonly cache: CacheSettings;
  readonly deadlines: Deadlines;
  readonly limits: Limits;
  /** `--log-format`: `text` (the original's lines) or `json` (pino's JSON lines on stderr). */
  readonly logFormat: 'text' | 'json';
  /** `--metrics-listen`: serve /metrics over HTTP there; undefined = off. */
  readonly metricsListen: { readonly host: string; readonly port: number } | undefined;
}

export const DEFAULT_RUN_DIRECTORY = '/var/run/saslauthd';
export const DEFAULT_WORKERS = 5;
/** The original's default cache lifetime: 8 hours. */
export const DEFAULT_CACHE_TIMEOUT_SECONDS = 28_800;

export const DEFAULT_DEADLINES: Deadlines = {
  readTimeoutMs: 10_000,
  drainTimeoutMs: 10_000,
  jobTimeoutMs: 30_000,
  shutdownTimeoutMs: 10_000,
  // A minute: a steady trickle of logins keeps the extra workers; an idle night frees them.
  workerIdleTimeoutMs: 60_000,
};

export const DEFAULT_LIMITS: Limits = {
  maxConnections: 4_096,
  maxQueuedJobs: 1_024,
  maxJobsPerWorker: 0,
  maxPerRequestWorkers: 32,
  // The original's default -n 5 held 5 workers through pam_unix's 2 s delay: 2.5 guesses/s.
  maxSuspectChecks: 5,
};
