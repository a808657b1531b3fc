/**
 * The credential cache's table, in a section of the memory shared by the primary and its
 * workers (src/native/shared-memory.ts).
 *
 * Concurrency: there is ONE writer, the primary (CredentialTableWriter; a second writer on
 * the same section is refused at construction), and any number of readers, the workers
 * (CredentialTableReader, which has no method that stores an entry). Since only one process
 * ever writes a slot, writes never race each other and need no lock; and no lock is wanted:
 * a worker SIGKILLed at its deadline could die holding one, and a reader must never make
 * the primary wait. The one race left, a reader copying a slot while the writer rewrites
 * it, is settled by a sequence number per slot (a seqlock): the writer makes the sequence
 * odd, writes the fields, makes it even again; a reader loads the sequence, copies the
 * fields, loads it again, and trusts the copy only when both loads saw the same even number
 * (the sequence is only touched with Atomics, which are sequentially consistent, so neither
 * side's plain field accesses move across them). On any doubt — an odd or changed sequence,
 * a header not (yet) formatted or of another version, a geometry that does not fit the
 * section — the reader answers "not found", which costs one mechanism check and can never
 * produce a wrong `OK`: a hit needs a key digest and a password MAC that the writer stored
 * together in one completed write, under a generation no flush has passed, within the
 * lifetime. Readers never wait: one that loses the race just misses. The hit and miss
 * counters are the only fields every process writes, and they are Atomics.add'ed.
 *
 * Layout: a 64-byte header (version, geometry, generation, flush floor, writer pid, lifetime,
 * hit and miss counters), then `capacity` slots of SLOT_BYTES, grouped in sets of WAYS slots
 * (a key lives in one set, chosen by its digest; eviction picks within the set).
 */
import type { SharedSection } from './section.js';
import { SECTION_ALIGNMENT } from '../native/shared-memory.js';

/** The header's first word once formatted; a reader of another layout sees a mismatch and misses. */
const LAYOUT_VERSION = 0x43435401; // 'CCT' 1
const HEADER_BYTES = 64;
/** Slots per set: a lookup reads at most this many slots (the original had 6 per bucket). */
export const WAYS = 8;
/**
 * Tables this small are one set (fully associative): eviction is then exactly oldest-first,
 * and a small `-s` does not lose entries to a crowded set while another is empty.
 */
const SINGLE_SET_MAX_SLOTS = 64;
export const DIGEST_BYTES = 32;
/** sequence u32, generation i32, storedAt f64, key digest, password MAC. */
const SLOT_BYTES = 16 + 2 * DIGEST_BYTES;

// Header fields, in Int32 units.
const H_VERSION = 0;
const H_CAPACITY = 1;
const H_WAYS = 2;
const H_SETS = 3;
const H_GENERATION = 4;
/** Entries stored under a generation below this one were flushed (a flush is one store). */
const H_FLOOR = 5;
const H_WRITER_PID = 6;
// In Float64 units: the lifetime in milliseconds.
const H_LIFETIME_F64 = 4;
// In BigInt64 units: the counters.
const H_HITS_I64 = 6;
const H_MISSES_I64 = 7;

// Slot fields, in bytes from the slot's start.
const S_SEQUENCE = 0;
const S_GENERATION = 4;
const S_STORED_AT = 8;
const S_KEY = 16;
const S_MAC = 16 + DIGEST_BYTES;
/** The first generation: zero-filled (never written) slots are below it, so empty. */
const FIRST_GENERATION = 1;

/** Where the table lives: `bytes` of `buffer` from `offset` (a multiple of SECTION_ALIGNMENT). */
export type TableSection = SharedSection;

/** A consistent copy of a slot, as a reader saw it. */
export interface SlotCopy {
  readonly generation: number;
  readonly storedAt: number;
  readonly mac: Buffer;
}

interface Geometry {
  readonly capacity: number;
  readonly ways: number;
  readonly sets: number;
}

function geometryFor(capacity: number): Geometry {
  if (capacity <= SINGLE_SET_MAX_SLOTS) return { capacity, ways: capacity, sets: 1 };
  // the last set may be shorter: the capacity is exactly what -s asked for
  return { capacity, ways: WAYS, sets: Math.ceil(capacity / WAYS) };
}

