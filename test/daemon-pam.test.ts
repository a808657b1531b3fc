/**
 * The real daemon as a child process, PAM through Debian's pam_wrapper + pam_matrix:
 * replies, byte-exact passwords, the account stack, PAM_RHOST, malformed requests, logs.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Daemon } from './helpers/daemon.js';
import { PamFixture } from './helpers/pam-fixture.js';
import { PAM_EXEC_MODULE } from './helpers/paths.js';
import { ask, exchange, replyFrame, request } from './helpers/raw-client.js';
import { assertNoSecretsLogged } from './helpers/secrets.js';

const LONG_PASSWORD = Buffer.alloc(256, 0x79); // 256 × 'y', the field limit
const LONG_PASSWORD_CHANGED = Buffer.concat([LONG_PASSWORD.subarray(0, 255), Buffer.from('Z')]);
const BINARY_PASSWORD = Buffer.from([0x70, 0xff, 0xfe, 0x80, 0xc3, 0x28, 0x21, 0x7e, 0x01]); // not UTF-8
const PASSWORDS = ['Secret-one-1', 'Alice-acct-2', 'Realm-pass-3'];

let pam: PamFixture;
let daemon: Daemon;
let rhostFile: string;

before(async () => {
  pam = new PamFixture(
    [
      { name: 'good', password: PASSWORDS[0]!, service: 'imap' },
      { name: 'alice', password: PASSWORDS[1]!, service: 'smtp' }, // account stack admits only smtp
      { name: 'long', password: LONG_PASSWORD, service: 'imap' },
      { name: 'binary', password: BINARY_PASSWORD, service: 'imap' },
      { name: 'bob@example.org', password: PASSWORDS[2]!, service: 'imap' },
      { name: 'carol', password: PASSWORDS[0]!, service: 'rhost' },
    ],
  );
  rhostFile = join(pam.directory, 'rhost.out');
  const script = join(pam.directory, 'record-rhost.sh');
  writeFileSync(script, `#!/bin/sh\nprintf '%s' "$PAM_RHOST" > ${rhostFile}\n`);
  chmodSync(script, 0o755);
  // service "rhost": pam_exec records PAM_RHOST (it exports it to the script), then pam_matrix
  pam.addService('rhost', `auth optional ${PAM_EXEC_MODULE} ${script}\nauth required @MATRIX@\naccount required @MATRIX@\n`);
  daemon = await Daemon.start({ env: pam.env, args: ['-n', '2'] });
});

after(async () => {
  await daemon?.dispose();
  pam?.dispose();
});

test('right password: OK', async () => {
  assert.equal(await ask(daemon.socket, 'good', PASSWORDS[0]!, 'imap', ''), 'OK');
});

test('wrong password and unknown user: NO PAM auth error, and an auth failure line', async () => {
  assert.equal(await ask(daemon.socket, 'good', 'wrong-password', 'imap', ''), 'NO PAM auth error');
  assert.equal(await ask(daemon.socket, 'nobody-here', 'whatever-pw', 'imap', ''), 'NO PAM auth error');
  await daemon.waitForLog(/auth failure: \[user=good\] \[service=imap\] \[realm=\] \[mech=pam\] \[reason=PAM auth error\]/);
  await daemon.waitForLog(/auth failure: \[user=nobody-here\] \[service=imap\] \[realm=\] \[mech=pam\] \[reason=PAM auth error\]/);
});

test('success is logged in verbose (-d) mode', async () => {
  await ask(daemon.socket, 'good', PASSWORDS[0]!, 'imap', 'some.realm');
  await daemon.waitForLog(/auth success: \[user=good\] \[service=imap\] \[realm=some\.realm\] \[mech=pam\]/);
});

test('a 256-byte password is accepted whole; the same with its last byte changed is refused', async () => {
  assert.equal(await ask(daemon.socket, 'long', LONG_PASSWORD, 'imap', ''), 'OK');
  assert.equal(await ask(daemon.socket, 'long', LONG_PASSWORD_CHANGED, 'imap', ''), 'NO PAM auth error');
  assert.equal(await ask(daemon.socket, 'long', LONG_PASSWORD.subarray(0, 255), 'imap', ''), 'NO PAM auth error');
});

test('a password with non-UTF-8 bytes reaches PAM byte for byte', async () => {
  assert.equal(await ask(daemon.socket, 'binary', BINARY_PASSWORD, 'imap', ''), 'OK');
  const flipped = Buffer.from(BINARY_PASSWORD);
  flipped[2] = 0xfd;
  assert.equal(await ask(daemon.socket, 'binary', flipped, 'imap', ''), 'NO PAM auth error');
});

test('refusal by the account stack: NO PAM acct error', async () => {
  assert.equal(await ask(daemon.socket, 'alice', PASSWORDS[1]!, 'imap', ''), 'NO PAM acct error');
  assert.equal(await ask(daemon.socket, 'alice', PASSWORDS[1]!, 'smtp', ''), 'OK');
});

test('the PAM service is the request service field', async () => {
  // no service file "pop" in the private PAM dir: pam_wrapper has no config → PAM fails
  const reply = await ask(daemon.socket, 'good', PASSWORDS[0]!, 'pop', '');
  assert.match(reply, /^NO PAM/);
});

test('PAM_RHOST reaches PAM when a 5th field is sent, and only then', async () => {
  assert.equal(await ask(daemon.socket, 'carol', PASSWORDS[0]!, 'rhost', '', '192.0.2.44;52001'), 'OK');
  assert.equal(readFileSync(rhostFile, 'utf8'), '192.0.2.44');
  await daemon.waitForLog(/auth success: \[user=carol\] \[service=rhost\] \[realm=\] \[remote=192\.0\.2\.44\] \[mech=pam\]/);
  assert.equal(await ask(daemon.socket, 'carol', PASSWORDS[0]!, 'rhost', ''), 'OK');
  assert.equal(readFileSync(rhostFile, 'utf8'), '');
});

test('a request sent one byte per write is answered', async () => {
  const reply = await exchange(daemon.socket, request('good', PASSWORDS[0]!, 'imap', ''), { pieceSize: 1 });
  assert.deepEqual(reply, replyFrame('OK'));
});

test('over-long fields: exactly "NO " (3 bytes), and the error log line', async () => {
  const long = Buffer.alloc(257, 0x61);
  assert.deepEqual(await exchange(daemon.socket, request(long, 'x', 'imap', '')), replyFrame('NO '));
  assert.deepEqual(await exchange(daemon.socket, request('good', long, 'imap', '')), replyFrame('NO '));
  assert.deepEqual(await exchange(daemon.socket, request('good', 'x', long, '')), replyFrame('NO '));
  assert.deepEqual(await exchange(daemon.socket, request('good', 'x', 'imap', long)), replyFrame('NO '));
  assert.deepEqual(await exchange(daemon.socket, Buffer.from([0xff, 0xff])), replyFrame('NO '));
  await daemon.waitForLog(/login exceeded MAX_REQ_LEN: 256/);
  await daemon.waitForLog(/password exceeded MAX_REQ_LEN: 256/);
  await daemon.waitForLog(/realm exceeded MAX_REQ_LEN: 256/);
});

test('empty login and empty password: the original NO texts', async () => {
  assert.deepEqual(await exchange(daemon.socket, request('', 'x', 'imap', '')), replyFrame('NO NULL login received'));
  assert.deepEqual(await exchange(daemon.socket, request('good', '', 'imap', '')), replyFrame('NO NULL password received'));
  await daemon.waitForLog(/NULL login received/);
  await daemon.waitForLog(/NULL password received/);
});

test('EOF inside a request: no reply, connection closed', async () => {
  const bytes = request('good', PASSWORDS[0]!, 'imap', '');
  assert.equal((await exchange(daemon.socket, bytes.subarray(0, 9), { endAfterSend: true })).length, 0);
  assert.equal((await exchange(daemon.socket, Buffer.alloc(0), { endAfterSend: true })).length, 0);
});

test('a client that half-closes after its request still gets the reply', async () => {
  const reply = await exchange(daemon.socket, request('good', PASSWORDS[0]!, 'imap', ''), { endAfterSend: true });
  assert.deepEqual(reply, replyFrame('OK'));
});

test('one request per connection: a second request in the same write is ignored', async () => {
  const two = Buffer.concat([request('good', PASSWORDS[0]!, 'imap', ''), request('good', 'wrong-password', 'imap', '')]);
  // the second request's bytes sit where a 5th field could be; they are not an address
  assert.deepEqual(await exchange(daemon.socket, two), replyFrame('OK'));
});

test('an embedded NUL cuts a field as the C daemon does (login "good\\0xx" is "good")', async () => {
  assert.equal(await ask(daemon.socket, Buffer.from('good\0xx'), PASSWORDS[0]!, 'imap', ''), 'OK');
  const passwordWithTail = Buffer.concat([Buffer.from(PASSWORDS[0]!), Buffer.from('\0junk')]);
  assert.equal(await ask(daemon.socket, 'good', passwordWithTail, 'imap', ''), 'OK');
});

test('a login with control bytes cannot forge a log line', async () => {
  await ask(daemon.socket, 'evil\nauth success: [user=root]', 'whatever-pw', 'imap', '');
  // `[` and `]` are escaped too (fail2ban reads these fields: log/auth-line.ts).
  await daemon.waitForLog(/\[user=evil\\x0aauth success: \\x5buser=root\\x5d\]/);
  assert.doesNotMatch(daemon.logs, /^auth success: \[user=root\]/m);
});

test('no password used here appears in any log line', () => {
  assertNoSecretsLogged([...PASSWORDS, LONG_PASSWORD, BINARY_PASSWORD, 'wrong-password', 'whatever-pw']);
});
