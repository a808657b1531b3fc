/** The credential cache on its own, with a hand-driven clock: the primary's writer and a worker's reader on one section. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { inspect } from 'node:util';
import { CredentialCache, DEFAULT_CACHE_ENTRIES, privateCacheSection } from '../src/server/credential-cache.js';
import { CacheReader } from '../src/server/cache-reader.js';
import { KeyedDigest } from '../src/server/keyed-digest.js';
import { WAYS } from '../src/shared/credential-table.js';

const key = (user: string, realm = '', service = 'imap') => ({
  user: Buffer.from(user),
  realm: Buffer.from(realm),
  service: Buffer.from(service),
});
const pw = (text: string) => Buffer.from(text);

function cacheAt(options: { sizeKb?: number; timeoutSeconds?: number; pauseMidWrite?: () => void } = {}) {
  const clock = { now: 1_000_000 };
  const section = privateCacheSection(options.sizeKb);
  const digest = new KeyedDigest();
  const cache = new CredentialCache({
    sizeKb: options.sizeKb,
    timeoutSeconds: options.timeoutSeconds ?? 60,
    section,
    digest,
    now: () => clock.now,
    ...(options.pauseMidWrite ? { pauseMidWrite: options.pauseMidWrite } : {}),
  });
  /** A worker's view of the same table (same section, key and clock). */
  const reader = new CacheReader(section, digest, () => clock.now);
  const rawBytes = () => Buffer.from(section.buffer, section.offset, section.bytes);
  return { cache, clock, reader, rawBytes };
}

test('miss, then hit after a successful check; another password is a mismatch', () => {
  const { cache } = cacheAt();
  assert.equal(cache.lookup(key('bob'), pw('Right-pass')), 'miss');
  cache.remember(key('bob'), pw('Right-pass'));
  assert.equal(cache.lookup(key('bob'), pw('Right-pass')), 'hit');
  assert.equal(cache.lookup(key('bob'), pw('Right-pasS')), 'mismatch');
  assert.deepEqual(cache.stats(), { entries: 1, capacity: DEFAULT_CACHE_ENTRIES, hits: 1, misses: 2 });
});

test('the key is (user, realm, service): each part separates entries, unambiguously', () => {
  const { cache } = cacheAt();
  cache.remember(key('bob', 'a', 'imap'), pw('p1-secret'));
  assert.equal(cache.lookup(key('bob', 'b', 'imap'), pw('p1-secret')), 'miss');
  assert.equal(cache.lookup(key('bob', 'a', 'smtp'), pw('p1-secret')), 'miss');
  assert.equal(cache.lookup(key('bo', 'ba', 'imap'), pw('p1-secret')), 'miss');
  assert.equal(cache.lookup(key('boba', '', 'imap'), pw('p1-secret')), 'miss');
  assert.equal(cache.lookup(key('bob', 'a', 'imap'), pw('p1-secret')), 'hit');
});

test('the lifetime is absolute from the last successful check; hits do not extend it', () => {
  const { cache, clock } = cacheAt({ timeoutSeconds: 10 });
  cache.remember(key('bob'), pw('Right-pass'));
  clock.now += 9_000;
  assert.equal(cache.lookup(key('bob'), pw('Right-pass')), 'hit');
  clock.now += 1_000;
  assert.equal(cache.lookup(key('bob'), pw('Right-pass')), 'miss');
  assert.equal(cache.stats().entries, 0, 'the expired entry is dropped');
});

test('forget removes the entry (a failed check for the key)', () => {
  const { cache } = cacheAt();
  cache.remember(key('bob'), pw('Old-password'));
  cache.forget(key('bob'));
  assert.equal(cache.lookup(key('bob'), pw('Old-password')), 'miss');
});

test('a new successful password replaces the old one', () => {
  const { cache } = cacheAt();
  cache.remember(key('bob'), pw('Old-password'));
  cache.remember(key('bob'), pw('New-password'));
  assert.equal(cache.lookup(key('bob'), pw('Old-password')), 'mismatch');
  assert.equal(cache.lookup(key('bob'), pw('New-password')), 'hit');
  assert.equal(cache.stats().entries, 1);
});

