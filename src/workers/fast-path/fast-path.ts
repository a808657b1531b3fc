/**
 * A worker answering a client itself — the original's way, without the hop through the
 * primary: accept, read, cache, mechanism, reply, close. Only the plain success is finished
 * here. Everything that needs the primary's guarantees goes to it with the connection:
 *   - an unusual connection (slow, idle, byte-at-a-time, trailing bytes, empty login…), with
 *     the bytes read so far;
 *   - a login or password refused recently (suspect: the primary's guessing bounds and
 *     repeat lane schedule it), before any check;
 *   - every NO from the mechanism, with its reply and PAM's failure delay: the primary logs
 *     the failure, remembers it, serves the delay and answers, so no worker ever sleeps.
 * The activity record (shared/worker-activity.ts) says what the worker is doing with its
 * client: the primary answers `NO authentication timed out` for a check past --job-timeout
 * (it takes the client's descriptor from the stopped worker: workers/seize-client.ts). A
 * worker that dies by itself mid-request takes its client's connection with it: the client
 * sees it closed, never a hang (see the README for why no copy is kept for that case).
 */
import { encodeReply, type WireRequest } from '../../protocol/codec.js';
import type { Logger } from '../../log/logger.js';
import { logCacheMiss, logCachedSuccess, logCheckedSuccess } from '../../log/success-lines.js';
import type { AuthRequest, AuthResult, Mechanism } from '../../mechanisms/types.js';
import type { RequestResult } from '../../metrics/request-metrics.js';
import { closeFd, sendSome } from '../../native/posix-sockets.js';
import { monotonicMs } from '../../runtime/monotonic-clock.js';
import type { CacheKeyParts, LookupResult } from '../../server/credential-cache.js';
import type { KeyedDigest } from '../../server/keyed-digest.js';
import { accountKey, cacheKeyOf, logFieldsOf, requestParts, type RequestParts } from '../../server/request-parts.js';
import type { CacheFill, Handoff } from '../fast-path-frames.js';
import type { CheckSubject } from '../../shared/worker-activity.js';
import { REQUEST_WINDOW_MS, readRequest } from './client-intake.js';

/** The credential cache as a worker sees it: read-only (the primary writes it). */
export interface CacheView {
  lookup(parts: CacheKeyParts, password: Buffer): LookupResult;
  readonly generation: number;
  /** undefined when the key is too long to cache. */
  keyDigestOf(parts: CacheKeyParts): Buffer | undefined;
  macOf(password: Buffer): Buffer;
}

/** Which logins and passwords were refused recently, as a worker sees it (read-only). */
export interface SuspectView {
  /** False only when nothing at all is suspect now (the common case: no digest to compute). */
  maybeAny(): boolean;
  isSuspect(loginDigest: Buffer, passwordDigest: Buffer): boolean;
}

export interface CounterSink {
  record(result: RequestResult, service: Buffer, elapsedMs: number): void;
}

/** The worker's activity record (shared/worker-activity.ts), for its own place. */
export interface ActivityView {
  reading(fd: number): void;
  job(): void;
  begin(fd: number, subject: CheckSubject, loginDigest: Buffer): void;
  replying(): void;
  end(checked: boolean): void;
}

export interface FastPathParts {
  readonly mechanism: Mechanism;
  /** `-a` as given, for log lines. */
  readonly mechanismName: string;
  /** `-r` */
  readonly appendRealm: boolean;
  readonly cache: CacheView | undefined;
  readonly suspects: SuspectView;
  /** The daemon's keyed digest (the primary's key): names logins and passwords as it does. */
  readonly digest: KeyedDigest;
  readonly counters: CounterSink;
  /** False while the primary holds --max-connections clients: a new one is its to refuse. */
  readonly roomForClients: () => boolean;
  readonly activity: ActivityView;
  readonly log: Logger;
  /** Sends the connection to the primary (the descriptor travels; ours is closed). */
  readonly handOff: (fd: number, handoff: Handoff) => void;
  /** Has the primary store a cache entry (it is the cache's only writer); returns once stored. */
  readonly fill: (fill: CacheFill) => void;
}

/** A request this worker will check itself. */
export interface PendingCheck {
  readonly fd: number;
  /** Its password is zeroed when the check is finished. */
  readonly request: WireRequest;
  readonly received: Buffer;
  readonly parts: RequestParts;
  readonly authRequest: AuthRequest;
  readonly startedAt: number;
  readonly generation: number | undefined;
}

export class FastPath {
  /** The last client was not whole in time: the next one gets no wait (see client-intake.ts). */
  private lastWasUnusual = false;

  constructor(private readonly parts: FastPathParts) {}

