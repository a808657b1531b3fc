/**
 * The credential cache and `-r` in the running daemon, PAM through pam_wrapper +
 * pam_matrix. Changing pam_matrix's password file behind the daemon's back shows whether an
 * answer came from the cache or from PAM.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Daemon } from './helpers/daemon.js';
import { PamFixture, type PamUser } from './helpers/pam-fixture.js';
import { ask } from './helpers/raw-client.js';
import { PAM_SUCCEED_IF_MODULE } from './helpers/paths.js';
import { assertNoDigestsLogged, assertNoSecretsLogged } from './helpers/secrets.js';

const OLD = 'Cache-old-pass-1';
const NEW = 'Cache-new-pass-2';
const OTHER = 'Cache-other-pass-3';

let pam: PamFixture;
before(() => {
  pam = new PamFixture([]);
});
after(() => pam?.dispose());

function users(...list: [string, string][]): PamUser[] {
  return list.map(([name, password]) => ({ name, password, service: 'imap' }));
}

describe('with -c', () => {
  let daemon: Daemon;
  before(async () => {
    pam.setUsers(users(['bob', OLD], ['carol', OTHER]));
    daemon = await Daemon.start({ env: pam.env, args: ['-n', '2', '-c'] });
  });
  after(async () => daemon?.dispose());

  test('a hit answers OK without reaching PAM', async () => {
    pam.setUsers(users(['bob', OLD], ['carol', OTHER]));
    assert.equal(await ask(daemon.socket, 'bob', OLD, 'imap', ''), 'OK');
    pam.setUsers(users(['carol', OTHER])); // bob is gone from PAM
    assert.equal(await ask(daemon.socket, 'bob', OLD, 'imap', ''), 'OK');
    await daemon.waitForLog(/auth success \(cached\): \[user=bob\] \[service=imap\] \[realm=\]/);
  });

  test('a wrong password for a cached user is still refused (by PAM)', async () => {
    pam.setUsers(users(['bob', OLD], ['carol', OTHER]));
    assert.equal(await ask(daemon.socket, 'carol', OTHER, 'imap', ''), 'OK');
    assert.equal(await ask(daemon.socket, 'carol', 'Carol-wrong-pw', 'imap', ''), 'NO PAM auth error');
  });

  test('after a password change the old password stops working at its first failure', async () => {
    pam.setUsers(users(['bob', OLD]));
    assert.equal(await ask(daemon.socket, 'bob', OLD, 'imap', ''), 'OK'); // cached
    pam.setUsers(users(['bob', NEW])); // the admin changes bob's password
    assert.equal(await ask(daemon.socket, 'bob', OLD, 'imap', ''), 'OK', 'still cached, as the original');
    assert.equal(await ask(daemon.socket, 'bob', 'Someone-typo-pw', 'imap', ''), 'NO PAM auth error'); // first failure
    assert.equal(await ask(daemon.socket, 'bob', OLD, 'imap', ''), 'NO PAM auth error', 'old password no longer cached');
    assert.equal(await ask(daemon.socket, 'bob', NEW, 'imap', ''), 'OK');
  });

  test('the new password, once checked by PAM, replaces the old entry', async () => {
    pam.setUsers(users(['bob', OLD]));
    await ask(daemon.socket, 'bob', OLD, 'imap', 'r1');
    pam.setUsers(users(['bob', NEW]));
    assert.equal(await ask(daemon.socket, 'bob', NEW, 'imap', 'r1'), 'OK');
    pam.setUsers(users(['bob', OLD]));
    assert.equal(await ask(daemon.socket, 'bob', NEW, 'imap', 'r1'), 'OK', 'new one cached');
    pam.setUsers(users(['bob', NEW]));
    assert.equal(await ask(daemon.socket, 'bob', OLD, 'imap', 'r1'), 'NO PAM auth error', 'old one gone');
  });

  test('SIGHUP empties the cache and says so', async () => {
    pam.setUsers(users(['carol', OTHER]));
    assert.equal(await ask(daemon.socket, 'carol', OTHER, 'imap', 'hup'), 'OK');
    pam.setUsers([]);
    assert.equal(await ask(daemon.socket, 'carol', OTHER, 'imap', 'hup'), 'OK');
    process.kill(daemon.pid, 'SIGHUP');
    await daemon.waitForLog(/SIGHUP received: credential cache flushed \(\d+ entries\)/);
    assert.equal(await ask(daemon.socket, 'carol', OTHER, 'imap', 'hup'), 'NO PAM auth error');
  });

  test('SIGUSR1 logs a status line with the cache figures', async () => {
    process.kill(daemon.pid, 'SIGUSR1');
    await daemon.waitForLog(/status: workers=2 busy=\d+ queued=0 connections=\d+ ok=\d+ no=\d+ cache=on entries=\d+ hits=\d+ misses=\d+ hit_rate=\d+\.\d% respawns=\d+ timeouts=0 crashes=0 uptime=\d+s/);
  });
});

test('with a client address, the cache keys on it too: PAM may decide by PAM_RHOST', async () => {
  pam.setUsers(users(['bob', OLD]));
  pam.addService('byhost', `auth required ${PAM_SUCCEED_IF_MODULE} rhost = 192.0.2.7\nauth required @MATRIX@\naccount required @PERMIT@\n`);
  const daemon = await Daemon.start({ env: pam.env, args: ['-n', '1', '-c'] });
  try {
    assert.equal(await ask(daemon.socket, 'bob', OLD, 'byhost', '', '192.0.2.7;1000'), 'OK');
    assert.equal(await ask(daemon.socket, 'bob', OLD, 'byhost', '', '192.0.2.7;1001'), 'OK', 'cached for that host');
    assert.equal(await ask(daemon.socket, 'bob', OLD, 'byhost', '', '192.0.2.8;1000'), 'NO PAM auth error', 'not for another');
  } finally {
    await daemon.dispose();
  }
});

test('entries expire after -t seconds', async () => {
  pam.setUsers(users(['bob', OLD]));
  const daemon = await Daemon.start({ env: pam.env, args: ['-n', '1', '-c', '-t', '1'] });
  try {
    assert.equal(await ask(daemon.socket, 'bob', OLD, 'imap', ''), 'OK');
    pam.setUsers([]);
    assert.equal(await ask(daemon.socket, 'bob', OLD, 'imap', ''), 'OK', 'cached');
    await new Promise((resolve) => setTimeout(resolve, 1_100));
    assert.equal(await ask(daemon.socket, 'bob', OLD, 'imap', ''), 'NO PAM auth error', 'expired');
  } finally {
    await daemon.dispose();
  }
});

test('eviction at the size bound (-s 1: ten entries), the oldest first', async () => {
  const names = Array.from({ length: 11 }, (_, i) => `user${i}`);
  pam.setUsers(users(...names.map((name): [string, string] => [name, `${name}-Pass-x`])));
  const daemon = await Daemon.start({ env: pam.env, args: ['-n', '1', '-c', '-s', '1'] });
  try {
    for (const name of names) assert.equal(await ask(daemon.socket, name, `${name}-Pass-x`, 'imap', ''), 'OK');
    pam.setUsers([]);
    assert.equal(await ask(daemon.socket, 'user0', 'user0-Pass-x', 'imap', ''), 'NO PAM auth error', 'evicted');
    for (const name of names.slice(1)) assert.equal(await ask(daemon.socket, name, `${name}-Pass-x`, 'imap', ''), 'OK');
  } finally {
    await daemon.dispose();
  }
});

test('without -c nothing is cached', async () => {
  pam.setUsers(users(['bob', OLD]));
  const daemon = await Daemon.start({ env: pam.env, args: ['-n', '1'] });
  try {
    assert.equal(await ask(daemon.socket, 'bob', OLD, 'imap', ''), 'OK');
    pam.setUsers([]);
    assert.equal(await ask(daemon.socket, 'bob', OLD, 'imap', ''), 'NO PAM auth error');
  } finally {
    await daemon.dispose();
  }
});

describe('realms (saslauthd.md §7)', () => {
  const REALM_PW = 'Realm-pass-9';
  let plain: Daemon;
  let withR: Daemon;
  before(async () => {
    pam.setUsers(users(['bob', REALM_PW], ['bob@example.org', REALM_PW], ['a@b@c', REALM_PW], ['a@b', REALM_PW]));
    plain = await Daemon.start({ env: pam.env, args: ['-n', '1'] });
    withR = await Daemon.start({ env: pam.env, args: ['-n', '1', '-r', '-c'] });
  });
  after(async () => {
    await plain?.dispose();
    await withR?.dispose();
  });

  test('without -r the realm is not added: PAM sees the bare login, the log shows the realm', async () => {
    assert.equal(await ask(plain.socket, 'bob', REALM_PW, 'imap', 'example.org'), 'OK');
    await plain.waitForLog(/auth success: \[user=bob\] \[service=imap\] \[realm=example\.org\]/);
    assert.equal(await ask(plain.socket, 'bob@example.org', REALM_PW, 'imap', ''), 'OK');
    assert.equal(await ask(plain.socket, 'a@b', REALM_PW, 'imap', 'c'), 'OK');
  });

  test('with -r: login@realm when the realm is not empty; the log shows the combined user', async () => {
    pam.setUsers(users(['bob@example.org', REALM_PW], ['a@b@c', REALM_PW]));
    assert.equal(await ask(withR.socket, 'bob', REALM_PW, 'imap', 'example.org'), 'OK');
    await withR.waitForLog(/auth success: \[user=bob@example\.org\] \[service=imap\] \[realm=example\.org\]/);
    assert.equal(await ask(withR.socket, 'bob', REALM_PW, 'imap', ''), 'NO PAM auth error', 'empty realm: bare bob');
    await withR.waitForLog(/auth failure: \[user=bob\] \[service=imap\] \[realm=\]/);
    assert.equal(await ask(withR.socket, 'a@b', REALM_PW, 'imap', 'c'), 'OK', 'a@b + realm c = a@b@c');
    assert.equal(await ask(withR.socket, 'bob@example.org', REALM_PW, 'imap', ''), 'OK', 'login with @, no realm');
  });

  test('with -r the cache keys on the combined login and the realm', async () => {
    pam.setUsers(users(['bob@one.example', REALM_PW]));
    assert.equal(await ask(withR.socket, 'bob', REALM_PW, 'imap', 'one.example'), 'OK');
    pam.setUsers([]);
    assert.equal(await ask(withR.socket, 'bob', REALM_PW, 'imap', 'one.example'), 'OK', 'cached');
    assert.equal(await ask(withR.socket, 'bob', REALM_PW, 'imap', 'two.example'), 'NO PAM auth error', 'another realm');
    await withR.waitForLog(/auth success \(cached\): \[user=bob@one\.example\] \[service=imap\] \[realm=one\.example\]/);
  });
});

test('no password, digest or key-like string appears in any log line', () => {
  assertNoSecretsLogged([OLD, NEW, OTHER, 'Carol-wrong-pw', 'Someone-typo-pw', 'Realm-pass-9']);
  assertNoDigestsLogged();
});