/** Views over one section; shared by the writer and the reader. */
class TableViews {
  readonly header: Int32Array;
  readonly headerF64: Float64Array;
  readonly counters: BigInt64Array;
  readonly bytes: Uint8Array;
  readonly words: Int32Array;
  readonly floats: Float64Array;

  constructor(readonly section: TableSection) {
    if (section.offset % SECTION_ALIGNMENT !== 0) throw new Error(`credential table: section offset ${section.offset} is not aligned`);
    if (section.bytes < HEADER_BYTES) throw new Error(`credential table: section of ${section.bytes} bytes is too small`);
    const { buffer, offset, bytes } = section;
    this.header = new Int32Array(buffer, offset, HEADER_BYTES / 4);
    this.headerF64 = new Float64Array(buffer, offset, HEADER_BYTES / 8);
    this.counters = new BigInt64Array(buffer, offset, HEADER_BYTES / 8);
    const slotBytes = Math.floor((bytes - HEADER_BYTES) / SLOT_BYTES) * SLOT_BYTES;
    this.bytes = new Uint8Array(buffer, offset + HEADER_BYTES, slotBytes);
    this.words = new Int32Array(buffer, offset + HEADER_BYTES, slotBytes / 4);
    this.floats = new Float64Array(buffer, offset + HEADER_BYTES, slotBytes / 8);
  }

  /** The geometry the writer published, or undefined when it is absent or does not fit. */
  geometry(): Geometry | undefined {
    if (Atomics.load(this.header, H_VERSION) !== LAYOUT_VERSION) return undefined;
    const capacity = Atomics.load(this.header, H_CAPACITY);
    const ways = Atomics.load(this.header, H_WAYS);
    const sets = Atomics.load(this.header, H_SETS);
    const fits = capacity > 0 && ways > 0 && sets > 0 && capacity * SLOT_BYTES <= this.bytes.length && capacity <= ways * sets;
    return fits ? { capacity, ways, sets } : undefined;
  }

  /** The slots of the set a key digest belongs to: [first, end). */
  setOf(keyDigest: Buffer, { capacity, ways, sets }: Geometry): [number, number] {
    const first = (keyDigest.readUInt32LE(0) % sets) * ways;
    return [first, Math.min(first + ways, capacity)];
  }

  sequenceIndex(slot: number): number {
    return (slot * SLOT_BYTES + S_SEQUENCE) / 4;
  }

  keyMatches(slot: number, keyDigest: Buffer): boolean {
    const start = slot * SLOT_BYTES + S_KEY;
    return keyDigest.equals(this.bytes.subarray(start, start + DIGEST_BYTES));
  }

  generationOf(slot: number): number {
    return this.words[(slot * SLOT_BYTES + S_GENERATION) / 4] ?? 0;
  }

  storedAtOf(slot: number): number {
    return this.floats[(slot * SLOT_BYTES + S_STORED_AT) / 8] ?? 0;
  }

  macOf(slot: number): Buffer {
    const start = slot * SLOT_BYTES + S_MAC;
    return Buffer.from(this.bytes.subarray(start, start + DIGEST_BYTES)); // a copy
  }

  get generation(): number {
    return Atomics.load(this.header, H_GENERATION);
  }

  get floor(): number {
    return Atomics.load(this.header, H_FLOOR);
  }

  get lifetimeMs(): number {
    return this.headerF64[H_LIFETIME_F64] ?? 0;
  }
}

export interface TableCounters {
  readonly hits: number;
  readonly misses: number;
}

/** What readers and the writer share: lookups and the counters. */
class TableAccess {
  protected readonly views: TableViews;
  private doubts = 0;

  constructor(section: TableSection) {
    this.views = new TableViews(section);
  }

  /** The generation now: read it before a check; a fill is refused after a later flush. */
  get generation(): number {
    return this.views.generation;
  }

