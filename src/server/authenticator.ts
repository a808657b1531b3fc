/**
 * The C daemon's do_auth(), in the primary: from a decoded request to the reply text.
 * Applies `-r`, consults the cache, waits for the login's turn (login-scheduler.ts: one
 * check at a time per login, fair between credentials, bounded for logins that just
 * failed), hands the job to the worker pool (the same credentials refused a moment ago go
 * to the back: repeat-failures.ts), checks what the mechanism answered, serves a requested
 * failure delay to this reply only, and writes the one log line per outcome that admins and
 * fail2ban read:
 *   auth success: [user=…] [service=…] [realm=…] [mech=…]            (verbose only)
 *   auth failure: [user=…] [service=…] [realm=…] [mech=…] [reason=…]  (always)
 *   auth not checked: … [reason=…]   (the daemon answered NO itself; at most one line a
 *                                     second per reason, log/refusal-log.ts)
 */
import { REPLY, cString, type WireRequest } from '../protocol/codec.js';
import { printable, type Logger } from '../log/logger.js';
import { authLine, fieldText, type AuthLine, type RequestFields } from '../log/auth-line.js';
import type { CheckSubject } from '../shared/worker-activity.js';
import { logCacheMiss, logCachedSuccess, logCheckedSuccess } from '../log/success-lines.js';
import { RefusalLog } from '../log/refusal-log.js';
import type { RequestResult } from '../metrics/request-metrics.js';
import type { RequestMetrics } from '../shared/request-counters.js';
import { monotonicMs } from '../runtime/monotonic-clock.js';
import { POOL_REPLY, type JobLane, type JobOutcome, type PoolJob } from '../workers/pool.js';
import { RepeatFailures } from './repeat-failures.js';
import type { CacheKeyParts, CredentialCache } from './credential-cache.js';
import { FailureDelays } from './failure-delays.js';
import { KeyedDigest } from './keyed-digest.js';
import type { AttemptIds, CheckResult, LoginScheduler, Refusal } from './login-scheduler.js';
import { accountKey, cacheKeyOf, logFieldsOf, requestParts, type RequestParts } from './request-parts.js';

export interface AuthenticatorOptions {
  /** `-a`, as given (log lines show it). */
  readonly mechanism: string;
  /** `-r`: append `@realm` to the login when the realm is not empty. */
  readonly appendRealm: boolean;
  readonly log: Logger;
  /** Runs a job in a worker (whose own deadline, `--job-timeout` from dispatch, finds a hung module). */
  readonly runJob: (job: PoolJob, lane: JobLane) => Promise<JobOutcome>;
  readonly scheduler: LoginScheduler;
  /** The request's one deadline (`--job-timeout`), from the moment it is complete. */
  readonly jobTimeoutMs: number;
  /** `-c`: the credential cache, consulted before the mechanism. */
  readonly cache?: CredentialCache | undefined;
  /** Counts every answer by result and service, with its latency (metrics). */
  readonly metrics?: RequestMetrics | undefined;
  /** Names logins and passwords for the scheduler; shared with the workers (same key). */
  readonly digest?: KeyedDigest;
  /**
   * Where workers look up whether a login or password was refused recently, before they
   * check one themselves: told at once of a failure (not after its delay, or workers would
   * keep guessing meanwhile) and of a success.
   */
  readonly suspects?: SuspectPublisher | undefined;
}

export interface SuspectPublisher {
  noteFailure(loginDigest: Buffer, passwordDigest: Buffer): void;
  clearLogin(loginDigest: Buffer): void;
}

/** A worker's answer to a request it checked on its fast path and handed over (a NO). */
export interface HandedOverAnswer {
  readonly reply: string;
  readonly failDelayMs: number;
  readonly unavailable: boolean;
}

/** How the request being answered ended; set by whichever step answers it. */
interface Tally {
  result: RequestResult;
}

