/** Small load helpers for the robustness tests: bounded concurrency and a seeded PRNG. */

/** Runs task(0..count-1) with at most `concurrency` in flight; resolves with the results in order. */
export async function runConcurrently<T>(count: number, concurrency: number, task: (index: number) => Promise<T>): Promise<T[]> {
  const results: T[] = new Array(count);
  let next = 0;
  const lane = async (): Promise<void> => {
    while (next < count) {
      const index = next++;
      results[index] = await task(index);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, lane));
  return results;
}

/** A seeded PRNG (mulberry32), so a failing fuzz run can be replayed from its seed. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Splits a server's bytes into reply frames; throws on trailing garbage. */
export function replyFrames(bytes: Buffer): string[] {
  const frames: string[] = [];
  let offset = 0;
  while (offset < bytes.length) {
    if (bytes.length - offset < 2) throw new Error(`truncated reply: ${bytes.toString('hex')}`);
    const length = bytes.readUInt16BE(offset);
    if (bytes.length - offset - 2 < length) throw new Error(`truncated reply: ${bytes.toString('hex')}`);
    frames.push(bytes.subarray(offset + 2, offset + 2 + length).toString('latin1'));
    offset += 2 + length;
  }
  return frames;
}