  /**
   * A consistent copy of the live entry for a key digest, or undefined when there is none,
   * it is stale (flushed or expired at `now`), or the read was in doubt.
   */
  find(keyDigest: Buffer, now: number): SlotCopy | undefined {
    const views = this.views;
    const geometry = views.geometry();
    if (!geometry) return undefined;
    const [first, end] = views.setOf(keyDigest, geometry);
    for (let slot = first; slot < end; slot++) {
      const sequence = views.sequenceIndex(slot);
      const before = Atomics.load(views.words, sequence);
      if ((before & 1) !== 0) return this.inDoubt(); // being written: it may be this key's entry
      if (!views.keyMatches(slot, keyDigest)) {
        if (Atomics.load(views.words, sequence) !== before) return this.inDoubt();
        continue;
      }
      const copy = { generation: views.generationOf(slot), storedAt: views.storedAtOf(slot), mac: views.macOf(slot) };
      if (Atomics.load(views.words, sequence) !== before) return this.inDoubt();
      if (copy.generation < views.floor || copy.generation < FIRST_GENERATION) return undefined;
      if (!(now - copy.storedAt < views.lifetimeMs)) return undefined;
      return copy;
    }
    return undefined;
  }

  /** This process's lookups that met a write in progress and missed (tests, diagnostics). */
  get readsInDoubt(): number {
    return this.doubts;
  }

  private inDoubt(): undefined {
    this.doubts++;
    return undefined;
  }

  countHit(): void {
    Atomics.add(this.views.counters, H_HITS_I64, 1n);
  }

  countMiss(): void {
    Atomics.add(this.views.counters, H_MISSES_I64, 1n);
  }

  counters(): TableCounters {
    return {
      hits: Number(Atomics.load(this.views.counters, H_HITS_I64)),
      misses: Number(Atomics.load(this.views.counters, H_MISSES_I64)),
    };
  }
}

/** A worker's view: finds entries and counts; it cannot store. */
export class CredentialTableReader extends TableAccess {}

export interface WriterOptions {
  readonly capacity: number;
  readonly lifetimeMs: number;
  /**
   * Test only: called twice in the middle of each write (after the key digest, and between
   * the halves of the MAC), so a test can hold a write open while readers look.
   */
  readonly pauseMidWrite?: () => void;
}

/** The primary's table: the only one that stores, replaces and clears slots. */
export class CredentialTableWriter extends TableAccess {
  readonly capacity: number;
  private readonly geometry: Geometry;
  /** Writer-local: the order of each slot's last write (eviction takes the lowest). */
  private readonly writtenOrder: Float64Array;
  private writes = 0;
  private readonly pauseMidWrite: (() => void) | undefined;

  /** Section bytes for a table of `capacity` entries. */
  static bytesFor(capacity: number): number {
    return HEADER_BYTES + capacity * SLOT_BYTES;
  }

  /** Formats the section (zero-filled, as a new region is) and claims it as its writer. */
  constructor(section: TableSection, options: WriterOptions) {
    super(section);
    const capacity = Math.floor(options.capacity);
    if (!(capacity >= 1) || CredentialTableWriter.bytesFor(capacity) > section.bytes) {
      throw new Error(`credential table: ${options.capacity} entries do not fit ${section.bytes} bytes`);
    }
    const header = this.views.header;
    if (Atomics.compareExchange(header, H_WRITER_PID, 0, process.pid) !== 0) {
      throw new Error('credential table: the section already has a writer (the primary is its only writer)');
    }
    this.capacity = capacity;
    this.geometry = geometryFor(capacity);
    this.writtenOrder = new Float64Array(capacity);
    this.pauseMidWrite = options.pauseMidWrite;
    Atomics.store(header, H_CAPACITY, this.geometry.capacity);
    Atomics.store(header, H_WAYS, this.geometry.ways);
    Atomics.store(header, H_SETS, this.geometry.sets);
    Atomics.store(header, H_GENERATION, FIRST_GENERATION);
    Atomics.store(header, H_FLOOR, FIRST_GENERATION);
    this.views.headerF64[H_LIFETIME_F64] = options.lifetimeMs;
    Atomics.store(header, H_VERSION, LAYOUT_VERSION); // last: readers start trusting the header here
  }