test('-s bounds the entries (96 bytes each, as the original) and evicts the oldest', () => {
  const { cache, clock } = cacheAt({ sizeKb: 1 });
  assert.equal(cache.capacity, 10);
  for (let i = 0; i < 11; i++) {
    clock.now += 1;
    cache.remember(key(`user${i}`), pw(`password-${i}`));
  }
  assert.equal(cache.stats().entries, 10);
  assert.equal(cache.lookup(key('user0'), pw('password-0')), 'miss');
  for (let i = 1; i < 11; i++) assert.equal(cache.lookup(key(`user${i}`), pw(`password-${i}`)), 'hit');
});

test('refreshing an entry makes it the newest, so it is evicted last', () => {
  const { cache } = cacheAt({ sizeKb: 1 });
  for (let i = 0; i < 10; i++) cache.remember(key(`user${i}`), pw(`password-${i}`));
  cache.remember(key('user0'), pw('password-0'));
  cache.remember(key('user10'), pw('password-10'));
  assert.equal(cache.lookup(key('user0'), pw('password-0')), 'hit');
  assert.equal(cache.lookup(key('user1'), pw('password-1')), 'miss');
});

test('keys too long to cache are simply not cached', () => {
  const { cache } = cacheAt();
  const long = key('u'.repeat(300), 'r'.repeat(200), 's'.repeat(20));
  cache.remember(long, pw('Long-key-pass'));
  assert.equal(cache.lookup(long, pw('Long-key-pass')), 'uncacheable');
  assert.equal(cache.stats().entries, 0);
});

test('flush empties it and says how many entries went', () => {
  const { cache } = cacheAt();
  cache.remember(key('a'), pw('password-a'));
  cache.remember(key('b'), pw('password-b'));
  assert.equal(cache.flush(), 2);
  assert.equal(cache.lookup(key('a'), pw('password-a')), 'miss');
});

test('the password is not held: the cache contains neither it nor a plain digest of it', async () => {
  const { cache, rawBytes } = cacheAt();
  const secret = 'Cache-Secret-Value-7';
  cache.remember(key('bob'), pw(secret));
  const dump = inspect(cache, { depth: 10, maxArrayLength: 1000, maxStringLength: 100000 });
  assert.ok(!dump.includes(secret));
  // the entries are in the shared section: scan every byte of it, not only what inspect shows
  const raw = rawBytes();
  assert.equal(raw.indexOf(pw(secret)), -1);
  const { createHash } = await import('node:crypto');
  for (const algorithm of ['md5', 'sha1', 'sha256']) {
    const digest = createHash(algorithm).update(secret).digest();
    assert.ok(!dump.includes(digest.toString('hex')), algorithm);
    assert.ok(!dump.includes(inspect(digest).slice(8, 40)), `${algorithm} bytes`);
    assert.equal(raw.indexOf(digest.subarray(0, 16)), -1, `${algorithm} in the section`);
  }
  // what is stored is the keyed MAC; a second cache (a restart) keys its MACs differently
  const other = cacheAt();
  other.cache.remember(key('bob'), pw(secret));
  assert.ok(raw.indexOf(cache.macOf(pw(secret))) >= 0, 'the MAC is in the section');
  assert.notDeepEqual(cache.macOf(pw(secret)), other.cache.macOf(pw(secret)));
  assert.equal(raw.indexOf(other.cache.macOf(pw(secret))), -1);
  assert.ok(other.rawBytes().indexOf(other.cache.macOf(pw(secret))) >= 0);
});

/** `count` users whose keys share one set (found by trying names). */
function usersInOneSet(cache: CredentialCache, count: number): string[] {
  const bySet = new Map<number, string[]>();
  for (let i = 0; ; i++) {
    const user = `user${i}`;
    const first = cache.setOf(key(user))![0];
    const users = bySet.get(first) ?? [];
    users.push(user);
    bySet.set(first, users);
    if (users.length === count) return users;
  }
}

