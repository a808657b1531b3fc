/**
 * Repeated wrong passwords go to the back: the bookkeeping alone, then in the daemon, where
 * a right login must not wait behind a client hammering a password that was just refused.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { RepeatFailures } from '../src/server/repeat-failures.js';
import { Daemon } from './helpers/daemon.js';
import { PamFixture } from './helpers/pam-fixture.js';
import { PAM_EXEC_MODULE } from './helpers/paths.js';
import { ask } from './helpers/raw-client.js';
import { assertNoSecretsLogged } from './helpers/secrets.js';

const parts = (user: string, realm = '', service = 'imap') => ({
  user: Buffer.from(user),
  realm: Buffer.from(realm),
  service: Buffer.from(service),
});

test('a refusal is remembered for exactly those credentials, for ten minutes, until a success', () => {
  const clock = { now: 0 };
  const failures = new RepeatFailures(() => clock.now);
  const wrong = Buffer.from('Wrong-guess-1');
  assert.equal(failures.isRepeat(parts('bob'), wrong), false);
  failures.recordFailure(parts('bob'), wrong);
  assert.equal(failures.isRepeat(parts('bob'), wrong), true);
  assert.equal(failures.isRepeat(parts('bob'), Buffer.from('Wrong-guess-2')), false, 'another password');
  assert.equal(failures.isRepeat(parts('bob', 'x'), wrong), false, 'another realm');
  assert.equal(failures.isRepeat(parts('bob', '', 'smtp'), wrong), false, 'another service');
  assert.equal(failures.isRepeat(parts('bobW'), Buffer.from('rong-guess-1')), false, 'no ambiguity at the seams');
  clock.now += 10 * 60_000;
  assert.equal(failures.isRepeat(parts('bob'), wrong), false, 'forgotten after ten minutes');
  failures.recordFailure(parts('bob'), wrong);
  failures.recordSuccess(parts('bob'), wrong);
  assert.equal(failures.isRepeat(parts('bob'), wrong), false, 'a success clears it');
});

test('it is bounded: the oldest refusal is forgotten first', () => {
  const failures = new RepeatFailures();
  for (let i = 0; i <= 10_000; i++) failures.recordFailure(parts(`user${i}`), Buffer.from('x'));
  assert.equal(failures.size, 10_000);
  assert.equal(failures.isRepeat(parts('user0'), Buffer.from('x')), false);
  assert.equal(failures.isRepeat(parts('user10000'), Buffer.from('x')), true);
});

const RIGHT = 'Repeat-right-pw-1';
const WRONG = 'Repeat-wrong-pw-2';
let pam: PamFixture;
let daemon: Daemon;

before(async () => {
  pam = new PamFixture([{ name: 'bob', password: RIGHT, service: 'imap' }]);
  // every attempt holds a worker for 300 ms
  pam.addService('slow', `auth required ${PAM_EXEC_MODULE} /bin/sleep 0.3\nauth required @MATRIX@\naccount required @PERMIT@\n`);
  daemon = await Daemon.start({ env: pam.env, args: ['-n', '2'] });
});
after(async () => {
  await daemon?.dispose();
  pam?.dispose();
});

test('a right login is not queued behind repeats of a password just refused', async () => {
  assert.equal(await ask(daemon.socket, 'bob', WRONG, 'slow', ''), 'NO PAM auth error'); // now a known refusal
  const order: string[] = [];
  const repeats = Array.from({ length: 6 }, () =>
    ask(daemon.socket, 'bob', WRONG, 'slow', '').then((reply) => order.push(`wrong:${reply}`)),
  );
  await new Promise((resolve) => setTimeout(resolve, 50));
  const right = ask(daemon.socket, 'bob', RIGHT, 'slow', '').then((reply) => order.push(`right:${reply}`));
  await Promise.all([...repeats, right]);
  // repeats run on one worker, one after the other; the right login takes the other worker
  assert.ok(order.indexOf('right:OK') <= 1, order.join(' '));
  assert.equal(order.filter((entry) => entry === 'wrong:NO PAM auth error').length, 6, 'repeats are still answered by PAM');
});

test('repeats have their own small queue bound: they cannot fill the queue for everybody else', async () => {
  const bounded = await Daemon.start({ env: pam.env, args: ['-n', '2', '--max-queue', '4'] });
  try {
    assert.equal(await ask(bounded.socket, 'bob', WRONG, 'slow', ''), 'NO PAM auth error');
    const repeats = Array.from({ length: 8 }, () => ask(bounded.socket, 'bob', WRONG, 'slow', ''));
    await new Promise((resolve) => setTimeout(resolve, 100));
    // bob just failed: one wrong password may keep 1 request waiting (--max-queue 4 / 16,
    // at least 1); the others are refused; his right password still gets in
    assert.equal(await ask(bounded.socket, 'bob', RIGHT, 'slow', ''), 'OK');
    const replies = await Promise.all(repeats);
    assert.ok(replies.includes('NO server busy'), replies.join(','));
    await bounded.waitForLog(/job queue full \(1 waiting for a login that just failed\)/);
    // a refusal by the daemon itself is not an auth failure and marks nothing
    assert.match(bounded.logs, /auth not checked: \[user=bob\] .*\[reason=server busy\]/);
    assert.doesNotMatch(bounded.logs, /auth failure: .*\[reason=server busy\]/);
  } finally {
    await bounded.dispose();
  }
});

test('no password used here appears in any log line', () => {
  assertNoSecretsLogged([RIGHT, WRONG]);
});