/** A request whose credentials a mechanism checked, and what its answer must update. */
interface CheckedRequest {
  readonly password: Buffer;
  readonly key: CacheKeyParts;
  readonly fields: () => RequestFields;
  readonly tally: Tally;
  /** Set when the client got its NO at its own deadline while the check ran. */
  readonly client: { answered: boolean };
  /** The same credentials were refused a moment ago. */
  readonly repeat: boolean;
  /** The cache's generation when the check started (undefined: no fill). */
  readonly generation?: number | undefined;
  /** The request's login and password digests, as the scheduler knows them. */
  readonly ids: AttemptIds;
}

export class Authenticator {
  private readonly repeatFailures = new RepeatFailures();
  private readonly delays = new FailureDelays();
  private readonly digest: KeyedDigest;
  private readonly refusals: RefusalLog<AuthLine>;

  constructor(private readonly options: AuthenticatorOptions) {
    this.digest = options.digest ?? new KeyedDigest();
    this.refusals = new RefusalLog<AuthLine>((line) => options.log.error(line.text, line.fields));
  }

  /** Shutdown: answer the clients that wait out a failure delay or a turn now, rather than not at all. */
  cutFailureDelays(): void {
    this.options.scheduler.stop();
    this.delays.cutAll();
  }

  /** Replies that wait out a failure delay now. */
  get pendingFailureDelays(): number {
    return this.delays.pending;
  }

  /**
   * Answers one complete request. Fields are taken as C strings (cut at the first NUL), as
   * the original's mechanisms see them. Never throws; the password buffer is zeroed.
   */
  async authenticate(request: WireRequest): Promise<string> {
    const startedAt = monotonicMs();
    const tally: Tally = { result: 'no' };
    try {
      return await this.answer(request, startedAt, tally);
    } finally {
      // What the client got, when it got it (a check that outlives the request's deadline
      // has been counted `not_checked` already).
      this.options.metrics?.record(tally.result, cString(request.service), monotonicMs() - startedAt);
    }
  }

  /**
   * A request a worker checked itself and handed over with the mechanism's NO (workers send
   * every NO here): logged, remembered and delayed as if the check had run from here. Never
   * throws; the password buffer is zeroed.
   */
  async answerChecked(request: WireRequest, answer: HandedOverAnswer): Promise<string> {
    const startedAt = monotonicMs();
    const tally: Tally = { result: 'no' };
    try {
      const parts = requestParts(request, this.options.appendRealm);
      if (parts.login.length === 0 || parts.password.length === 0) return REPLY.internalFailure; // never sent by a worker
      const key = cacheKeyOf(parts);
      const ids = this.attemptIds(parts);
      const turn = this.options.scheduler.occupy(ids);
      const outcome: JobOutcome = { reply: answer.reply, failDelayMs: answer.failDelayMs, fromMechanism: !answer.unavailable };
      const settled = await this.settle(outcome, {
        password: parts.password,
        key,
        fields: () => logFieldsOf(parts),
        tally,
        client: { answered: false },
        repeat: this.repeatFailures.isRepeat(key, parts.password),
        ids,
      });
      turn.finish(settled.result);
      return settled.text;
    } finally {
      request.password.fill(0);
      this.options.metrics?.record(tally.result, cString(request.service), monotonicMs() - startedAt);
    }
  }

  /**
   * A request a worker was checking when it died, or was killed past the deadline: the
   * primary answers it `reply`. The daemon's own NO, logged and counted as such (never an
   * `auth failure`).
   */
  notCheckedInWorker(subject: CheckSubject, reply: string, elapsedMs: number): string {
    const tally: Tally = { result: 'no' };
    const fields = (): RequestFields => ({
      user: fieldText(subject.user),
      service: fieldText(subject.service),
      realm: fieldText(subject.realm),
      remote: fieldText(subject.remote),
    });
    this.notChecked(reply, fields, tally);
    this.options.metrics?.record(tally.result, subject.service, elapsedMs);
    return reply;
  }

  private attemptIds(parts: RequestParts): AttemptIds {
    const account = accountKey(parts.user);
    return { login: this.digest.of(account), credential: this.digest.of(account, parts.password), password: this.digest.of(parts.password) };
  }

