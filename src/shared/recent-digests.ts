/**
 * A bounded set of digests noted recently ("was this digest noted within the last
 * `windowMs`?"), laid out in shared memory: one writer (the primary) notes and forgets,
 * any number of processes read at once.
 *
 * Concurrency: the table is set-associative (WAYS slots per set, the set chosen by the
 * digest), so a note or a lookup touches one set only, and a full set evicts its oldest
 * entry: the table never grows. Each slot carries a sequence number (a seqlock): the single
 * writer makes it odd, stores the slot's words, and makes it even again, all with Atomics.
 * A reader loads the sequence, the words, and the sequence again; an odd sequence, or one
 * that changed, means a write overlapped the read, and the reader says "cannot tell"
 * (`undefined`) rather than trust a torn slot. Callers retry a few times and then take the
 * safe side (suspect-table.ts: a doubt is a suspect). No lock is needed because only one
 * process ever writes, and a reader never writes at all.
 */
import { checkSection, type SharedSection } from './section.js';

/** Slots per set: a lookup reads one set, eviction is "oldest of these". */
const WAYS = 8;
/** Int32 words per slot: sequence, state, 4 digest words, noted-at (ms, high and low words). */
const SLOT_WORDS = 8;
const SEQUENCE = 0;
const STATE = 1;
const DIGEST = 2;
/** Digest bytes kept: 128 bits of an HMAC-SHA256 make an accidental match negligible. */
export const KEPT_DIGEST_BYTES = 16;
const NOTED_HIGH = 6;
const NOTED_LOW = 7;
const EMPTY = 0;
const USED = 1;
const TWO_TO_32 = 2 ** 32;

export class RecentDigests {
  private readonly words: Int32Array;
  private readonly sets: number;

  /** Bytes a table of at least `capacity` digests takes. */
  static bytesFor(capacity: number): number {
    return setsFor(capacity) * WAYS * SLOT_WORDS * 4;
  }

  constructor(
    section: SharedSection,
    capacity: number,
    private readonly windowMs: number,
  ) {
    checkSection(section, RecentDigests.bytesFor(capacity), 'recent digests table');
    this.sets = setsFor(capacity);
    this.words = new Int32Array(section.buffer, section.offset, this.sets * WAYS * SLOT_WORDS);
  }

  /** Digests the table holds at most. */
  get capacity(): number {
    return this.sets * WAYS;
  }

  /**
   * Reader: true when `digest` was noted less than windowMs before `now`, false when not,
   * undefined when a write overlapped the read (ask again, or take the safe side).
   */
  seen(digest: Buffer, now: number): boolean | undefined {
    const [d0, d1, d2, d3] = digestWords(digest);
    const base = this.setBase(d0);
    for (let way = 0; way < WAYS; way++) {
      const slot = base + way * SLOT_WORDS;
      const before = Atomics.load(this.words, slot + SEQUENCE);
      if ((before & 1) !== 0) return undefined; // being written
      if (Atomics.load(this.words, slot + STATE) !== USED) continue;
      if (
        Atomics.load(this.words, slot + DIGEST) !== d0 ||
        Atomics.load(this.words, slot + DIGEST + 1) !== d1 ||
        Atomics.load(this.words, slot + DIGEST + 2) !== d2 ||
        Atomics.load(this.words, slot + DIGEST + 3) !== d3
      ) {
        continue;
      }
      const notedAt = this.notedAt(slot);
      if (Atomics.load(this.words, slot + SEQUENCE) !== before) return undefined; // torn
      return now - notedAt < this.windowMs;
    }
    return false;
  }