test('a full set evicts its least recently stored entry; other sets are untouched', () => {
  const { cache, clock } = cacheAt();
  assert.equal(cache.capacity, DEFAULT_CACHE_ENTRIES);
  const crowd = usersInOneSet(cache, WAYS + 2);
  const [first, end] = cache.setOf(key(crowd[0]!))!;
  assert.equal(end - first, WAYS);
  const outsider = Array.from({ length: 100 }, (_, i) => `other${i}`).find((user) => cache.setOf(key(user))![0] !== first)!;
  cache.remember(key(outsider), pw('outsider-pass'));
  for (const user of crowd.slice(0, WAYS)) {
    clock.now += 1;
    cache.remember(key(user), pw(`${user}-pass`));
  }
  cache.remember(key(crowd[0]!), pw(`${crowd[0]}-pass`)); // refreshed: now the newest
  cache.remember(key(crowd[WAYS]!), pw('ninth-pass'));
  assert.equal(cache.lookup(key(crowd[1]!), pw(`${crowd[1]}-pass`)), 'miss', 'the oldest of the set went');
  assert.equal(cache.lookup(key(crowd[0]!), pw(`${crowd[0]}-pass`)), 'hit');
  for (const user of crowd.slice(2, WAYS)) assert.equal(cache.lookup(key(user), pw(`${user}-pass`)), 'hit', user);
  assert.equal(cache.lookup(key(crowd[WAYS]!), pw('ninth-pass')), 'hit');
  assert.equal(cache.lookup(key(outsider), pw('outsider-pass')), 'hit');
  assert.equal(cache.stats().entries, WAYS + 1);
  // an entry that was forgotten leaves a hole that is used before any live entry is evicted
  cache.forget(key(crowd[2]!));
  cache.remember(key(crowd[WAYS + 1]!), pw('tenth-pass'));
  for (const user of [crowd[0]!, ...crowd.slice(3, WAYS)]) assert.equal(cache.lookup(key(user), pw(`${user}-pass`)), 'hit', user);
  assert.equal(cache.lookup(key(crowd[WAYS + 1]!), pw('tenth-pass')), 'hit');
});

test('generation: a fill computed before a flush or a user flush is refused; one after it is stored', () => {
  const { cache, reader } = cacheAt();
  const before = reader.generation;
  assert.equal(before, cache.generation);
  cache.flush();
  cache.remember(key('bob'), pw('Right-pass'), before);
  assert.equal(cache.lookup(key('bob'), pw('Right-pass')), 'miss', 'a check from before SIGHUP does not refill');
  const beforeUserFlush = reader.generation;
  cache.flushUser({ user: Buffer.from('nobody') });
  assert.notEqual(reader.generation, beforeUserFlush);
  // a worker's report: digests and the generation it read before its check
  const keyDigest = reader.keyDigestOf(key('bob'))!;
  cache.rememberDigests(keyDigest, reader.macOf(pw('Right-pass')), beforeUserFlush, key('bob'));
  assert.equal(reader.lookup(key('bob'), pw('Right-pass')), 'miss');
  cache.rememberDigests(keyDigest, reader.macOf(pw('Right-pass')), reader.generation, key('bob'));
  assert.equal(reader.lookup(key('bob'), pw('Right-pass')), 'hit', 'the worker sees the fill it reported');
  assert.equal(reader.lookup(key('bob'), pw('Wrong-pass')), 'mismatch');
  assert.equal(cache.lookup(key('bob'), pw('Right-pass')), 'hit');
  assert.deepEqual(cache.stats(), { entries: 1, capacity: DEFAULT_CACHE_ENTRIES, hits: 2, misses: 3 }, "workers' lookups count in the primary's stats");
  assert.equal(cache.flush(), 1);
  assert.equal(reader.lookup(key('bob'), pw('Right-pass')), 'miss', 'the worker sees the flush');
});

test('expiry by the injected clock, seen alike by the primary and a worker; a new success restarts the lifetime', () => {
  const { cache, clock, reader } = cacheAt({ timeoutSeconds: 10 });
  cache.remember(key('bob'), pw('Right-pass'));
  clock.now += 6_000;
  cache.remember(key('bob'), pw('Right-pass')); // a later successful check
  clock.now += 9_999;
  assert.equal(reader.lookup(key('bob'), pw('Right-pass')), 'hit');
  clock.now += 1;
  assert.equal(reader.lookup(key('bob'), pw('Right-pass')), 'miss');
  assert.equal(cache.stats().entries, 0, 'an expired entry is not counted, even before the primary drops it');
  assert.equal(cache.lookup(key('bob'), pw('Right-pass')), 'miss');
});

