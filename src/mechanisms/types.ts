/**
 * The contract between a worker process and the mechanism it runs (the C daemon's
 * mechanisms.h): bytes in, an `OK…` / `NO…` reply out. A mechanism runs inside a worker
 * process, one request at a time; it never sees a socket.
 */

/** One authentication request as the mechanism sees it. */
export interface AuthRequest {
  /** User name exactly as it goes to the backend (already `login@realm` under `-r`). No NUL byte. */
  readonly login: Buffer;
  /** The secret. The worker zeroes this buffer once `authenticate` has returned. No NUL byte. */
  readonly password: Buffer;
  /** Service name from the request (PAM service). May be empty. No NUL byte. */
  readonly service: Buffer;
  /** Realm from the request. May be empty. No NUL byte. */
  readonly realm: Buffer;
  /** Client host (the part of the optional 5th field before `;`), when the client sent one. */
  readonly remoteHost?: string;
}

export interface AuthResult {
  /** Reply text for the client: starts with `OK` or `NO`. Never contains the password. */
  readonly reply: string;
  /**
   * Delay (milliseconds) that the backend asked to be applied before a failure is answered
   * (PAM's fail delay). The primary applies it to this reply only, without holding a worker.
   */
  readonly failDelayMs?: number;
  /**
   * The backend could not be asked (server down, unreachable, silent past the mechanism's
   * deadline): the NO says nothing about the password. The primary then answers as for its
   * own trouble (`auth not checked:`), and the failure counts against neither the login nor
   * the password (no guessing bound, no repeat lane, no fail2ban line).
   */
  readonly unavailable?: boolean;
}

/** Where a mechanism writes its own diagnostics; never pass a secret to it. */
export interface MechanismLog {
  /** Written only in verbose mode. */
  debug(message: string): void;
  /** A debug-priority line written whatever the verbosity (as the original's auth_pam does). */
  debugAlways(message: string): void;
  info(message: string): void;
  error(message: string): void;
}

export interface MechanismOptions {
  /** The `-O` argument, if any. */
  readonly mechOption: string | undefined;
  /**
   * `--job-timeout` in milliseconds: past it the primary answers NO and replaces the worker.
   * A network mechanism keeps its own per-request deadline below it, so a stalled backend
   * gets the mechanism's own NO and the worker stays. Undefined in unit tests.
   */
  readonly jobTimeoutMs?: number;
  readonly log: MechanismLog;
}

export interface Mechanism {
  /**
   * True when `authenticate` always returns its result directly (never a Promise): the
   * worker then drives it from a blocking loop without an event loop turn per request.
   */
  readonly blocking?: boolean;
  /** One request; a worker never calls it again before the previous call settled. */
  authenticate(request: AuthRequest): AuthResult | Promise<AuthResult>;
  /** Release what the mechanism holds (connections, handles). */
  close?(): void;
}

export interface MechanismFactory {
  /** The `-a` name, lower case. */
  readonly name: string;
  /**
   * Run once in the primary before any worker starts: throws an Error whose message says why
   * the mechanism cannot work here (the C daemon's "failed to initialize mechanism").
   */
  check(options: MechanismOptions): void;
  /** Run in each worker process. */
  create(options: MechanismOptions): Mechanism;
}
