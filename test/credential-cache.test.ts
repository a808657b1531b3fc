/** The credential cache on its own, with a hand-driven clock. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { inspect } from 'node:util';
import { CredentialCache, DEFAULT_CACHE_ENTRIES } from '../src/server/credential-cache.js';

const key = (user: string, realm = '', service = 'imap') => ({
  user: Buffer.from(user),
  realm: Buffer.from(realm),
  service: Buffer.from(service),
});
const pw = (text: string) => Buffer.from(text);

function cacheAt(options: { sizeKb?: number; timeoutSeconds?: number } = {}) {
  const clock = { now: 1_000_000 };
  const cache = new CredentialCache({
    sizeKb: options.sizeKb,
    timeoutSeconds: options.timeoutSeconds ?? 60,
    now: () => clock.now,
  });
  return { cache, clock };
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
  const { cache } = cacheAt();
  const secret = 'Cache-Secret-Value-7';
  cache.remember(key('bob'), pw(secret));
  const dump = inspect(cache, { depth: 10, maxArrayLength: 1000, maxStringLength: 100000 });
  assert.ok(!dump.includes(secret));
  const { createHash } = await import('node:crypto');
  for (const algorithm of ['md5', 'sha1', 'sha256']) {
    const digest = createHash(algorithm).update(secret).digest();
    assert.ok(!dump.includes(digest.toString('hex')), algorithm);
    assert.ok(!dump.includes(inspect(digest).slice(8, 40)), `${algorithm} bytes`);
  }
  // a second cache (a restart) keys its MACs differently: an entry means nothing elsewhere
  const other = cacheAt().cache;
  other.remember(key('bob'), pw(secret));
  const macOf = (c: CredentialCache) => inspect(c, { depth: 10 }).match(/mac: <Buffer ([0-9a-f ]+)/)?.[1];
  assert.ok(macOf(cache));
  assert.notEqual(macOf(cache), macOf(other));
});
