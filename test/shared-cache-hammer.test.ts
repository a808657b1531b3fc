/**
 * The credential table under fire from real processes: this process is the writer and
 * rewrites a small table in a tight loop (two passwords in turn for each key, more keys than
 * slots so slots pass from key to key, a flush now and then, each write held open halfway
 * through its digests), while four child `node` processes map the same memfd and look up
 * for ~2 s. No child may ever get a hit for a password the writer never stored for that key,
 * nor a consistent copy of a slot mixing two writes.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { setImmediate as yieldToEvents } from 'node:timers/promises';
import { RegionLayout, SharedRegion } from '../src/native/shared-memory.js';
import { CredentialCache, cacheSectionBytes } from '../src/server/credential-cache.js';
import { KeyedDigest } from '../src/server/keyed-digest.js';
import { hammerKey, hammerPassword, type HammerLayout } from './helpers/shared-cache-hammer-plan.js';

const CHILD_JS = fileURLToPath(new URL('./helpers/shared-cache-child.js', import.meta.url));
const READERS = 4;
const LOOKUP_MS = 2_000;
/** 1.5 KB → 16 entries, one set: with 24 keys every write evicts, so slots change keys all the time. */
const TABLE_KB = 1.5;
const USERS = 24;
/** How long each write is held open between the halves of its digests: a window readers must fall into. */
const MID_WRITE_PAUSE_NS = 20_000n;
/** The writer hands the event loop back this often (to collect the children's output). */
const WRITER_SLICE_MS = 10;
const FLUSH_EVERY_ROUNDS = 50;
/** Children must be done well within this (they look up for LOOKUP_MS). */
const CHILD_DEADLINE_MS = 30_000;

interface ChildCounts {
  lookups: number;
  hits: number;
  mismatches: number;
  wrongHits: number;
  slotCopies: number;
  torn: number;
  readsInDoubt: number;
}

function busyWait(ns: bigint): void {
  const until = process.hrtime.bigint() + ns;
  while (process.hrtime.bigint() < until);
}

function runReader(region: SharedRegion, layout: HammerLayout): { child: ChildProcess; done: Promise<ChildCounts> } {
  // the memfd becomes the child's fd 3 (dup2 clears close-on-exec); the key is in the region, not in argv
  const child = spawn(process.execPath, [CHILD_JS, JSON.stringify(layout)], { stdio: ['ignore', 'pipe', 'pipe', region.fd] });
  let out = '';
  let err = '';
  child.stdout!.on('data', (chunk: Buffer) => (out += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (err += chunk.toString()));
  const done = new Promise<ChildCounts>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`reader ${child.pid} still running after ${CHILD_DEADLINE_MS} ms`));
    }, CHILD_DEADLINE_MS);
    child.on('exit', (code) => {
      clearTimeout(timer);
      if (code !== 0) reject(new Error(`reader ${child.pid} exited ${code}: ${err}`));
      else resolve(JSON.parse(out) as ChildCounts);
    });
  });
  return { child, done };
}

test('four reader processes never get a wrong hit or a torn entry while the writer rewrites the table', async () => {
  const tableBytes = cacheSectionBytes(TABLE_KB);
  const regionLayout = new RegionLayout().add('key', 32).add('credential-cache', tableBytes);
  const region = SharedRegion.create('saslauthd-test-cache', regionLayout.totalBytes);
  // the per-start key, where the daemon keeps it: in the region, for the readers to copy
  const secret = randomBytes(32);
  secret.copy(Buffer.from(region.buffer, regionLayout.section('key').offset, 32));
  const section = { buffer: region.buffer, ...regionLayout.section('credential-cache') };
  const cache = new CredentialCache({
    sizeKb: TABLE_KB,
    timeoutSeconds: 60,
    section,
    digest: new KeyedDigest(Buffer.from(secret)),
    pauseMidWrite: () => busyWait(MID_WRITE_PAUSE_NS),
  });
  assert.equal(cache.capacity, 16);
  const layout: HammerLayout = { keyOffset: regionLayout.section('key').offset, tableOffset: section.offset, tableBytes, users: USERS, durationMs: LOOKUP_MS };

  const readers = Array.from({ length: READERS }, () => runReader(region, layout));
  try {
    let running = true;
    void Promise.allSettled(readers.map((reader) => reader.done)).then(() => (running = false));
    let rounds = 0;
    let writes = 0;
    while (running) {
      const sliceEnd = Date.now() + WRITER_SLICE_MS;
      while (Date.now() < sliceEnd) {
        const variant = rounds % 2 === 0 ? 'a' : 'b';
        for (let user = 0; user < USERS; user++) {
          cache.remember(hammerKey(user), hammerPassword(user, variant));
          writes++;
        }
        if (++rounds % FLUSH_EVERY_ROUNDS === 0) {
          if (rounds % (2 * FLUSH_EVERY_ROUNDS) === 0) cache.flush();
          else cache.flushUser({ user: Buffer.from('hammer3') });
        }
      }
      await yieldToEvents();
    }
    const counts = await Promise.all(readers.map((reader) => reader.done));
    const total = counts.reduce((sum, c) => ({
      lookups: sum.lookups + c.lookups,
      hits: sum.hits + c.hits,
      mismatches: sum.mismatches + c.mismatches,
      wrongHits: sum.wrongHits + c.wrongHits,
      slotCopies: sum.slotCopies + c.slotCopies,
      torn: sum.torn + c.torn,
      readsInDoubt: sum.readsInDoubt + c.readsInDoubt,
    }));
    console.log(`writer: ${writes} writes in ${rounds} rounds; readers: ${JSON.stringify(counts)}`);
    for (const c of counts) {
      assert.ok(c.lookups > 1000, `each reader looked up (${c.lookups})`);
      assert.ok(c.hits > 0, `each reader had hits (${c.hits})`);
    }
    assert.ok(writes > 1_000, `the writer kept writing (${writes})`);
    assert.ok(total.mismatches > 0 && total.slotCopies > 0);
    assert.ok(total.readsInDoubt > 0, 'readers did meet writes in progress (the race was exercised)');
    assert.equal(total.wrongHits, 0, 'no hit for a password never stored for the key');
    assert.equal(total.torn, 0, 'no consistent copy mixing two writes');
    // the readers' lookups were counted in the shared header, where the primary reads them
    const stats = cache.stats();
    assert.equal(stats.hits, total.hits);
    assert.equal(stats.misses, total.lookups - total.hits);
  } finally {
    for (const { child } of readers) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }
});