  private async answer(request: WireRequest, startedAt: number, tally: Tally): Promise<string> {
    const parts = requestParts(request, this.options.appendRealm);
    const { password, user, service, realm, remoteHost } = parts;
    /** False while a check that outlived its client's deadline still needs the password. */
    let wipeNow = true;
    try {
      if (parts.login.length === 0) return this.refuse(REPLY.nullLogin, 'NULL login received', tally);
      if (password.length === 0) return this.refuse(REPLY.nullPassword, 'NULL password received', tally);
      // Rendered only for a line that is written: most requests log nothing without -d/-V.
      const fields = (): RequestFields => logFieldsOf(parts);
      const cache = this.options.cache;
      const key = cacheKeyOf(parts);
      if (cache && this.answeredFromCache(cache, key, password, fields, tally)) return 'OK';

      const ids = this.attemptIds(parts);
      const admission = await this.options.scheduler.admit(ids, this.options.jobTimeoutMs);
      if (!admission.granted) return this.notChecked(refusalReply(admission), fields, tally, admission);
      const { turn } = admission;
      // The same credentials may have been checked while this request waited for its turn.
      if (cache && turn.waited && this.answeredFromCache(cache, key, password, fields, tally)) {
        turn.finish('unchecked');
        return 'OK';
      }
      const timeLeft = this.options.jobTimeoutMs - (monotonicMs() - startedAt);
      if (timeLeft <= 0) {
        turn.finish('unchecked');
        return this.notChecked(POOL_REPLY.timeout, fields, tally);
      }
      const client = { answered: false };
      const checked = this.check({ login: user, password, service, realm, remoteHost }, { key, fields, tally, client, ids }).then((outcome) => {
        turn.finish(outcome.result); // the login's next check waits for this one, and its delay
        return outcome;
      });
      // A request that waited for its turn still has its own deadline. Past it the client gets
      // NO; the check goes on (its worker keeps --job-timeout from dispatch, so a check that
      // merely started late is never killed), and holds the login's turn until it is done.
      const onTime = turn.waited ? await beforeDeadline(checked, timeLeft) : await checked;
      if (onTime) return onTime.text;
      wipeNow = false;
      client.answered = true; // the check's outcome is still recorded, but not counted twice
      void checked.finally(() => request.password.fill(0));
      return this.notChecked(POOL_REPLY.timeout, fields, tally);
    } finally {
      if (wipeNow) request.password.fill(0);
    }
  }

  /**
   * One check by the mechanism, and what follows from its answer. `client.answered` is set
   * when the client got its NO at its own deadline while this check ran: the outcome still
   * updates the cache, the repeat memory and the login's turn, and a failure is still an
   * `auth failure:` line (it was a real attempt), but the request is not counted again.
   */
  private async check(
    job: PoolJob,
    request: Pick<CheckedRequest, 'key' | 'fields' | 'tally' | 'client' | 'ids'>,
  ): Promise<{ text: string; result: CheckResult }> {
    const repeat = this.repeatFailures.isRepeat(request.key, job.password);
    const generation = this.options.cache?.generation;
    const outcome = await this.options.runJob(job, repeat ? 'repeat' : 'normal');
    return this.settle(outcome, { ...request, password: job.password, repeat, generation });
  }

