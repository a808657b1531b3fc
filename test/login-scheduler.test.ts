/** LoginScheduler without processes: turns per login, round-robin, suspicion and the daemon-wide bound. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LoginScheduler, SUSPECT_MEMORY_MS, type Admission, type AttemptIds, type Turn } from '../src/server/login-scheduler.js';

const ids = (login: string, password: string): AttemptIds => ({ login, credential: `${login}/${password}`, password });
const LONG = 60_000;

/** Most tests use one check per login at a time: the rules are easiest to see there. */
function scheduler(maxSuspectChecks = 2, maxWaiting = 1000, clock = { now: 0 }, maxChecksPerLogin = 1): LoginScheduler {
  return new LoginScheduler({ maxSuspectChecks, maxWaiting, maxChecksPerLogin, now: () => clock.now });
}

async function granted(admission: Promise<Admission>): Promise<Turn> {
  const result = await admission;
  assert.equal(result.granted, true, `expected a turn, got ${JSON.stringify(result)}`);
  return (result as { turn: Turn }).turn;
}

/** Resolves to true if the promise settles within a few event-loop turns. */
async function settlesSoon(promise: Promise<unknown>): Promise<boolean> {
  let settled = false;
  void promise.then(() => (settled = true));
  for (let i = 0; i < 5; i++) await new Promise((resolve) => setImmediate(resolve));
  return settled;
}

test('one turn at a time per login; other logins never wait for it', async () => {
  const s = scheduler();
  const first = await granted(s.admit(ids('alice', 'a'), LONG));
  const second = s.admit(ids('alice', 'a'), LONG);
  assert.equal(await settlesSoon(second), false, 'alice waits for her own turn');
  await granted(s.admit(ids('bob', 'b'), LONG)); // bob does not
  first.finish('success');
  (await granted(second)).finish('success');
});

test('a burst of one credential costs another credential of the same login at most one turn', async () => {
  const s = scheduler(1000);
  const running = await granted(s.admit(ids('alice', 'stale'), LONG));
  const order: string[] = [];
  const track = (name: string, admission: Promise<Admission>): void =>
    void admission.then((result) => {
      order.push(name);
      if (result.granted) setImmediate(() => result.turn.finish('failure'));
    });
  for (let i = 0; i < 300; i++) track('burst', s.admit(ids('alice', 'stale'), LONG));
  track('right', s.admit(ids('alice', 'right'), LONG));
  running.finish('failure');
  while (!order.includes('right')) await new Promise((resolve) => setImmediate(resolve));
  assert.ok(order.indexOf('right') <= 1, `the other password was served within one turn: ${order.slice(0, 4).join(',')}`);
  s.stop();
});

test('after a failure the login is suspect and needs a daemon-wide place; a success clears it', async () => {
  const clock = { now: 0 };
  const s = scheduler(1, 1000, clock);
  (await granted(s.admit(ids('alice', 'x'), LONG))).finish('failure');
  (await granted(s.admit(ids('bob', 'y'), LONG))).finish('failure');
  assert.equal(s.isSuspect(ids('alice', 'other')), true);
  const alice = await granted(s.admit(ids('alice', 'x2'), LONG));
  assert.equal(alice.suspect, true);
  const bob = s.admit(ids('bob', 'y2'), LONG);
  assert.equal(await settlesSoon(bob), false, 'bob waits: the one suspect place is taken');
  const carol = await granted(s.admit(ids('carol', 'z'), LONG));
  assert.equal(carol.suspect, false, 'a login without failures never waits for suspect places');
  alice.finish('success');
  assert.equal(s.isSuspect(ids('alice', 'x3')), false, 'success clears the login');
  const bobTurn = await granted(bob);
  assert.equal(bobTurn.suspect, true);
  bobTurn.finish('unchecked');
  carol.finish('success');
  clock.now += SUSPECT_MEMORY_MS;
  assert.equal(s.isSuspect(ids('bob', 'y3')), false, 'suspicion ends after the memory window');
});

test('a password refused for one login makes it suspect on every login (spraying)', async () => {
  const s = scheduler(1);
  (await granted(s.admit(ids('alice', 'Summer2026'), LONG))).finish('failure');
  assert.equal(s.isSuspect(ids('dave', 'Summer2026')), true);
  assert.equal(s.isSuspect(ids('dave', 'something-else')), false);
});

test('the daemon-wide bound: with N places, at most N suspect turns run at once', async () => {
  const s = scheduler(3);
  for (const login of ['a', 'b', 'c', 'd', 'e', 'f']) (await granted(s.admit(ids(login, 'p'), LONG))).finish('failure');
  const admissions = ['a', 'b', 'c', 'd', 'e', 'f'].map((login) => s.admit(ids(login, 'q'), LONG));
  const running: Turn[] = [];
  for (const admission of admissions) void admission.then((a) => a.granted && running.push(a.turn));
  for (let i = 0; i < 5; i++) await new Promise((resolve) => setImmediate(resolve));
  assert.equal(running.length, 3);
  assert.equal(s.stats().suspectRunning, 3);
  running[0]!.finish('failure');
  for (let i = 0; i < 5; i++) await new Promise((resolve) => setImmediate(resolve));
  assert.equal(running.length, 4, 'a freed place goes to a waiting login');
  assert.equal(s.stats().suspectRunning, 3);
  s.stop();
  for (const turn of running) turn.finish('unchecked');
  assert.equal(s.stats().suspectRunning, 0);
});

