/**
 * Who may start a password check, and when: the primary's bounds on password guessing and
 * its fairness between logins. Every request that reaches a mechanism first gets a turn here.
 *
 *  - A login (the user after `-r`, folded) runs at most `maxChecksPerLogin` checks at once
 *    (the number of workers: a login alone may use the pool, never more), and a suspect one
 *    (below) one at a time, exclusively. Requests for a login wait in one queue per
 *    credential (login + password) and are served round-robin across those queues: a burst
 *    of identical requests costs another password for the same login at most a few checks'
 *    wait, and a burst for one login never holds another login back.
 *  - A login's turn lasts until its reply is sent, PAM's failure delay included: after a
 *    failure the next check for that login starts only once the delay has passed, so parallel
 *    connections do not multiply the guessing rate against one account (the original got the
 *    same effect by holding a worker through the delay, at the price of stalling everybody).
 *  - A login is suspect when a check for it failed within SUSPECT_MEMORY_MS, or when the
 *    password it comes with was refused for any login in that time (the same password tried
 *    on many accounts: spraying). At most `maxSuspectChecks` suspect turns run at once,
 *    daemon-wide, each held through its failure delay: with pam_unix's 2 s delay and the
 *    default 5 that is 2.5 guesses a second, what the original's `-n 5` allowed. Suspect
 *    logins take free places round-robin. Logins that are not suspect never wait for them.
 *  - A success clears the login's suspicion.
 *
 * Nothing here sees a password: callers pass keyed digests (keyed-digest.ts). Pure logic
 * with an injected clock; the only timers are the callers' deadlines.
 */
import { monotonicMs } from '../runtime/monotonic-clock.js';
import { RecentMemory } from './recent-memory.js';

/** How long a failure makes its login (and its password) suspect. */
export const SUSPECT_MEMORY_MS = 10 * 60_000;
/** Logins and passwords remembered as suspect; beyond it the oldest are forgotten. */
export const SUSPECT_MEMORY_CAPACITY = 50_000;

/** Digests naming one request's login, its credentials, and its password alone. */
export interface AttemptIds {
  readonly login: string;
  readonly credential: string;
  readonly password: string;
}

export type CheckResult = 'success' | 'failure' | 'unchecked';

export interface Turn {
  /** The login was suspect when the turn was granted (it held a daemon-wide place). */
  readonly suspect: boolean;
  /** The request had to wait for the turn (another check may have answered it meanwhile). */
  readonly waited: boolean;
  /** Ends the turn once the reply is sent (after any failure delay). Idempotent. */
  finish(result: CheckResult): void;
}

export type Refusal =
  /** The daemon's waiting room (`--max-queue`) is full. */
  | { readonly granted: false; readonly reason: 'busy'; readonly limit: number }
  /** A suspect login has as many requests waiting as it may have (see admit()). */
  | { readonly granted: false; readonly reason: 'login-busy'; readonly limit: number }
  | { readonly granted: false; readonly reason: 'timeout' | 'stopped' };

export type Admission = { readonly granted: true; readonly turn: Turn } | Refusal;

export interface SchedulerOptions {
  /** Suspect checks that may run at once, daemon-wide (`--max-suspect-checks`). */
  readonly maxSuspectChecks: number;
  /** Checks of one login (without a recent failure) that may run at once: the pool's size. */
  readonly maxChecksPerLogin: number;
  /** Requests that may wait for a turn; past it `busy` at once (`--max-queue`). */
  readonly maxWaiting: number;
  readonly now?: () => number;
  /**
   * Checks of a login running where the scheduler does not grant them (workers answering
   * clients themselves): they count against the login's bound. Whoever provides it calls
   * retry() when such checks may have ended.
   */
  readonly runningElsewhere?: (login: string) => number;
}

export interface SchedulerStats {
  readonly waiting: number;
  readonly suspectRunning: number;
}

interface Waiter {
  readonly ids: AttemptIds;
  /** Counted in `suspectWaiting` (suspect when it was admitted). */
  readonly suspect: boolean;
  readonly resolve: (admission: Admission) => void;
  timer: NodeJS.Timeout | undefined;
  /** Granted or answered already. */
  settled: boolean;
}

interface LoginLine {
  /** Turns of this login running now. */
  running: number;
  /** One of them is a suspect turn: it runs alone. */
  exclusive: boolean;
  /** The credential of the latest turn: the next turn goes to another one if any waits. */
  lastServed: string | undefined;
  /** Credential digest → its waiters; Map order is the round-robin order. */
  readonly byCredential: Map<string, Waiter[]>;
  waiting: number;
}

/** A suspect login's share of the waiting room: requests with one credential (a retry loop). */
const CREDENTIAL_SHARE = 16;
/** …its distinct credentials waiting (a guesser's distinct passwords). */
const DISTINCT_CREDENTIALS_SHARE = 16;
/** …and its requests waiting in all, beyond which only a credential with none waiting gets in. */
const LOGIN_SHARE = 4;
/** Suspect requests, all logins together, may fill at most this share of the waiting room. */
const SUSPECT_SHARE = 2;

