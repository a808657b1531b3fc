/**
 * What the credential cache stores instead of credentials: the key digest of (login after
 * `-r`, realm, client host, service) and the MAC of the password, both HMAC-SHA256 under the
 * per-start key (keyed-digest.ts) that the primary and its workers share. The primary and
 * the workers compute them the same way, so a worker can look up and report a fill.
 */
import { KeyedDigest } from './keyed-digest.js';

/**
 * Keys longer than this are not cached (the original's limit was 60 bytes, which left long
 * logins uncached too); kept from the in-memory cache so caching decisions do not change.
 */
const MAX_KEY_BYTES = 512;
/** Domain labels: a key digest can never equal a password MAC, nor another table's digest. */
const KEY_LABEL = Buffer.from('credential-cache key');
const MAC_LABEL = Buffer.from('credential-cache password');

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

export class CacheDigests {
  constructor(private readonly digest: KeyedDigest) {}

  /** The key's digest; undefined when the key is too long to cache. */
  keyDigestOf({ user, realm, service, remote }: CacheKeyParts): Buffer | undefined {
    const host = remote ?? Buffer.alloc(0);
    if (user.length + realm.length + service.length + host.length + 3 > MAX_KEY_BYTES) return undefined;
    // KeyedDigest length-prefixes each part: ('bo', 'ba') and ('bob', 'a') differ
    return this.digest.bytesOf(KEY_LABEL, user, realm, host, service);
  }

  /** The password's MAC: what an entry holds instead of the password. */
  macOf(password: Buffer): Buffer {
    return this.digest.bytesOf(MAC_LABEL, password);
  }
}