  /**
   * Takes a client just accepted: reads its request, answers what needs no mechanism (a
   * cache hit), or hands the connection over. Returns the check to run when the mechanism
   * must be asked.
   */
  take(fd: number): PendingCheck | undefined {
    const startedAt = monotonicMs();
    this.parts.activity.reading(fd);
    if (!this.parts.roomForClients()) {
      this.handOver(fd, { received: Buffer.alloc(0) }, false);
      return undefined;
    }
    const intake = readRequest(fd, this.lastWasUnusual ? 0 : REQUEST_WINDOW_MS);
    this.lastWasUnusual = intake.kind === 'unusual';
    if (intake.kind === 'closed') {
      closeFd(fd);
      this.parts.activity.end(false);
      return undefined;
    }
    if (intake.kind === 'unusual') {
      this.handOver(fd, { received: intake.received }, false);
      return undefined;
    }
    const { request, received } = intake;
    const parts = requestParts(request, this.parts.appendRealm);
    if (parts.login.length === 0 || parts.password.length === 0) {
      // The primary gives the original's NO and log line for these.
      request.password.fill(0);
      this.handOver(fd, { received }, false);
      return undefined;
    }
    const { cache, suspects, digest } = this.parts;
    const key = cacheKeyOf(parts);
    if (cache) {
      const found = cache.lookup(key, parts.password);
      if (found === 'hit') {
        request.password.fill(0);
        received.fill(0);
        this.reply(fd, 'OK', false);
        this.parts.counters.record('ok', parts.service, monotonicMs() - startedAt);
        logCachedSuccess(this.parts.log, key, () => logFieldsOf(parts));
        return undefined;
      }
      if (found !== 'uncacheable') logCacheMiss(this.parts.log, key, found === 'mismatch');
    }
    const loginDigest = digest.bytesOf(accountKey(parts.user));
    if (suspects.maybeAny() && suspects.isSuspect(loginDigest, digest.bytesOf(parts.password))) {
      request.password.fill(0);
      this.handOver(fd, { received }, false);
      return undefined;
    }
    const remoteHost = parts.remoteHost.length > 0 ? parts.remoteHost.toString('latin1') : undefined;
    const authRequest: AuthRequest = {
      login: parts.user,
      password: parts.password,
      service: parts.service,
      realm: parts.realm,
      ...(remoteHost === undefined ? {} : { remoteHost }),
    };
    this.parts.activity.begin(fd, { user: parts.user, service: parts.service, realm: parts.realm, remote: parts.remoteHost }, loginDigest);
    return { fd, request, received, parts, authRequest, startedAt, generation: cache?.generation };
  }

  /** A job from the primary runs now / is over: the record shows this worker busy meanwhile. */
  jobStarted(): void {
    this.parts.activity.job();
  }

  jobEnded(): void {
    this.parts.activity.end(false);
  }

  /** Runs a blocking mechanism's check and finishes the request. */
  checkNow(check: PendingCheck): void {
    let result: AuthResult;
    try {
      result = this.parts.mechanism.authenticate(check.authRequest) as AuthResult;
    } catch (error) {
      result = this.internalFailure(error);
    }
    this.finish(check, result);
  }

  /** Runs an asynchronous mechanism's check and finishes the request. */
  async check(check: PendingCheck): Promise<void> {
    let result: AuthResult;
    try {
      result = await this.parts.mechanism.authenticate(check.authRequest);
    } catch (error) {
      result = this.internalFailure(error);
    }
    this.finish(check, result);
  }

  private finish(check: PendingCheck, result: AuthResult): void {
    const { parts, fd } = check;
    try {
      if (!result.reply.startsWith('OK')) {
        // Every NO (and anything that is neither OK nor NO) is the primary's to log and answer.
        this.handOver(fd, {
          received: check.received,
          answer: { reply: result.reply, failDelayMs: result.failDelayMs ?? 0, unavailable: result.unavailable === true },
        }, true);
        return;
      }
      // Stored before the OK goes out: the client's next request finds it, in any process.
      const { cache } = this.parts;
      if (cache && check.generation !== undefined) {
        const keyDigest = cache.keyDigestOf(cacheKeyOf(parts));
        if (keyDigest) {
          this.parts.fill({ keyDigest, mac: cache.macOf(parts.password), generation: check.generation, user: parts.user, realm: parts.realm, service: parts.service });
        }
      }
      this.reply(fd, result.reply, true);
      this.parts.counters.record('ok', parts.service, monotonicMs() - check.startedAt);
      logCheckedSuccess(this.parts.log, () => logFieldsOf(parts), this.parts.mechanismName);
      if (this.parts.log.verbose && result.reply.length === 2) this.parts.log.debug(`response: ${result.reply}`);
    } finally {
      check.request.password.fill(0);
      check.received.fill(0);
    }
  }

  private internalFailure(error: unknown): AuthResult {
    this.parts.log.error(`internal mechanism failure: ${(error as Error).message}`);
    return { reply: 'NO internal mechanism failure' };
  }

  /** The connection goes to the primary (the descriptor travels; ours is closed). */
  private handOver(fd: number, handoff: Handoff, checked: boolean): void {
    try {
      this.parts.handOff(fd, handoff);
    } finally {
      handoff.received.fill(0);
      this.parts.activity.end(checked);
    }
  }

  /** The reply of a fresh connection fits its socket buffer: one send, then close. */
  private reply(fd: number, text: string, checked: boolean): void {
    const frame = encodeReply(text);
    this.parts.activity.replying();
    const sent = sendSome(fd, frame);
    this.parts.activity.end(checked);
    if (sent !== frame.length) this.parts.log.error(`write failure: the reply did not fit the client's socket (${sent})`);
    closeFd(fd);
  }
}