  /** What follows from a mechanism's answer: cache, repeat memory, counters, log line, failure delay. */
  private async settle(outcome: JobOutcome, checked: CheckedRequest): Promise<{ text: string; result: CheckResult }> {
    const { password, key, fields, tally, client, repeat, generation, ids } = checked;
    const job = { password };
    const { cache, log, mechanism } = this.options;
    let reply = outcome.reply;
    if (!reply.startsWith('OK') && !reply.startsWith('NO')) {
      log.error(`mechanism returned unknown response: ${printable(Buffer.from(reply, 'latin1'))}`);
      reply = REPLY.internalFailure;
    }
    if (!outcome.fromMechanism) {
      // Busy, timed out, worker died, shutting down: nothing was learnt about these
      // credentials, so neither the cache nor the repeat list changes, and the line is not
      // an `auth failure:` (fail2ban must not ban a user for the daemon's trouble).
      return { text: client.answered ? reply : this.notChecked(reply, fields, tally), result: 'unchecked' };
    }
    let result: CheckResult;
    if (reply.startsWith('OK')) {
      if (generation !== undefined) cache?.remember(key, job.password, generation);
      if (repeat) this.repeatFailures.recordSuccess(key, job.password);
      this.options.suspects?.clearLogin(Buffer.from(ids.login, 'base64'));
      if (!client.answered) tally.result = 'ok';
      logCheckedSuccess(log, fields, mechanism, client.answered ? 'late: the client was answered NO at its deadline' : undefined);
      result = 'success';
    } else {
      cache?.forget(key); // a changed password stops the old one now, not at expiry
      this.repeatFailures.recordFailure(key, job.password);
      this.options.suspects?.noteFailure(Buffer.from(ids.login, 'base64'), Buffer.from(ids.password, 'base64'));
      if (!client.answered) tally.result = 'no';
      const reason = reply.length > 3 ? reply.slice(3) : 'Unknown';
      const line = authLine('auth failure', fields(), mechanism, reason);
      log.info(line.text, line.fields);
      // PAM asked for a delay after this failure; it is served here, to this client only,
      // while the worker is already free for the next job. The login's turn lasts until
      // then: its next check starts only after the delay (login-scheduler.ts). A module
      // asking for more than the job deadline gets the job deadline.
      await this.delays.serve(Math.min(outcome.failDelayMs, this.options.jobTimeoutMs));
      result = 'failure';
    }
    if (log.verbose && reply.length === 2) log.debug(`response: ${reply}`);
    return { text: reply, result };
  }

  /** A NO from the daemon itself: counted, logged at most once a second per reason. */
  private notChecked(reply: string, fields: () => RequestFields, tally: Tally, refusal?: Refusal): string {
    tally.result = 'not_checked';
    const reason = reply.slice(3);
    const line = authLine('auth not checked', fields(), this.options.mechanism, reason);
    if (refusal && (refusal.reason === 'busy' || refusal.reason === 'login-busy')) {
      const why = refusal.reason === 'busy' ? `${refusal.limit} waiting` : `${refusal.limit} waiting for a login that just failed`;
      this.refusals.note(
        `queue:${refusal.reason}`,
        { text: `job queue full (${why}): request refused; ${line.text}`, fields: line.fields },
        (count, last) => ({
          text: `job queue full (${why}): ${count} requests refused, the last: ${last.text.slice(last.text.indexOf('auth not checked'))}`,
          fields: { ...last.fields, count },
        }),
      );
    } else {
      this.refusals.note(reason, line, (count, last) => ({
        text: `auth not checked: ${count} requests [reason=${reason}], the last: ${last.text.slice(18)}`,
        fields: { ...last.fields, count },
      }));
    }
    return reply;
  }

  /** A cache hit answers `OK` without the mechanism (the original's semantics, and log lines). */
  private answeredFromCache(
    cache: CredentialCache,
    key: CacheKeyParts,
    password: Buffer,
    fields: () => RequestFields,
    tally: Tally,
  ): boolean {
    const found = cache.lookup(key, password);
    if (found === 'hit') {
      tally.result = 'ok';
      logCachedSuccess(this.options.log, key, fields);
      return true;
    }
    if (found !== 'uncacheable') logCacheMiss(this.options.log, key, found === 'mismatch');
    return false;
  }

  private refuse(reply: string, logText: string, tally: Tally): string {
    tally.result = 'no';
    this.options.log.error(logText);
    return reply;
  }
}

/** The promise's value if it settles within `ms`, else undefined (the promise runs on). */
function beforeDeadline<T>(promise: Promise<T>, ms: number): Promise<T | undefined> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(undefined), ms);
    void promise.then((value) => {
      clearTimeout(timer);
      resolve(value);
    });
  });
}

function refusalReply(refusal: Refusal): string {
  if (refusal.reason === 'timeout') return POOL_REPLY.timeout;
  if (refusal.reason === 'stopped') return POOL_REPLY.shuttingDown;
  return POOL_REPLY.busy;
}
