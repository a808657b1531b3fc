/**
 * Names for credentials that reveal nothing: HMAC-SHA256 under a random key made at each
 * start, over length-prefixed parts (so `ab`+`c` and `a`+`bc` differ). The primary keeps
 * these, never a password, to recognise a login, a password or a pair it has seen refused.
 */
import { createHmac, randomBytes } from 'node:crypto';

/** Bytes of the random key made at each start. */
const KEY_BYTES = 32;

export class KeyedDigest {
  private readonly key: Buffer;

  constructor(key: Buffer = randomBytes(KEY_BYTES)) {
    this.key = key;
  }

  /** The digest of the parts, as a compact map key. */
  of(...parts: readonly Buffer[]): string {
    return this.bytesOf(...parts).toString('base64');
  }

  /** The digest of the parts, as bytes (for a constant-time comparison). */
  bytesOf(...parts: readonly Buffer[]): Buffer {
    const mac = createHmac('sha256', this.key);
    const length = Buffer.alloc(4);
    for (const part of parts) {
      length.writeUInt32BE(part.length);
      mac.update(length).update(part);
    }
    return mac.digest();
  }
}
