/**
 * What each worker is doing on the fast path, published in shared memory for the primary:
 * one record per worker place (the pool hands each worker its place index at spawn).
 *
 * Concurrency: each record has one writer, its worker; the primary only reads. A record the
 * primary reads while the worker runs may be mid-update — it uses such a read only to decide
 * (a check that looks past its deadline: the worker is killed, and its client answered from
 * custody, fast-path/custody.ts). The fields naming the request are read once the worker has
 * exited, when nothing writes them any more. The sequence number tells one check from the next.
 *
 * Record (Int32 words, then Float64s): seq, state, client fd, checks done; started at,
 * last active at (systemMonotonicMs); then who the check is for — user, service, realm,
 * client host (u16 length + up to 256 bytes each; never the password) — so the primary can
 * log and count a request it answers for a worker past its deadline — and the first bytes of
 * the login's digest, so the primary's guessing bounds count checks running in workers.
 */
import { systemMonotonicMs } from '../runtime/monotonic-clock.js';

/**
 * idle: waiting; reading: a client accepted, its request being read (or looked up);
 * checking: the mechanism runs; replying: the reply is being written (it may be out already);
 * job: running a job the primary sent (the pool keeps that job's deadline).
 */
export const ActivityState = { idle: 0, checking: 1, reading: 2, replying: 3, job: 4 } as const;
export type ActivityStateCode = (typeof ActivityState)[keyof typeof ActivityState];

const INT_WORDS = 6; // seq, state, fd, checksDone, two spare
const FLOAT_WORDS = 2; // startedAt, lastActiveAt
/** Largest field kept: the protocol's own limit (codec.ts MAX_FIELD_BYTES). */
const FIELD_BYTES = 256;
const FIELD_COUNT = 4;
/** Bytes of the login digest kept: enough to tell logins apart (a collision costs only fairness). */
export const LOGIN_TAG_BYTES = 16;
const LOGIN_TAG_OFFSET = INT_WORDS * 4 + FLOAT_WORDS * 8;
const FIELDS_OFFSET = LOGIN_TAG_OFFSET + LOGIN_TAG_BYTES;
const FIELD_SLOT_BYTES = 2 + FIELD_BYTES;
/** Float64 fields stay 8-aligned from one record to the next. */
const RECORD_BYTES = Math.ceil((FIELDS_OFFSET + FIELD_COUNT * FIELD_SLOT_BYTES) / 8) * 8;
const SEQ = 0;
const STATE = 1;
const FD = 2;
const CHECKS = 3;
const STARTED = 0;
const LAST_ACTIVE = 1;

/** Who a check is for, as the primary logs it (no secret). */
export interface CheckSubject {
  readonly user: Buffer;
  readonly service: Buffer;
  readonly realm: Buffer;
  readonly remote: Buffer;
}

export interface ActivitySnapshot {
  readonly seq: number;
  readonly state: ActivityStateCode;
  readonly fd: number;
  readonly checksDone: number;
  readonly startedAt: number;
  readonly lastActiveAt: number;
}

export class WorkerActivity {
  static bytesFor(places: number): number {
    return Math.max(1, places) * RECORD_BYTES;
  }

  private readonly ints: Int32Array;
  private readonly floats: Float64Array;
  private readonly bytes: Buffer;

  constructor(
    buffer: ArrayBuffer,
    offset: number,
    readonly places: number,
    private readonly now: () => number = systemMonotonicMs,
  ) {
    this.ints = new Int32Array(buffer, offset, (places * RECORD_BYTES) / 4);
    this.floats = new Float64Array(buffer, offset, (places * RECORD_BYTES) / 8);
    this.bytes = Buffer.from(buffer, offset, places * RECORD_BYTES);
  }

  /** The primary, before starting a worker in `place`: a clean record. */
  reset(place: number): void {
    const base = place * (RECORD_BYTES / 4);
    for (let i = 0; i < INT_WORDS; i++) Atomics.store(this.ints, base + i, 0);
    this.ints[base + FD] = -1;
    this.floats[place * (RECORD_BYTES / 8) + (INT_WORDS * 4) / 8 + STARTED] = 0;
    this.floats[place * (RECORD_BYTES / 8) + (INT_WORDS * 4) / 8 + LAST_ACTIVE] = this.now();
  }

