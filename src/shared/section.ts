/**
 * A section of memory a shared table lives in: the ArrayBuffer over the whole shared region
 * (src/native/shared-memory.ts) and where in it the section starts. Without workers (-n 0)
 * or in unit tests, `privateSection` gives the same shape over ordinary process memory.
 */
export interface SharedSection {
  readonly buffer: ArrayBuffer;
  /** Byte offset of the section in `buffer`: a multiple of 8 (BigInt64Array, Float64Array views). */
  readonly offset: number;
  readonly bytes: number;
}

/** Zero-filled memory seen by this process alone. */
export function privateSection(bytes: number): SharedSection {
  return { buffer: new ArrayBuffer(bytes), offset: 0, bytes };
}

/** Throws when `section` cannot hold a table of `needed` bytes (a layout bug, found at start). */
export function checkSection(section: SharedSection, needed: number, what: string): void {
  if (section.offset % 8 !== 0) throw new Error(`${what}: section offset ${section.offset} is not 8-byte aligned`);
  if (section.bytes < needed || section.offset + needed > section.buffer.byteLength) {
    throw new Error(`${what}: needs ${needed} bytes, the section has ${section.bytes}`);
  }
}
