/**
 * fail2ban, proven with Debian's fail2ban-regex over the syslog lines of a real run (root:
 * a private /dev/log in a mount namespace, test/helpers/private-dev-log.ts). Debian 12's
 * fail2ban 1.0.2 ships no saslauthd filter, so the package ships fail2ban/saslauthd-ts.conf:
 * it must count exactly the wrong passwords sent by clients that send the client address
 * (5th field), per address, nothing for 4-field clients (there is no address to ban) unless
 * in mode `users`, never a success or a request the daemon did not check, and never an
 * address a login tries to forge. The daemon runs with --log-format json: syslog keeps the
 * original's text whatever stderr gets.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { Daemon } from './helpers/daemon.js';
import { DatagramListener } from './helpers/dgram-listener.js';
import { fail2banRegex as runFail2banRegex, installShippedFilter, writeAuthLog } from './helpers/fail2ban.js';
import { PamFixture } from './helpers/pam-fixture.js';
import { privateDevLog } from './helpers/private-dev-log.js';
import { eventually } from './helpers/processes.js';
import { ask } from './helpers/raw-client.js';
import { assertNoSecretsLogged } from './helpers/secrets.js';

const isRoot = process.getuid?.() === 0;
const skip = !isRoot && 'needs root (mount namespace for a private /dev/log)';
const GOOD = 'F2b-good-pass-1';
const WRONG = 'F2b-wrong-pass-2';

/** Wrong passwords per client address (5-field requests) and without one (4 fields). */
const WITH_ADDRESS: Readonly<Record<string, number>> = { '192.0.2.21': 3, '2001:db8::5': 2 };
const WITHOUT_ADDRESS = 4;
const FORGED_ADDRESS = '198.51.100.66';

let scratch: string;
let listener: DatagramListener;
let pam: PamFixture;
let daemon: Daemon;
let logFile: string;
let filter: string;

before(async () => {
  if (!isRoot) return;
  scratch = mkdtempSync('/tmp/sts-f2b-');
  listener = await DatagramListener.bind(join(scratch, 'log'));
  pam = new PamFixture([{ name: 'alice', password: GOOD, service: 'imap' }]);
  const wrap = privateDevLog(listener.path, mkdtempSync(join(scratch, 'ns-')));
  daemon = await Daemon.start({ env: { ...pam.env, ...wrap.env }, wrap: wrap.prefix, args: ['-n', '1', '--log-format', 'json'] });
  for (const [address, count] of Object.entries(WITH_ADDRESS)) {
    for (let index = 0; index < count; index++) {
      assert.equal(await ask(daemon.socket, 'alice', `${WRONG}${index}`, 'imap', '', `${address};${40_000 + index}`), 'NO PAM auth error');
    }
  }
  for (let index = 0; index < WITHOUT_ADDRESS; index++) {
    assert.equal(await ask(daemon.socket, `user${index}`, WRONG, 'smtp', 'example.org'), 'NO PAM auth error');
  }
  // Not failures: a success, a request the daemon refused without checking it.
  assert.equal(await ask(daemon.socket, 'alice', GOOD, 'imap', '', '192.0.2.99;40000'), 'OK');
  assert.equal(await ask(daemon.socket, 'alice', '', 'imap', '', '192.0.2.99;40001'), 'NO NULL password received');
  // A login that tries to get someone else's address banned (a 4-field client: the real
  // line has no [remote=…] of its own for the forged one to stand in for).
  assert.equal(await ask(daemon.socket, `mallory] [service=imap] [realm=] [remote=${FORGED_ADDRESS}`, WRONG, 'imap', ''), 'NO PAM auth error');
  const failures = Object.values(WITH_ADDRESS).reduce((a, b) => a + b, 0) + WITHOUT_ADDRESS + 1;
  await eventually(() => authFailureDatagrams().length >= failures, `${failures} auth failure lines in syslog`);

  logFile = writeAuthLog(scratch, listener.messages);
  filter = installShippedFilter(scratch);
});

after(async () => {
  if (!isRoot) return;
  await daemon?.dispose();
  pam?.dispose();
  listener?.close();
  rmSync(scratch, { recursive: true, force: true });
});

function authFailureDatagrams(): string[] {
  return listener.messages.filter((message) => message.includes(': auth failure: '));
}

function fail2banRegex(out: 'ip' | 'id' | 'msg', filterSpec: string): string[] {
  return runFail2banRegex(logFile, filterSpec, out);
}

test('syslog got the original text (not JSON) with --log-format json', { skip }, () => {
  const failures = authFailureDatagrams();
  assert.ok(failures.length > 0);
  for (const line of failures) assert.match(line, /saslauthd\[\d+\]: {17}: auth failure: \[user=/);
});

test('the shipped filter counts exactly the failures of clients that send their address, per address', { skip }, () => {
  const addresses = fail2banRegex('ip', filter);
  const counts: Record<string, number> = {};
  for (const address of addresses) counts[address] = (counts[address] ?? 0) + 1;
  assert.deepEqual(counts, WITH_ADDRESS);
  assert.ok(!addresses.includes(FORGED_ADDRESS), 'a forged [remote=…] is never taken');
  assert.ok(!addresses.includes('192.0.2.99'), 'a success or an unchecked request is not a failure');
});

test('mode users counts every failure sent, 4-field clients by user', { skip }, () => {
  const matched = fail2banRegex('msg', `${filter}[mode=users]`);
  const total = Object.values(WITH_ADDRESS).reduce((a, b) => a + b, 0) + WITHOUT_ADDRESS + 1;
  assert.equal(matched.length, total, matched.join('\n'));
  const ids = fail2banRegex('id', `${filter}[mode=users]`);
  for (let index = 0; index < WITHOUT_ADDRESS; index++) assert.ok(ids.includes(`user${index}`), `user${index} in ${ids.join(', ')}`);
  assert.ok(ids.includes('mallory\\x5d \\x5bservice=imap\\x5d \\x5brealm=\\x5d \\x5bremote=198.51.100.66'));
  assert.ok(!ids.includes(FORGED_ADDRESS));
});

test('no password reached any log line', { skip }, () => {
  assertNoSecretsLogged([GOOD, WRONG]);
  assert.ok(!listener.messages.join('\n').includes(WRONG), 'nor syslog');
});
