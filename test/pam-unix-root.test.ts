/**
 * As root (CI is root): the real Linux-PAM with the real pam_unix stack, against a
 * throwaway local user this test creates and removes. The PAM configuration is a scratch
 * directory bind-mounted over /etc/pam.d inside a private mount namespace of the daemon
 * only (unshare -m): nothing on the machine changes, nothing is shared through /tmp.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Daemon } from './helpers/daemon.js';
import { ask } from './helpers/raw-client.js';
import { assertNoSecretsLogged } from './helpers/secrets.js';

const isRoot = process.getuid?.() === 0;
const USER = `sts${process.pid}`;
const EXPIRED_USER = `stx${process.pid}`;
/** Another account: checks for one login run one at a time, other logins never wait for them. */
const OTHER_USER = `sto${process.pid}`;
const PASSWORD = 'Unix-Pass-Word-9';

let pamDirectory: string;
let daemon: Daemon;

before(async () => {
  if (!isRoot) return;
  for (const user of [USER, EXPIRED_USER, OTHER_USER]) {
    execFileSync('useradd', ['--no-create-home', '--shell', '/usr/sbin/nologin', user]);
    execFileSync('chpasswd', [], { input: `${user}:${PASSWORD}\n` });
  }
  execFileSync('chage', ['-E', '0', EXPIRED_USER]); // account expired on 1970-01-01
  pamDirectory = mkdtempSync(join(tmpdir(), 'sts-pamd-'));
  const unixStack = 'auth required pam_unix.so\naccount required pam_unix.so\n';
  writeFileSync(join(pamDirectory, 'sts-unix'), unixStack);
  writeFileSync(join(pamDirectory, 'other'), 'auth required pam_deny.so\naccount required pam_deny.so\n');
  daemon = await Daemon.start({
    args: ['-n', '1'],
    wrap: ['unshare', '-m', '--propagation', 'private', 'sh', '-c', 'mount --bind "$0" /etc/pam.d && exec "$@"', pamDirectory],
  });
});

after(async () => {
  if (!isRoot) return;
  await daemon?.dispose();
  for (const user of [USER, EXPIRED_USER, OTHER_USER]) execFileSync('userdel', [user]);
  rmSync(pamDirectory, { recursive: true, force: true });
});

test('pam_unix: the right password is accepted', { skip: !isRoot && 'needs root' }, async () => {
  assert.equal(await ask(daemon.socket, USER, PASSWORD, 'sts-unix', ''), 'OK');
});

test('pam_unix: a wrong password and an unknown user are refused', { skip: !isRoot && 'needs root' }, async () => {
  assert.equal(await ask(daemon.socket, USER, 'not-the-password', 'sts-unix', ''), 'NO PAM auth error');
  assert.equal(await ask(daemon.socket, `${USER}x`, PASSWORD, 'sts-unix', ''), 'NO PAM auth error');
});

test('pam_unix: an expired account gets NO PAM acct error', { skip: !isRoot && 'needs root' }, async () => {
  assert.equal(await ask(daemon.socket, EXPIRED_USER, PASSWORD, 'sts-unix', ''), 'NO PAM acct error');
});

test('a service without a PAM file falls to "other" (pam_deny here)', { skip: !isRoot && 'needs root' }, async () => {
  assert.equal(await ask(daemon.socket, USER, PASSWORD, 'no-such-service', ''), 'NO PAM auth error');
});

test(
  "pam_unix's failure delay does not hold the only worker: another account's login overtakes a wrong one",
  { skip: !isRoot && 'needs root' },
  async () => {
    const order: string[] = [];
    const wrong = ask(daemon.socket, USER, 'not-the-password', 'sts-unix', '').then((reply) => order.push(`wrong:${reply}`));
    await new Promise((resolve) => setTimeout(resolve, 300));
    const right = ask(daemon.socket, OTHER_USER, PASSWORD, 'sts-unix', '').then((reply) => order.push(`right:${reply}`));
    await Promise.all([wrong, right]);
    assert.deepEqual(order, ['right:OK', 'wrong:NO PAM auth error']);
  },
);

test(
  'twenty clients sending wrong pam_unix passwords at once do not delay a right login to another account',
  { skip: !isRoot && 'needs root' },
  async () => {
    const busy = await Daemon.start({
      // The twenty are checked one at a time, each after the previous one's ~2 s delay
      // (guessing-bounds.test.ts); a short job deadline answers the rest within the test's.
      args: ['-n', '5', '--job-timeout', '5000'],
      wrap: ['unshare', '-m', '--propagation', 'private', 'sh', '-c', 'mount --bind "$0" /etc/pam.d && exec "$@"', pamDirectory],
    });
    try {
      const order: string[] = [];
      const wrong = Array.from({ length: 20 }, () =>
        ask(busy.socket, USER, 'not-the-password', 'sts-unix', '').then((reply) => order.push(`wrong:${reply}`)),
      );
      await new Promise((resolve) => setTimeout(resolve, 200));
      const right = ask(busy.socket, OTHER_USER, PASSWORD, 'sts-unix', '').then((reply) => order.push(`right:${reply}`));
      await Promise.all([...wrong, right]);
      // each wrong reply waits out pam_unix's ~2 s delay; the right one waits for none of them
      assert.equal(order[0], 'right:OK', order.join(' '));
      const wrongReplies = order.filter((entry) => entry.startsWith('wrong:'));
      assert.equal(wrongReplies.length, 20);
      assert.ok(wrongReplies.every((entry) => entry === 'wrong:NO PAM auth error' || entry === 'wrong:NO authentication timed out'), order.join(' '));
      assert.ok(wrongReplies.includes('wrong:NO PAM auth error'));
    } finally {
      await busy.dispose();
    }
  },
);

test('no password used here appears in any log line', { skip: !isRoot && 'needs root' }, () => {
  assertNoSecretsLogged([PASSWORD, 'not-the-password']);
});
