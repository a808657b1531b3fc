/**
 * Which logins and passwords are suspect, published in shared memory for the workers' fast
 * path: a login whose check failed within SUSPECT_MEMORY_MS, or a password refused for any
 * login in that time (login-scheduler.ts keeps the same rule for the primary's turns). A
 * worker that finds a request suspect hands it to the primary, which schedules it in the
 * suspect lane; a worker never answers a suspect request itself.
 *
 * Concurrency: the primary is the only writer (SuspectTable: noteFailure, clearLogin,
 * clear); workers only read (SuspectTableReader: isSuspect, maybeAny). The logins and the
 * passwords are two RecentDigests tables (a seqlock per slot, see recent-digests.ts), after
 * a header holding a format word and the second of the latest failure. The header lets a
 * reader skip the digests when nothing failed in the last SUSPECT_MEMORY_MS (the common
 * case): the writer raises it before it writes an entry and lowers it only after it has
 * emptied the tables, and it is rounded up to the second, so `maybeAny()` is never false
 * while a live entry exists. Whenever a reader cannot tell (a write overlapped its read
 * READ_ATTEMPTS times, or the header is not the format it knows), it answers "suspect": the
 * cost of a wrong "suspect" is a trip through the primary's slower lane, while a wrong
 * "clean" would let a guesser past the bounds on guessing.
 */
import { systemMonotonicMs } from '../runtime/monotonic-clock.js';
import { SUSPECT_MEMORY_CAPACITY, SUSPECT_MEMORY_MS } from '../server/login-scheduler.js';
import { RecentDigests } from './recent-digests.js';
import { checkSection, type SharedSection } from './section.js';

/** The header: format word, capacity, second of the latest failure (rounded up). */
const HEADER_BYTES = 64;
const FORMAT = 0;
const CAPACITY = 1;
const LATEST_FAILURE_SECOND = 2;
/** "Suspect table, layout 1": a reader that finds anything else trusts nothing in it. */
const FORMAT_WORD = 0x53555301;
/** The latest-failure word before any failure (and after clear()). */
const NEVER = -0x80000000;
/** Reads of one table overlapped by a write before the reader takes the safe side. */
const READ_ATTEMPTS = 3;
/** Default entries per table, as the scheduler's own memory. */
export const DEFAULT_SUSPECT_CAPACITY = SUSPECT_MEMORY_CAPACITY;

export interface SuspectTableOptions {
  /** Logins (and, separately, passwords) remembered; beyond it a set forgets its oldest. */
  readonly capacity?: number;
  /** Milliseconds of CLOCK_MONOTONIC, the same in every process (tests inject their own). */
  readonly now?: () => number;
}

/** What a worker sees: the primary's published verdicts, read without a lock. */
export class SuspectTableReader {
  protected readonly header: Int32Array;
  protected readonly logins: RecentDigests;
  protected readonly passwords: RecentDigests;
  protected readonly now: () => number;
  protected readonly capacity: number;

  /** Bytes of a table with `capacity` logins and as many passwords. */
  static bytesFor(capacity: number = DEFAULT_SUSPECT_CAPACITY): number {
    return HEADER_BYTES + 2 * RecentDigests.bytesFor(capacity);
  }

  constructor(section: SharedSection, options: SuspectTableOptions = {}) {
    this.capacity = options.capacity ?? DEFAULT_SUSPECT_CAPACITY;
    this.now = options.now ?? systemMonotonicMs;
    checkSection(section, SuspectTableReader.bytesFor(this.capacity), 'suspect table');
    this.header = new Int32Array(section.buffer, section.offset, HEADER_BYTES / 4);
    const tableBytes = RecentDigests.bytesFor(this.capacity);
    const at = (offset: number): SharedSection => ({ buffer: section.buffer, offset: section.offset + offset, bytes: tableBytes });
    this.logins = new RecentDigests(at(HEADER_BYTES), this.capacity, SUSPECT_MEMORY_MS);
    this.passwords = new RecentDigests(at(HEADER_BYTES + tableBytes), this.capacity, SUSPECT_MEMORY_MS);
  }

  /**
   * Might anything be suspect now? False only when no failure was noted in the last
   * SUSPECT_MEMORY_MS: then no entry can be live, and a reader may skip the lookups.
   */
  maybeAny(): boolean {
    return this.maybeAnyAt(this.now());
  }

  /** Is this login, or this password, suspect? Digests as KeyedDigest.bytesOf gives them. */
  isSuspect(loginDigest: Buffer, passwordDigest: Buffer): boolean {
    if (!this.formatted()) return true;
    const now = this.now();
    if (!this.maybeAnyAt(now)) return false;
    return this.seen(this.logins, loginDigest, now) || this.seen(this.passwords, passwordDigest, now);
  }

  private maybeAnyAt(now: number): boolean {
    if (!this.formatted()) return true;
    const latest = Atomics.load(this.header, LATEST_FAILURE_SECOND);
    return latest !== NEVER && now - latest * 1000 < SUSPECT_MEMORY_MS;
  }

  private seen(table: RecentDigests, digest: Buffer, now: number): boolean {
    for (let attempt = 0; attempt < READ_ATTEMPTS; attempt++) {
      const seen = table.seen(digest, now);
      if (seen !== undefined) return seen;
    }
    return true; // could not tell: suspect
  }

  protected formatted(): boolean {
    return Atomics.load(this.header, FORMAT) === FORMAT_WORD && Atomics.load(this.header, CAPACITY) === this.capacity;
  }
}

/** The primary's side: the only writer. Formats the section when made. */
export class SuspectTable extends SuspectTableReader {
  constructor(section: SharedSection, options: SuspectTableOptions = {}) {
    super(section, options);
    this.logins.clear();
    this.passwords.clear();
    Atomics.store(this.header, LATEST_FAILURE_SECOND, NEVER);
    Atomics.store(this.header, CAPACITY, this.capacity);
    Atomics.store(this.header, FORMAT, FORMAT_WORD);
  }

  /** A check failed: its login and its password are suspect from now on. */
  noteFailure(loginDigest: Buffer, passwordDigest: Buffer): void {
    const now = this.now();
    // Raised before the entries exist: a reader never skips a live entry.
    const second = Math.ceil(now / 1000);
    if (second > Atomics.load(this.header, LATEST_FAILURE_SECOND)) Atomics.store(this.header, LATEST_FAILURE_SECOND, second);
    this.logins.note(loginDigest, now);
    this.passwords.note(passwordDigest, now);
  }

  /** A check succeeded: the login is clear (its password stays suspect for other logins). */
  clearLogin(loginDigest: Buffer): void {
    this.logins.forget(loginDigest);
  }

  /** Forget every login and password. */
  clear(): void {
    this.logins.clear();
    this.passwords.clear();
    Atomics.store(this.header, LATEST_FAILURE_SECOND, NEVER); // lowered once nothing is left
  }

  /** Live entries: suspect logins and suspect passwords (a walk of both tables, for status). */
  stats(): { logins: number; passwords: number } {
    const now = this.now();
    return { logins: this.logins.liveEntries(now), passwords: this.passwords.liveEntries(now) };
  }
}
