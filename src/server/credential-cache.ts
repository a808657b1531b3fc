/**
 * The credential cache (`-c`, `-s`, `-t`), one for the whole daemon: its entries live in a
 * section of the memory shared with the workers (src/shared/credential-table.ts, which
 * explains the concurrency design); this class is the primary's side, the table's only
 * writer. Workers read it with CacheReader (cache-reader.ts) and report their fills here.
 *
 * Semantics kept from the original: positive entries only; key (login after `-r`, realm,
 * service — and the client host when a client sends one); absolute lifetime from the last
 * successful mechanism check (hits do not extend it); a hit answers plain `OK`.
 * Improvements: the value is HMAC-SHA256 of the password under a random key made at start
 * (never the password, never an unsalted digest, nothing on disk); a failed mechanism check
 * removes the key's entry, so after a password change the old password stops working at its
 * first failure instead of up to 8 hours later; SIGHUP empties it, and a check that was
 * running across the flush does not refill it (generation).
 */
import { privateSection } from '../shared/section.js';
import { systemMonotonicMs } from '../runtime/monotonic-clock.js';
import { CredentialTableWriter, type TableSection } from '../shared/credential-table.js';
import { CacheDigests, type CacheKeyParts } from './cache-digests.js';
import { lookupDigests, type LookupResult } from './cache-reader.js';
import { KeyedDigest } from './keyed-digest.js';

export type { CacheKeyParts } from './cache-digests.js';
export type { LookupResult } from './cache-reader.js';

/** Per-entry budget used to turn `-s` kilobytes into a number of entries: the original's bucket size. */
const ENTRY_BUDGET_BYTES = 96;
/** The original's default table: 1711 slots × 6 buckets. */
export const DEFAULT_CACHE_ENTRIES = 1711 * 6;

/** Entries for `-s` kilobytes (undefined: the default). */
export function cacheCapacityFor(sizeKb: number | undefined): number {
  return sizeKb === undefined ? DEFAULT_CACHE_ENTRIES : Math.max(1, Math.floor((sizeKb * 1024) / ENTRY_BUDGET_BYTES));
}

/** Bytes of shared memory the table for `-s` kilobytes needs (for the region layout). */
export function cacheSectionBytes(sizeKb: number | undefined): number {
  return CredentialTableWriter.bytesFor(cacheCapacityFor(sizeKb));
}

/** A section in this process's memory only (a cache no worker reads: tests, or before the region is wired). */
export function privateCacheSection(sizeKb: number | undefined): TableSection {
  return privateSection(cacheSectionBytes(sizeKb));
}

export interface CacheOptions {
  /** `-s`, kilobytes; undefined = the default number of entries. */
  readonly sizeKb: number | undefined;
  /** `-t` */
  readonly timeoutSeconds: number;
  /** Where the entries live: at least cacheSectionBytes(sizeKb), zero-filled. */
  readonly section: TableSection;
  /** The per-start key, shared with the workers (their CacheReader must use the same). */
  readonly digest: KeyedDigest;
  /** Clock in milliseconds, the workers' too (tests pass their own). */
  readonly now?: () => number;
  /** Test only: see WriterOptions.pauseMidWrite. */
  readonly pauseMidWrite?: () => void;
}

/** Whose entry a slot holds, for flushUser(): kept by the primary in its own memory. */
export interface EntryOwner {
  readonly user: Buffer;
  readonly realm: Buffer;
  readonly service: Buffer;
}

/**
 * Which entries `saslauthdctl flush --user` removes: those of `user` (as the mechanism saw
 * it: with `-r`, `login@realm` matches too), optionally only for one realm and one service.
 */
export interface UserFilter {
  readonly user: Buffer;
  readonly realm?: Buffer | undefined;
  readonly service?: Buffer | undefined;
}

export interface CacheStats {
  readonly entries: number;
  readonly capacity: number;
  readonly hits: number;
  readonly misses: number;
}

export class CredentialCache {
  readonly capacity: number;
  private readonly table: CredentialTableWriter;
  private readonly digests: CacheDigests;
  private readonly now: () => number;
  /** By slot: whose entry it is (copies; undefined = never written or cleared). */
  private readonly owners: (EntryOwner | undefined)[];

  constructor(options: CacheOptions) {
    this.now = options.now ?? systemMonotonicMs;
    this.table = new CredentialTableWriter(options.section, {
      capacity: cacheCapacityFor(options.sizeKb),
      lifetimeMs: options.timeoutSeconds * 1000,
      pauseMidWrite: options.pauseMidWrite,
    });
    this.capacity = this.table.capacity;
    this.digests = new CacheDigests(options.digest);
    this.owners = new Array<EntryOwner | undefined>(this.capacity);
  }