  /** The worker: client `fd` was just accepted; who it is for is not known yet. */
  reading(place: number, fd: number): void {
    const base = place * (RECORD_BYTES / 4);
    const fieldsAt = place * RECORD_BYTES + FIELDS_OFFSET;
    for (let index = 0; index < FIELD_COUNT; index++) this.bytes.writeUInt16LE(0, fieldsAt + index * FIELD_SLOT_BYTES);
    this.floats[place * (RECORD_BYTES / 8) + (INT_WORDS * 4) / 8 + STARTED] = this.now();
    this.ints[base + FD] = fd;
    Atomics.add(this.ints, base + SEQ, 1);
    Atomics.store(this.ints, base + STATE, ActivityState.reading);
  }

  /** The worker: a job from the primary starts now. */
  job(place: number): void {
    this.floats[place * (RECORD_BYTES / 8) + (INT_WORDS * 4) / 8 + STARTED] = this.now();
    Atomics.store(this.ints, place * (RECORD_BYTES / 4) + STATE, ActivityState.job);
  }

  /** The worker: the reply is about to be written (past this, the primary must not answer too). */
  replying(place: number): void {
    Atomics.store(this.ints, place * (RECORD_BYTES / 4) + STATE, ActivityState.replying);
  }

  /** The worker: a check on client `fd` for `subject` (whose login digest is `login`) starts now. */
  begin(place: number, fd: number, subject: CheckSubject, login: Buffer): void {
    const base = place * (RECORD_BYTES / 4);
    const fieldsAt = place * RECORD_BYTES + FIELDS_OFFSET;
    login.copy(this.bytes, place * RECORD_BYTES + LOGIN_TAG_OFFSET, 0, LOGIN_TAG_BYTES);
    [subject.user, subject.service, subject.realm, subject.remote].forEach((field, index) => {
      const at = fieldsAt + index * FIELD_SLOT_BYTES;
      const length = Math.min(field.length, FIELD_BYTES);
      this.bytes.writeUInt16LE(length, at);
      field.copy(this.bytes, at + 2, 0, length);
    });
    const floatBase = place * (RECORD_BYTES / 8) + (INT_WORDS * 4) / 8;
    const now = this.now();
    this.floats[floatBase + STARTED] = now;
    this.floats[floatBase + LAST_ACTIVE] = now;
    this.ints[base + FD] = fd;
    Atomics.store(this.ints, base + STATE, ActivityState.checking);
  }

  /** The worker: done with the client (answered, handed to the primary, or gone); `checked`: the mechanism ran. */
  end(place: number, checked: boolean): void {
    const base = place * (RECORD_BYTES / 4);
    Atomics.store(this.ints, base + STATE, ActivityState.idle);
    this.ints[base + FD] = -1;
    if (checked) Atomics.add(this.ints, base + CHECKS, 1);
    this.floats[place * (RECORD_BYTES / 8) + (INT_WORDS * 4) / 8 + LAST_ACTIVE] = this.now();
  }

  /** Whether the place's worker is checking the login whose digest starts with `tag` now. */
  checkingLogin(place: number, tag: Buffer): boolean {
    if (Atomics.load(this.ints, place * (RECORD_BYTES / 4) + STATE) !== ActivityState.checking) return false;
    const at = place * RECORD_BYTES + LOGIN_TAG_OFFSET;
    return this.bytes.compare(tag, 0, LOGIN_TAG_BYTES, at, at + LOGIN_TAG_BYTES) === 0;
  }

  /** Who the record's check is for; exact once the worker has exited (see above). */
  subject(place: number): CheckSubject {
    const fieldsAt = place * RECORD_BYTES + FIELDS_OFFSET;
    const field = (index: number): Buffer => {
      const at = fieldsAt + index * FIELD_SLOT_BYTES;
      const length = Math.min(this.bytes.readUInt16LE(at), FIELD_BYTES);
      return Buffer.from(this.bytes.subarray(at + 2, at + 2 + length));
    };
    return { user: field(0), service: field(1), realm: field(2), remote: field(3) };
  }

  read(place: number): ActivitySnapshot {
    const base = place * (RECORD_BYTES / 4);
    const floatBase = place * (RECORD_BYTES / 8) + (INT_WORDS * 4) / 8;
    return {
      seq: Atomics.load(this.ints, base + SEQ),
      state: Atomics.load(this.ints, base + STATE) as ActivityStateCode,
      fd: this.ints[base + FD]!,
      checksDone: this.ints[base + CHECKS]!,
      startedAt: this.floats[floatBase + STARTED]!,
      lastActiveAt: this.floats[floatBase + LAST_ACTIVE]!,
    };
  }
}