  /** Writer only: `digest` was seen at `now` (a full set forgets its oldest entry). */
  note(digest: Buffer, now: number): void {
    const [d0, d1, d2, d3] = digestWords(digest);
    const base = this.setBase(d0);
    let free: number | undefined;
    let oldest = base;
    for (let way = 0; way < WAYS; way++) {
      const slot = base + way * SLOT_WORDS;
      const used = this.words[slot + STATE] === USED;
      if (used && this.holds(slot, d0, d1, d2, d3)) {
        // Refreshed in place, expired or not: a digest is never in two slots of its set.
        this.write(slot, USED, d0, d1, d2, d3, now);
        return;
      }
      if (!used || now - this.notedAt(slot) >= this.windowMs) free ??= slot;
      else if (free === undefined && this.notedAt(slot) < this.notedAt(oldest)) oldest = slot;
    }
    this.write(free ?? oldest, USED, d0, d1, d2, d3, now);
  }

  /** Writer only: `digest` is no longer remembered. */
  forget(digest: Buffer): void {
    const [d0, d1, d2, d3] = digestWords(digest);
    const base = this.setBase(d0);
    for (let way = 0; way < WAYS; way++) {
      const slot = base + way * SLOT_WORDS;
      if (this.words[slot + STATE] === USED && this.holds(slot, d0, d1, d2, d3)) this.write(slot, EMPTY, 0, 0, 0, 0, 0);
    }
  }

  /** Writer only: forget everything. */
  clear(): void {
    for (let slot = 0; slot < this.words.length; slot += SLOT_WORDS) {
      if (this.words[slot + STATE] !== EMPTY) this.write(slot, EMPTY, 0, 0, 0, 0, 0);
    }
  }

  /** Writer only: entries noted less than windowMs before `now`. */
  liveEntries(now: number): number {
    let live = 0;
    for (let slot = 0; slot < this.words.length; slot += SLOT_WORDS) {
      if (this.words[slot + STATE] === USED && now - this.notedAt(slot) < this.windowMs) live++;
    }
    return live;
  }

  private setBase(firstWord: number): number {
    return ((firstWord >>> 0) % this.sets) * WAYS * SLOT_WORDS;
  }

  private holds(slot: number, d0: number, d1: number, d2: number, d3: number): boolean {
    const w = this.words;
    return w[slot + DIGEST] === d0 && w[slot + DIGEST + 1] === d1 && w[slot + DIGEST + 2] === d2 && w[slot + DIGEST + 3] === d3;
  }

  private notedAt(slot: number): number {
    return Atomics.load(this.words, slot + NOTED_HIGH) * TWO_TO_32 + (Atomics.load(this.words, slot + NOTED_LOW) >>> 0);
  }

  /** The seqlock's write side: odd while the slot's words change, even again after. */
  private write(slot: number, state: number, d0: number, d1: number, d2: number, d3: number, now: number): void {
    const w = this.words;
    const sequence = w[slot + SEQUENCE]!;
    Atomics.store(w, slot + SEQUENCE, (sequence + 1) | 0);
    Atomics.store(w, slot + STATE, state);
    Atomics.store(w, slot + DIGEST, d0);
    Atomics.store(w, slot + DIGEST + 1, d1);
    Atomics.store(w, slot + DIGEST + 2, d2);
    Atomics.store(w, slot + DIGEST + 3, d3);
    const at = Math.ceil(now); // rounded up: an entry lives at most a millisecond longer, never shorter
    const high = Math.floor(at / TWO_TO_32);
    Atomics.store(w, slot + NOTED_HIGH, high);
    Atomics.store(w, slot + NOTED_LOW, (at - high * TWO_TO_32) | 0);
    Atomics.store(w, slot + SEQUENCE, (sequence + 2) | 0);
  }
}

function setsFor(capacity: number): number {
  if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError(`table capacity must be a positive integer, not ${capacity}`);
  return Math.ceil(capacity / WAYS);
}

/** The kept prefix of a digest as four Int32 words (little-endian, the same in every process). */
function digestWords(digest: Buffer): [number, number, number, number] {
  if (digest.length < KEPT_DIGEST_BYTES) throw new RangeError(`a digest has at least ${KEPT_DIGEST_BYTES} bytes, not ${digest.length}`);
  return [digest.readInt32LE(0), digest.readInt32LE(4), digest.readInt32LE(8), digest.readInt32LE(12)];
}