  /** Does this password match a live entry for the key? */
  lookup(parts: CacheKeyParts, password: Buffer): LookupResult {
    const keyDigest = this.digests.keyDigestOf(parts);
    if (keyDigest === undefined) return 'uncacheable';
    const now = this.now();
    const found = lookupDigests(this.table, keyDigest, () => this.digests.macOf(password), now);
    if (found === 'miss') this.dropExpired(keyDigest, now);
    return found;
  }

  /**
   * The cache's generation: read it before a mechanism check starts and pass it to
   * remember(), which ignores a result from before the latest flush (a worker still running
   * the PAM configuration that SIGHUP replaced).
   */
  get generation(): number {
    return this.table.generation;
  }

  /** After a successful mechanism check: (re)store the entry, evicting the oldest of its set if full. */
  remember(parts: CacheKeyParts, password: Buffer, generation: number = this.generation): void {
    const keyDigest = this.digests.keyDigestOf(parts);
    if (keyDigest === undefined) return;
    this.rememberDigests(keyDigest, this.digests.macOf(password), generation, parts);
  }

  /** A fill a worker reported: its digests, the generation it read before its check, and whose key it is. */
  rememberDigests(keyDigest: Buffer, mac: Buffer, generation: number, owner: EntryOwner): void {
    if (generation !== this.generation) return;
    const slot = this.table.store(keyDigest, mac, this.now());
    // Copies: the parts may be views of a connection's buffer that is reused.
    this.owners[slot] = { user: Buffer.from(owner.user), realm: Buffer.from(owner.realm), service: Buffer.from(owner.service) };
  }

  /** After a failed mechanism check: the old credentials must not keep working. */
  forget(parts: CacheKeyParts): void {
    const keyDigest = this.digests.keyDigestOf(parts);
    if (keyDigest === undefined) return;
    const slot = this.table.slotOf(keyDigest, this.now());
    if (slot !== undefined) this.clear(slot);
  }

  /** Empties the cache; returns how many entries were dropped. */
  flush(): number {
    const dropped = this.table.liveEntries(this.now());
    this.table.clearAll();
    this.owners.fill(undefined);
    return dropped;
  }

  /**
   * Removes one user's entries (every client host); returns how many. Like flush(), a check
   * already running does not put its result back.
   */
  flushUser(filter: UserFilter): number {
    this.table.nextGeneration();
    const now = this.now();
    let dropped = 0;
    this.owners.forEach((owner, slot) => {
      if (!owner || !entryMatches(owner, filter)) return;
      if (this.table.isLive(slot, now)) dropped++;
      this.clear(slot);
    });
    return dropped;
  }

  stats(): CacheStats {
    return { entries: this.table.liveEntries(this.now()), capacity: this.capacity, ...this.table.counters() };
  }

  /** The key's digest as a worker computes it (undefined = uncacheable). */
  keyDigestOf(parts: CacheKeyParts): Buffer | undefined {
    return this.digests.keyDigestOf(parts);
  }

  /** The password's MAC as a worker computes it. */
  macOf(password: Buffer): Buffer {
    return this.digests.macOf(password);
  }

  /** Which slots a key's set covers (tests: to build keys that share a set). */
  setOf(parts: CacheKeyParts): [number, number] | undefined {
    const keyDigest = this.digests.keyDigestOf(parts);
    return keyDigest && this.table.setOf(keyDigest);
  }

  private clear(slot: number): void {
    this.table.clear(slot);
    this.owners[slot] = undefined;
  }

  /** An expired entry the primary meets is cleared (workers cannot; eviction reuses it anyway). */
  private dropExpired(keyDigest: Buffer, now: number): void {
    const [first, end] = this.table.setOf(keyDigest);
    for (let slot = first; slot < end; slot++) {
      if (this.owners[slot] && !this.table.isLive(slot, now) && this.table.holds(slot, keyDigest)) this.clear(slot);
    }
  }
}

function entryMatches(entry: EntryOwner, { user, realm, service }: UserFilter): boolean {
  if (realm !== undefined && !entry.realm.equals(realm)) return false;
  if (service !== undefined && !entry.service.equals(service)) return false;
  if (entry.user.equals(user)) return true;
  // -r: the entry's user is login@realm
  const suffix = entry.realm.length > 0 ? Buffer.concat([Buffer.from('@'), entry.realm]) : undefined;
  return suffix !== undefined && entry.user.length === user.length + suffix.length && entry.user.subarray(0, user.length).equals(user) && entry.user.subarray(user.length).equals(suffix);
}