test('flushUser with -r: login@realm entries go with the login, exact names too, in shared memory', () => {
  const { cache, reader } = cacheAt();
  const password = pw('Flush-pass-2');
  cache.remember(key('bob@example.org', 'example.org', 'imap'), password);
  cache.remember(key('bob@example.org', 'example.org', 'smtp'), password);
  cache.remember(key('bob@other.org', 'other.org', 'imap'), password);
  cache.remember(key('bob@example.org.evil', 'example.org', 'imap'), password);
  cache.remember(key('carol@example.org', 'example.org', 'imap'), password);
  const generation = reader.generation;
  assert.equal(cache.flushUser({ user: Buffer.from('bob'), realm: Buffer.from('example.org'), service: Buffer.from('smtp') }), 1);
  assert.equal(reader.lookup(key('bob@example.org', 'example.org', 'smtp'), password), 'miss');
  assert.equal(reader.lookup(key('bob@example.org', 'example.org', 'imap'), password), 'hit');
  assert.equal(cache.flushUser({ user: Buffer.from('bob@example.org') }), 1, 'the name as the mechanism saw it');
  assert.equal(cache.flushUser({ user: Buffer.from('bob') }), 1, 'bob@other.org; not bob@example.org.evil');
  assert.equal(reader.lookup(key('bob@other.org', 'other.org', 'imap'), password), 'miss');
  assert.equal(reader.lookup(key('bob@example.org.evil', 'example.org', 'imap'), password), 'hit');
  assert.equal(reader.lookup(key('carol@example.org', 'example.org', 'imap'), password), 'hit');
  cache.remember(key('bob@other.org', 'other.org', 'imap'), password, generation);
  assert.equal(reader.lookup(key('bob@other.org', 'other.org', 'imap'), password), 'miss', 'a check running across the flush does not refill');
});

test('a reader that looks while an entry is half written misses (seqlock), and never sees a torn entry', () => {
  const seen: string[] = [];
  const looks: [ReturnType<typeof key>, string][] = [];
  let reader: CacheReader | undefined;
  // one entry: storing alice's takes over bob's slot, the case where a torn read could pair
  // alice's key with bob's MAC
  const { cache, reader: r } = cacheAt({
    sizeKb: 96 / 1024,
    pauseMidWrite: () => {
      for (const [parts, password] of looks) seen.push(reader!.lookup(parts, pw(password)));
    },
  });
  reader = r;
  assert.equal(cache.capacity, 1);
  looks.push([key('bob'), 'Old-password'], [key('bob'), 'New-password']);
  cache.remember(key('bob'), pw('Old-password'));
  cache.remember(key('bob'), pw('New-password'));
  cache.forget(key('bob'));
  cache.remember(key('bob'), pw('New-password'));
  looks.push([key('alice'), 'New-password'], [key('alice'), 'Alice-password']);
  cache.remember(key('alice'), pw('Alice-password'));
  assert.deepEqual(seen, Array(4 * 2 * 2 + 2 * 4).fill('miss'), 'two looks per pause, two pauses per write');
  assert.equal(r.lookup(key('alice'), pw('Alice-password')), 'hit');
  assert.equal(r.lookup(key('alice'), pw('New-password')), 'mismatch');
  assert.equal(r.lookup(key('bob'), pw('New-password')), 'miss');
});

test('a section has one writer; a reader of an unformatted section misses; uncacheable keys are said so', () => {
  const section = privateCacheSection(1);
  const digest = new KeyedDigest();
  const early = new CacheReader(section, digest, () => 0);
  assert.equal(early.lookup(key('bob'), pw('Right-pass')), 'miss');
  const cache = new CredentialCache({ sizeKb: 1, timeoutSeconds: 60, section, digest, now: () => 0 });
  assert.throws(() => new CredentialCache({ sizeKb: 1, timeoutSeconds: 60, section, digest, now: () => 0 }), /already has a writer/);
  cache.remember(key('bob'), pw('Right-pass'));
  assert.equal(early.lookup(key('bob'), pw('Right-pass')), 'hit');
  assert.equal(early.lookup(key('u'.repeat(600)), pw('Right-pass')), 'uncacheable');
  assert.throws(() => new CredentialCache({ sizeKb: 2, timeoutSeconds: 60, section: privateCacheSection(1), digest }), /do not fit/);
  // another key (another start) finds nothing
  assert.equal(new CacheReader(section, new KeyedDigest(), () => 0).lookup(key('bob'), pw('Right-pass')), 'miss');
});
