/**
 * Credentials the mechanism refused a moment ago, remembered as a keyed MAC of
 * (user, realm, service, password) under a random key made at start — never the password.
 * The primary uses it to tell a repeated wrong password from a fresh attempt: repeats are
 * scheduled behind every other request and on at most one worker (see pool.ts), so a client
 * hammering a known-wrong password (a misconfigured mail client, a guessing loop) cannot
 * delay anybody else's login. The answer still comes from the mechanism, every time.
 */
import { monotonicMs } from './monotonic-clock.js';
import { createHmac, randomBytes } from 'node:crypto';
import type { CacheKeyParts } from './credential-cache.js';

/** How long a refusal is remembered: long enough to span a client's retry loop. */
const MEMORY_MS = 10 * 60_000;
/** Bound on remembered refusals; the oldest is forgotten first. */
const CAPACITY = 10_000;
/** Bytes of the random MAC key made at each start. */
const KEY_BYTES = 32;

export class RepeatFailures {
  private readonly refused = new Map<string, number>();
  private readonly key = randomBytes(KEY_BYTES);

  constructor(private readonly now: () => number = monotonicMs) {}

  /** Was exactly this attempt refused within the last MEMORY_MS? */
  isRepeat(parts: CacheKeyParts, password: Buffer): boolean {
    const id = this.id(parts, password);
    const at = this.refused.get(id);
    if (at === undefined) return false;
    if (this.now() - at < MEMORY_MS) return true;
    this.refused.delete(id);
    return false;
  }

  recordFailure(parts: CacheKeyParts, password: Buffer): void {
    const id = this.id(parts, password);
    this.refused.delete(id); // re-inserted last: Map order is oldest first
    if (this.refused.size >= CAPACITY) {
      const oldest = this.refused.keys().next().value;
      if (oldest !== undefined) this.refused.delete(oldest);
    }
    this.refused.set(id, this.now());
  }

  recordSuccess(parts: CacheKeyParts, password: Buffer): void {
    this.refused.delete(this.id(parts, password));
  }

  get size(): number {
    return this.refused.size;
  }

  private id({ user, realm, service, remote }: CacheKeyParts, password: Buffer): string {
    const mac = createHmac('sha256', this.key);
    for (const part of [user, realm, service, remote ?? Buffer.alloc(0), password]) {
      const length = Buffer.alloc(4);
      length.writeUInt32BE(part.length);
      mac.update(length).update(part);
    }
    return mac.digest('base64');
  }
}