  /**
   * Stores (or replaces) the entry for a key digest under the current generation; returns
   * its slot. The victim within the key's set: the key's own slot, else an empty, flushed or
   * expired one, else the least recently written.
   */
  store(keyDigest: Buffer, mac: Buffer, now: number): number {
    if (keyDigest.length !== DIGEST_BYTES || mac.length !== DIGEST_BYTES) throw new Error('credential table: digests are 32 bytes');
    const slot = this.slotFor(keyDigest, now);
    this.write(slot, keyDigest, mac, this.generation, now);
    this.writtenOrder[slot] = ++this.writes;
    return slot;
  }

  /** The slot holding a live entry for the key digest, if any (the writer reads its own writes). */
  slotOf(keyDigest: Buffer, now: number): number | undefined {
    const [first, end] = this.views.setOf(keyDigest, this.geometry);
    for (let slot = first; slot < end; slot++) {
      if (this.views.keyMatches(slot, keyDigest)) return this.isLive(slot, now) ? slot : undefined;
    }
    return undefined;
  }

  /** Empties one slot (readers see it gone at once, or see a write in progress and miss). */
  clear(slot: number): void {
    this.write(slot, Buffer.alloc(DIGEST_BYTES), Buffer.alloc(DIGEST_BYTES), 0, 0);
    this.writtenOrder[slot] = 0;
  }

  /** A new generation: fills computed before it are refused by the cache. Returns it. */
  nextGeneration(): number {
    return Atomics.add(this.views.header, H_GENERATION, 1) + 1;
  }

  /**
   * Invalidates every entry at once (one store of the floor), then clears the slots.
   * Returns the new generation.
   */
  clearAll(): number {
    const generation = this.nextGeneration();
    Atomics.store(this.views.header, H_FLOOR, generation);
    for (let slot = 0; slot < this.capacity; slot++) {
      if (this.writtenOrder[slot] !== 0) this.clear(slot);
    }
    return generation;
  }

  isLive(slot: number, now: number): boolean {
    const generation = this.views.generationOf(slot);
    return generation >= FIRST_GENERATION && generation >= this.views.floor && now - this.views.storedAtOf(slot) < this.views.lifetimeMs;
  }

  /** Does the slot hold this key digest (live or not)? */
  holds(slot: number, keyDigest: Buffer): boolean {
    return this.views.keyMatches(slot, keyDigest);
  }

  /** Number of live entries at `now` (for status; a scan of the table). */
  liveEntries(now: number): number {
    let live = 0;
    for (let slot = 0; slot < this.capacity; slot++) if (this.isLive(slot, now)) live++;
    return live;
  }

  /** The slots of a key digest's set (tests: to build keys that collide). */
  setOf(keyDigest: Buffer): [number, number] {
    return this.views.setOf(keyDigest, this.geometry);
  }

  private slotFor(keyDigest: Buffer, now: number): number {
    const [first, end] = this.views.setOf(keyDigest, this.geometry);
    let victim = first;
    for (let slot = first; slot < end; slot++) {
      if (this.views.keyMatches(slot, keyDigest)) return slot;
    }
    for (let slot = first; slot < end; slot++) {
      if (!this.isLive(slot, now)) return slot;
      if ((this.writtenOrder[slot] ?? 0) < (this.writtenOrder[victim] ?? 0)) victim = slot;
    }
    return victim;
  }

  private write(slot: number, keyDigest: Buffer, mac: Buffer, generation: number, storedAt: number): void {
    const views = this.views;
    const sequence = views.sequenceIndex(slot);
    const base = slot * SLOT_BYTES;
    const start = Atomics.load(views.words, sequence);
    Atomics.store(views.words, sequence, (start + 1) | 0); // odd: readers distrust the slot
    views.words[(base + S_GENERATION) / 4] = generation;
    views.floats[(base + S_STORED_AT) / 8] = storedAt;
    views.bytes.set(keyDigest, base + S_KEY);
    // Test hook (no-op in the daemon): these are the moments a reader without the seqlock
    // would take the new key with the old MAC, or with half of each.
    this.pauseMidWrite?.();
    const half = DIGEST_BYTES / 2;
    views.bytes.set(mac.subarray(0, half), base + S_MAC);
    this.pauseMidWrite?.();
    views.bytes.set(mac.subarray(half), base + S_MAC + half);
    Atomics.store(views.words, sequence, (start + 2) | 0); // even again: a complete entry
  }
}