export class LoginScheduler {
  /** Logins with a running turn or waiters; Map order is the round-robin order between logins. */
  private readonly lines = new Map<string, LoginLine>();
  private readonly failedLogins: RecentMemory;
  private readonly refusedPasswords: RecentMemory;
  private waiting = 0;
  private suspectWaiting = 0;
  private suspectRunning = 0;
  private stopped = false;
  /** The waiter being admitted right now: granting it is not a wait. */
  private admitting: Waiter | undefined;
  private readonly perCredential: number;
  private readonly distinctPerLogin: number;
  private readonly perLogin: number;
  private readonly suspectWaitingLimit: number;

  constructor(private readonly options: SchedulerOptions) {
    const now = options.now ?? monotonicMs;
    this.perCredential = Math.max(1, Math.floor(options.maxWaiting / CREDENTIAL_SHARE));
    this.distinctPerLogin = Math.max(2, Math.floor(options.maxWaiting / DISTINCT_CREDENTIALS_SHARE));
    this.perLogin = Math.max(2, Math.floor(options.maxWaiting / LOGIN_SHARE));
    this.suspectWaitingLimit = Math.max(1, Math.floor(options.maxWaiting / SUSPECT_SHARE));
    this.failedLogins = new RecentMemory(SUSPECT_MEMORY_MS, SUSPECT_MEMORY_CAPACITY, now);
    this.refusedPasswords = new RecentMemory(SUSPECT_MEMORY_MS, SUSPECT_MEMORY_CAPACITY, now);
  }

  /**
   * Waits for this request's turn, at most `timeoutMs`. Refused at once when the waiting
   * room is full, or when a suspect login already fills its share of it: one credential at
   * most 1/16 of it, at most 1/16 distinct credentials, and 1/4 in all — except that a
   * credential with nothing waiting still gets in while the login has few distinct ones, so
   * a burst of one stale password cannot lock out the right one.
   */
  admit(ids: AttemptIds, timeoutMs: number): Promise<Admission> {
    const suspect = this.isSuspect(ids);
    const refusal = this.refusal(ids, suspect);
    if (refusal) return Promise.resolve(refusal);
    return new Promise((resolve) => {
      const waiter: Waiter = { ids, suspect, resolve: (admission) => this.settle(waiter, resolve, admission), timer: undefined, settled: false };
      if (suspect) this.suspectWaiting++;
      const line = this.lineFor(ids.login);
      const queue = line.byCredential.get(ids.credential);
      if (queue) queue.push(waiter);
      else line.byCredential.set(ids.credential, [waiter]);
      line.waiting++;
      this.waiting++;
      this.admitting = waiter;
      this.tryGrant(ids.login, line);
      this.admitting = undefined;
      if (!waiter.settled) waiter.timer = setTimeout(() => this.expire(waiter), timeoutMs);
    });
  }

  private refusal(ids: AttemptIds, suspect: boolean): Refusal | undefined {
    if (this.stopped) return { granted: false, reason: 'stopped' };
    if (this.waiting >= this.options.maxWaiting) return { granted: false, reason: 'busy', limit: this.options.maxWaiting };
    if (!suspect) return undefined;
    // Guesses spread over many accounts cannot fill the room that clean logins need.
    if (this.suspectWaiting >= this.suspectWaitingLimit) return { granted: false, reason: 'login-busy', limit: this.suspectWaitingLimit };
    const line = this.lines.get(ids.login);
    if (!line || line.waiting === 0) return undefined;
    const queued = line.byCredential.get(ids.credential)?.length ?? 0;
    if (queued >= this.perCredential) return { granted: false, reason: 'login-busy', limit: this.perCredential };
    if (queued === 0 && line.byCredential.size >= this.distinctPerLogin) {
      return { granted: false, reason: 'login-busy', limit: this.distinctPerLogin };
    }
    if (queued > 0 && line.waiting >= this.perLogin) return { granted: false, reason: 'login-busy', limit: this.perLogin };
    return undefined;
  }

  /** Is this login suspect now (a recent failure, or a password refused for any login)? */
  isSuspect(ids: AttemptIds): boolean {
    return this.failedLogins.has(ids.login) || this.refusedPasswords.has(ids.password);
  }

  /**
   * A turn for a check that already ran elsewhere (a worker answered on its fast path and
   * handed its NO over), granted at once whatever the limits: the check happened, and its
   * outcome and failure delay must count for its login like any other's.
   */
  occupy(ids: AttemptIds): Turn {
    const line = this.lineFor(ids.login);
    line.running++;
    return this.turn(ids.login, line, ids, false, false);
  }

  /** Answers every waiting request `stopped` (shutdown); running turns end normally. */
  stop(): void {
    this.stopped = true;
    for (const line of this.lines.values()) {
      for (const queue of line.byCredential.values()) {
        for (const waiter of queue) {
          clearTimeout(waiter.timer);
          waiter.settled = true;
          waiter.resolve({ granted: false, reason: 'stopped' });
        }
      }
      line.byCredential.clear();
      line.waiting = 0;
    }
    this.waiting = 0;
    this.suspectWaiting = 0;
  }

