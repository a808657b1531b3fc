/**
 * A worker's side of the credential cache: looks up (key, password) in the table the
 * primary writes in shared memory, and counts the hit or miss there. It never stores: a
 * worker whose mechanism check succeeds reports the fill (keyDigestOf + macOf + the
 * generation read before the check) to the primary, the table's only writer.
 */
import { timingSafeEqual } from 'node:crypto';
import { systemMonotonicMs } from '../runtime/monotonic-clock.js';
import { CredentialTableReader, type TableSection } from '../shared/credential-table.js';
import { CacheDigests, type CacheKeyParts } from './cache-digests.js';
import type { KeyedDigest } from './keyed-digest.js';

export type LookupResult = 'hit' | 'miss' | 'mismatch' | 'uncacheable';

export class CacheReader {
  private readonly table: CredentialTableReader;
  private readonly digests: CacheDigests;

  /** `now` must be the writer's clock: systemMonotonicMs (the same in every process). */
  constructor(section: TableSection, digest: KeyedDigest, private readonly now: () => number = systemMonotonicMs) {
    this.table = new CredentialTableReader(section);
    this.digests = new CacheDigests(digest);
  }

  /** Read before a mechanism check; reported with a fill so the primary can refuse one from before a flush. */
  get generation(): number {
    return this.table.generation;
  }

  lookup(parts: CacheKeyParts, password: Buffer): LookupResult {
    const keyDigest = this.digests.keyDigestOf(parts);
    if (keyDigest === undefined) return 'uncacheable';
    return lookupDigests(this.table, keyDigest, () => this.digests.macOf(password), this.now());
  }

  /** Lookups of this process that met a write in progress (and missed). */
  get readsInDoubt(): number {
    return this.table.readsInDoubt;
  }

  keyDigestOf(parts: CacheKeyParts): Buffer | undefined {
    return this.digests.keyDigestOf(parts);
  }

  macOf(password: Buffer): Buffer {
    return this.digests.macOf(password);
  }
}

/**
 * A lookup by digests, counted in the table (shared by the primary's cache and the workers');
 * the password's MAC is computed only when there is an entry to compare it with.
 */
export function lookupDigests(
  table: Pick<CredentialTableReader, 'find' | 'countHit' | 'countMiss'>,
  keyDigest: Buffer,
  macOfPassword: () => Buffer,
  now: number,
): LookupResult {
  const entry = table.find(keyDigest, now);
  if (entry && timingSafeEqual(entry.mac, macOfPassword())) {
    table.countHit();
    return 'hit';
  }
  table.countMiss();
  return entry ? 'mismatch' : 'miss';
}
