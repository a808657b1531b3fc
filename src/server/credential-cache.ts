/**
 * The credential cache (`-c`, `-s`, `-t`), one for the whole daemon, in the primary.
 *
 * Semantics kept from the original: positive entries only; key (login after `-r`, realm,
 * service — and the client host when a client sends one); absolute lifetime from the last successful mechanism check (hits do not
 * extend it); a hit answers plain `OK`.
 * Improvements: the value is HMAC-SHA256 of the password under a random key made at start
 * (never the password, never an unsalted digest, nothing on disk); a failed mechanism check
 * removes the key's entry, so after a password change the old password stops working at its
 * first failure instead of up to 8 hours later; SIGHUP empties it, and a check that was
 * running across the flush does not refill it (generation).
 */
import { monotonicMs } from '../runtime/monotonic-clock.js';
import { timingSafeEqual } from 'node:crypto';
import { KeyedDigest } from './keyed-digest.js';

/** Per-entry budget used to turn `-s` kilobytes into a number of entries: the original's bucket size. */
const ENTRY_BUDGET_BYTES = 96;
/** The original's default table: 1711 slots × 6 buckets. */
export const DEFAULT_CACHE_ENTRIES = 1711 * 6;
/**
 * Keys longer than this are not cached: it bounds an entry's memory so that `-s` means
 * something (the original's limit was 60 bytes, which left long logins uncached too).
 */
const MAX_KEY_BYTES = 512;

export interface CacheOptions {
  /** `-s`, kilobytes; undefined = the default number of entries. */
  readonly sizeKb: number | undefined;
  /** `-t` */
  readonly timeoutSeconds: number;
  /** Clock in milliseconds (tests pass their own). */
  readonly now?: () => number;
}

export interface CacheKeyParts {
  readonly user: Buffer;
  readonly realm: Buffer;
  readonly service: Buffer;
  /**
   * Client host (5th field), when sent: PAM sees it as PAM_RHOST and may decide by it
   * (pam_access), so a success from one host says nothing about another.
   */
  readonly remote?: Buffer;
}

interface Entry {
  readonly mac: Buffer;
  readonly storedAt: number;
  /** Whose entry it is, for flushUser(). */
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

export type LookupResult = 'hit' | 'miss' | 'mismatch' | 'uncacheable';

export interface CacheStats {
  readonly entries: number;
  readonly capacity: number;
  readonly hits: number;
  readonly misses: number;
}

export class CredentialCache {
  readonly capacity: number;
  private readonly entries = new Map<string, Entry>();
  /** HMAC-SHA256 under a random key made at each start (keyed-digest.ts). */
  private readonly digest = new KeyedDigest();
  private readonly lifetimeMs: number;
  private readonly now: () => number;
  private counters = { hits: 0, misses: 0 };
  /** Bumped by every flush: a check that started before a flush must not fill the cache after it. */
  private flushes = 0;

  constructor(options: CacheOptions) {
    this.capacity =
      options.sizeKb === undefined
        ? DEFAULT_CACHE_ENTRIES
        : Math.max(1, Math.floor((options.sizeKb * 1024) / ENTRY_BUDGET_BYTES));
    this.lifetimeMs = options.timeoutSeconds * 1000;
    this.now = options.now ?? monotonicMs;
  }

  /** Does this password match a live entry for the key? */
  lookup(parts: CacheKeyParts, password: Buffer): LookupResult {
    const key = cacheKey(parts);
    if (key === undefined) return 'uncacheable';
    const entry = this.entries.get(key);
    if (!entry || this.now() - entry.storedAt >= this.lifetimeMs) {
      if (entry) this.entries.delete(key);
      this.counters.misses++;
      return 'miss';
    }
    if (timingSafeEqual(entry.mac, this.mac(password))) {
      this.counters.hits++;
      return 'hit';
    }
    this.counters.misses++;
    return 'mismatch';
  }

  /**
   * The cache's generation: read it before a mechanism check starts and pass it to
   * remember(), which ignores a result from before the latest flush (a worker still running
   * the PAM configuration that SIGHUP replaced).
   */
  get generation(): number {
    return this.flushes;
  }

  /** After a successful mechanism check: (re)store the entry, evicting the oldest if full. */
  remember(parts: CacheKeyParts, password: Buffer, generation: number = this.flushes): void {
    if (generation !== this.flushes) return;
    const key = cacheKey(parts);
    if (key === undefined) return;
    this.entries.delete(key); // re-inserted last: Map order is storage order, oldest first
    if (this.entries.size >= this.capacity) {
      const oldest = this.entries.keys().next().value;
      if (oldest !== undefined) this.entries.delete(oldest);
    }
    // Copies: the parts may be views of a connection's buffer that is reused.
    const [user, realm, service] = [Buffer.from(parts.user), Buffer.from(parts.realm), Buffer.from(parts.service)];
    this.entries.set(key, { mac: this.mac(password), storedAt: this.now(), user, realm, service });
  }

  /** After a failed mechanism check: the old credentials must not keep working. */
  forget(parts: CacheKeyParts): void {
    const key = cacheKey(parts);
    if (key !== undefined) this.entries.delete(key);
  }

  /** Empties the cache; returns how many entries were dropped. */
  flush(): number {
    this.flushes++;
    const dropped = this.entries.size;
    this.entries.clear();
    return dropped;
  }

  /**
   * Removes one user's entries (every client host); returns how many. Like flush(), a check
   * already running does not put its result back.
   */
  flushUser(filter: UserFilter): number {
    this.flushes++;
    let dropped = 0;
    for (const [key, entry] of this.entries) {
      if (!entryMatches(entry, filter)) continue;
      this.entries.delete(key);
      dropped++;
    }
    return dropped;
  }

  stats(): CacheStats {
    return { entries: this.entries.size, capacity: this.capacity, ...this.counters };
  }

  private mac(password: Buffer): Buffer {
    return this.digest.bytesOf(password);
  }
}

function entryMatches(entry: Entry, { user, realm, service }: UserFilter): boolean {
  if (realm !== undefined && !entry.realm.equals(realm)) return false;
  if (service !== undefined && !entry.service.equals(service)) return false;
  if (entry.user.equals(user)) return true;
  // -r: the entry's user is login@realm
  const suffix = entry.realm.length > 0 ? Buffer.concat([Buffer.from('@'), entry.realm]) : undefined;
  return suffix !== undefined && entry.user.length === user.length + suffix.length && entry.user.subarray(0, user.length).equals(user) && entry.user.subarray(user.length).equals(suffix);
}

/** An unambiguous map key: each part length-prefixed; undefined when too long to cache. */
function cacheKey({ user, realm, service, remote }: CacheKeyParts): string | undefined {
  const host = remote ?? Buffer.alloc(0);
  if (user.length + realm.length + service.length + host.length + 3 > MAX_KEY_BYTES) return undefined;
  const field = (bytes: Buffer): string => `${bytes.length}:${bytes.toString('latin1')}`;
  return `${field(user)}${field(realm)}${field(host)}${service.toString('latin1')}`;
}