  /** Every answer to a waiter goes through here: the suspect tally follows the waiters. */
  private settle(waiter: Waiter, resolve: (admission: Admission) => void, admission: Admission): void {
    if (waiter.suspect) this.suspectWaiting--;
    resolve(admission);
  }

  stats(): SchedulerStats {
    return { waiting: this.waiting, suspectRunning: this.suspectRunning };
  }

  private lineFor(login: string): LoginLine {
    let line = this.lines.get(login);
    if (!line) {
      line = { running: 0, exclusive: false, lastServed: undefined, byCredential: new Map(), waiting: 0 };
      this.lines.set(login, line);
    }
    return line;
  }

  /**
   * Grants every turn that may start now, in the daemon's round-robin order of logins (a
   * login served goes to the back). Needed only when a daemon-wide place frees up: any other
   * waiting login is waiting for its own running turn, and is tried when that ends.
   */
  private pump(): void {
    for (const [login, line] of [...this.lines]) {
      if (this.suspectRunning >= this.options.maxSuspectChecks) return;
      this.tryGrant(login, line);
    }
  }

  /** Grants what may start now: checks running elsewhere may have ended. */
  retry(): void {
    for (const [login, line] of [...this.lines]) if (line.waiting > 0) this.tryGrant(login, line);
  }

  /** Starts the turns of this login that may start now. */
  private tryGrant(login: string, line: LoginLine): void {
    if (line.waiting === 0) return;
    const elsewhere = this.options.runningElsewhere?.(login) ?? 0;
    while (line.waiting > 0 && !line.exclusive && line.running + elsewhere < this.options.maxChecksPerLogin) {
      if (!this.grantNext(login, line, elsewhere)) return;
    }
  }

  /** Starts the login's next turn; false when none may start now. */
  private grantNext(login: string, line: LoginLine, elsewhere: number): boolean {
    const next = this.nextCredential(line, elsewhere);
    if (!next) return false; // only suspect credentials wait, and they must wait for a place or to run alone
    const [credential, queue, suspect] = next;
    const waiter = queue.shift()!;
    // This credential goes to the back of its login's round; the login to the back of the daemon's.
    line.byCredential.delete(credential);
    if (queue.length > 0) line.byCredential.set(credential, queue);
    this.lines.delete(login);
    this.lines.set(login, line);
    line.waiting--;
    this.waiting--;
    line.running++;
    line.lastServed = credential;
    if (suspect) {
      this.suspectRunning++;
      line.exclusive = true;
    }
    clearTimeout(waiter.timer);
    waiter.settled = true;
    waiter.resolve({ granted: true, turn: this.turn(login, line, waiter.ids, suspect, waiter !== this.admitting) });
    return true;
  }

  /**
   * The credential whose turn it is: the first in the login's round that may start now
   * (a suspect one only while a daemon-wide place is free: a password sprayed at this login
   * must not hold back its owner's), preferring any to the one served last.
   */
  private nextCredential(line: LoginLine, elsewhere: number): [string, Waiter[], boolean] | undefined {
    // A suspect turn needs a daemon-wide place, and runs alone: after the login's other turns.
    const placeFree = this.suspectRunning < this.options.maxSuspectChecks && line.running === 0 && elsewhere === 0;
    let lastServed: [string, Waiter[], boolean] | undefined;
    for (const [credential, queue] of line.byCredential) {
      const suspect = this.isSuspect(queue[0]!.ids);
      if (suspect && !placeFree) continue;
      if (credential !== line.lastServed) return [credential, queue, suspect];
      lastServed = [credential, queue, suspect];
    }
    return lastServed;
  }

  private turn(login: string, line: LoginLine, ids: AttemptIds, suspect: boolean, waited: boolean): Turn {
    let finished = false;
    return {
      suspect,
      waited,
      finish: (result) => {
        if (finished) return;
        finished = true;
        line.running--;
        if (suspect) {
          this.suspectRunning--;
          line.exclusive = false;
        }
        if (result === 'failure') {
          this.failedLogins.note(ids.login);
          this.refusedPasswords.note(ids.password);
        } else if (result === 'success') {
          this.failedLogins.forget(ids.login);
        }
        if (line.waiting === 0 && line.running === 0 && this.lines.get(login) === line) this.lines.delete(login);
        if (suspect) this.pump(); // a daemon-wide place is free: the longest-waiting suspect login gets it
        else this.tryGrant(login, line);
      },
    };
  }

  private expire(waiter: Waiter): void {
    const line = this.lines.get(waiter.ids.login);
    const queue = line?.byCredential.get(waiter.ids.credential);
    const index = queue?.indexOf(waiter) ?? -1;
    if (!line || !queue || index === -1) return;
    queue.splice(index, 1);
    if (queue.length === 0) line.byCredential.delete(waiter.ids.credential);
    line.waiting--;
    this.waiting--;
    if (line.waiting === 0 && line.running === 0) this.lines.delete(waiter.ids.login);
    waiter.settled = true;
    waiter.resolve({ granted: false, reason: 'timeout' });
  }
}