test('waiting is bounded and has a deadline; stop answers the waiting', async () => {
  const s = scheduler(1, 2);
  const first = await granted(s.admit(ids('alice', 'a'), LONG));
  const waiting = [s.admit(ids('alice', 'a'), 20), s.admit(ids('alice', 'b'), LONG)];
  assert.deepEqual(await s.admit(ids('alice', 'c'), LONG), { granted: false, reason: 'busy', limit: 2 });
  assert.deepEqual(await waiting[0], { granted: false, reason: 'timeout' });
  s.stop();
  assert.deepEqual(await waiting[1], { granted: false, reason: 'stopped' });
  first.finish('success');
  assert.deepEqual(s.stats(), { waiting: 0, suspectRunning: 0 });
});

test("a suspect login's share of the waiting room: a retry burst and a guesser are bounded, the right password still gets in", async () => {
  const s = scheduler(5, 64); // shares: 4 per credential, 4 distinct credentials, 16 in all
  (await granted(s.admit(ids('alice', 'old'), LONG))).finish('failure');
  const running = await granted(s.admit(ids('alice', 'old'), LONG));
  const retries = Array.from({ length: 10 }, () => s.admit(ids('alice', 'old'), LONG));
  const refusedRetries = (await Promise.all(retries.map((p) => Promise.race([p, new Promise((r) => setImmediate(() => r('waiting')))]))))
    .filter((r) => typeof r === 'object' && (r as Admission).granted === false);
  assert.equal(refusedRetries.length, 6, 'only 4 retries of one credential wait');
  assert.deepEqual(refusedRetries[0], { granted: false, reason: 'login-busy', limit: 4 });
  const guesses = ['g1', 'g2', 'g3', 'g4'].map((p) => s.admit(ids('alice', p), LONG));
  assert.equal(await settlesSoon(guesses[2]!), false, 'a third distinct credential waits');
  assert.deepEqual(await guesses[3], { granted: false, reason: 'login-busy', limit: 4 }, 'a fifth distinct credential is refused');
  assert.equal((await s.admit(ids('bob', 'x'), LONG)).granted, true, 'other logins are not affected');
  running.finish('failure');
  s.stop();
});

test("a sprayed password waiting for a daemon-wide place does not hold back the same login's own password", async () => {
  const s = scheduler(1);
  (await granted(s.admit(ids('x', 'Spray1'), LONG))).finish('failure'); // Spray1 is now suspect everywhere
  const place = await granted(s.admit(ids('y', 'Spray1'), LONG)); // takes the one place
  assert.equal(place.suspect, true);
  const running = await granted(s.admit(ids('owner', 'first'), LONG)); // owner's own turn, not suspect
  const sprayed = s.admit(ids('owner', 'Spray1'), LONG);
  const own = s.admit(ids('owner', 'right'), LONG);
  running.finish('success');
  const ownTurn = await granted(own);
  assert.equal(ownTurn.suspect, false, 'the owner is served while the sprayed guess waits for a place');
  assert.equal(await settlesSoon(sprayed), false);
  ownTurn.finish('success');
  place.finish('failure');
  (await granted(sprayed)).finish('failure');
});

test('suspect requests fill at most half of the waiting room: clean logins always find room', async () => {
  const s = scheduler(1, 8); // at most 4 suspect waiters
  for (const login of ['a', 'b', 'c', 'd', 'e', 'f', 'g']) (await granted(s.admit(ids(login, 'p'), LONG))).finish('failure');
  const place = await granted(s.admit(ids('a', 'q'), LONG));
  const waiting = ['b', 'c', 'd', 'e'].map((login) => s.admit(ids(login, 'q'), LONG));
  assert.deepEqual(await s.admit(ids('f', 'q'), LONG), { granted: false, reason: 'login-busy', limit: 4 });
  assert.equal((await s.admit(ids('clean', 'p2'), LONG)).granted, true);
  place.finish('failure');
  s.stop();
  assert.deepEqual(await Promise.all(waiting.slice(1)), Array(3).fill({ granted: false, reason: 'stopped' }));
});

test('accountKey: spelling variants of one account (case, surrounding blanks) are one login', async () => {
  const { accountKey } = await import('../src/server/request-parts.js');
  assert.deepEqual(accountKey(Buffer.from(' Bob\t')), Buffer.from('bob'));
  assert.deepEqual(accountKey(Buffer.from('BOB@Example.ORG')), Buffer.from('bob@example.org'));
  assert.deepEqual(accountKey(Buffer.from([0xc3, 0x89, 0x41])), Buffer.from([0xc3, 0x89, 0x61]), 'non-ASCII bytes are kept as they are');
});

test('a login without failures may run as many checks as the pool has workers; once it fails, one at a time, alone', async () => {
  const s = scheduler(5, 1000, { now: 0 }, 3);
  const first = await Promise.all([1, 2, 3].map(() => granted(s.admit(ids('web', 'right'), LONG))));
  const fourth = s.admit(ids('web', 'right'), LONG);
  assert.equal(await settlesSoon(fourth), false, 'at most 3 at once');
  first[0]!.finish('success');
  const fourthTurn = await granted(fourth);
  // a failure makes the login suspect: the next check waits until every running one is done
  first[1]!.finish('failure');
  const afterFailure = s.admit(ids('web', 'other'), LONG);
  assert.equal(await settlesSoon(afterFailure), false, 'waits for the two still running');
  first[2]!.finish('failure');
  assert.equal(await settlesSoon(afterFailure), false, 'still one running');
  fourthTurn.finish('failure');
  const alone = await granted(afterFailure);
  assert.equal(alone.suspect, true);
  const next = s.admit(ids('web', 'third'), LONG);
  assert.equal(await settlesSoon(next), false, 'a suspect turn runs alone');
  alone.finish('failure');
  (await granted(next)).finish('success');
});
