/**
 * Credentials the mechanism refused a moment ago, remembered as a keyed digest of
 * (user, realm, service, client host, password) — never the password. The primary uses it
 * to tell a repeated wrong password from a fresh attempt: repeats are scheduled behind every
 * other request and on at most one worker (see workers/job-queue.ts), so a client hammering a
 * known-wrong password (a misconfigured mail client, a guessing loop) cannot delay anybody
 * else's login. The answer still comes from the mechanism, every time.
 */
import { monotonicMs } from '../runtime/monotonic-clock.js';
import type { CacheKeyParts } from './credential-cache.js';
import { KeyedDigest } from './keyed-digest.js';
import { RecentMemory } from './recent-memory.js';

/** How long a refusal is remembered: long enough to span a client's retry loop. */
export const REFUSAL_MEMORY_MS = 10 * 60_000;
/** Bound on remembered refusals; the oldest is forgotten first. */
const CAPACITY = 10_000;

export class RepeatFailures {
  private readonly refused: RecentMemory;
  private readonly digest = new KeyedDigest();

  constructor(now: () => number = monotonicMs) {
    this.refused = new RecentMemory(REFUSAL_MEMORY_MS, CAPACITY, now);
  }

  /** Was exactly this attempt refused within the last REFUSAL_MEMORY_MS? */
  isRepeat(parts: CacheKeyParts, password: Buffer): boolean {
    return this.refused.has(this.id(parts, password));
  }

  recordFailure(parts: CacheKeyParts, password: Buffer): void {
    this.refused.note(this.id(parts, password));
  }

  recordSuccess(parts: CacheKeyParts, password: Buffer): void {
    this.refused.forget(this.id(parts, password));
  }

  get size(): number {
    return this.refused.size;
  }

  private id({ user, realm, service, remote }: CacheKeyParts, password: Buffer): string {
    return this.digest.of(user, realm, service, remote ?? Buffer.alloc(0), password);
  }
}
