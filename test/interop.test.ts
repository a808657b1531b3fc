/**
 * Interop with Debian's C tools (sasl2-bin 2.1.28) as oracles:
 *   - the C testsaslauthd as a client of our daemon;
 *   - our testsaslauthd as a client of the C saslauthd, compared with the C client;
 *   - the same requests, malformed ones included, to both daemons: the same reply bytes.
 * Both daemons run with the same pam_wrapper + pam_matrix configuration.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { Daemon } from './helpers/daemon.js';
import { PamFixture } from './helpers/pam-fixture.js';
import { C_TESTSASLAUTHD, TESTSASLAUTHD_JS } from './helpers/paths.js';
import { exchange, request } from './helpers/raw-client.js';
import { assertNoSecretsLogged } from './helpers/secrets.js';

const GOOD = 'Interop-good-1';
const REALM_USER_PASSWORD = 'Interop-realm-2';
const ACCT_PASSWORD = 'Interop-acct-3';
const LONG = Buffer.alloc(256, 0x71);
const BINARY = Buffer.from([0x41, 0xff, 0x80, 0xfe, 0x42, 0x7f]);

let pam: PamFixture;
let ours: Daemon;
let theirs: Daemon;
let oursRealm: Daemon;
let theirsRealm: Daemon;

before(async () => {
  pam = new PamFixture([
    { name: 'good', password: GOOD, service: 'imap' },
    { name: 'alice', password: ACCT_PASSWORD, service: 'smtp' },
    { name: 'long', password: LONG, service: 'imap' },
    { name: 'bin', password: BINARY, service: 'imap' },
    { name: 'bob@example.org', password: REALM_USER_PASSWORD, service: 'imap' },
  ]);
  ours = await Daemon.start({ env: pam.env, args: ['-n', '2'] });
  theirs = await Daemon.start({ env: pam.cEnv, args: ['-n', '2'], c: true });
  oursRealm = await Daemon.start({ env: pam.env, args: ['-n', '1', '-r'] });
  theirsRealm = await Daemon.start({ env: pam.cEnv, args: ['-n', '1', '-r'], c: true });
});

after(async () => {
  for (const daemon of [ours, theirs, oursRealm, theirsRealm]) await daemon?.dispose();
  pam?.dispose();
});

function run(command: string[], env: NodeJS.ProcessEnv = process.env): { stdout: string; stderr: string; status: number | null } {
  const [file, ...args] = command;
  const result = spawnSync(file!, args, { env, encoding: 'latin1', timeout: 20_000 });
  return { stdout: result.stdout, stderr: result.stderr, status: result.status };
}

describe('the C testsaslauthd against our daemon', () => {
  test('right password: 0: OK "Success.", exit 0', () => {
    const result = run([C_TESTSASLAUTHD, '-u', 'good', '-p', GOOD, '-f', ours.socket]);
    assert.equal(result.stdout, '0: OK "Success."\n');
    assert.equal(result.status, 0);
  });

  test('wrong password: 0: NO "authentication failed", exit 255', () => {
    const result = run([C_TESTSASLAUTHD, '-u', 'good', '-p', 'wrong-pass', '-f', ours.socket]);
    assert.equal(result.stdout, '0: NO "authentication failed"\n');
    assert.equal(result.status, 255);
  });

  test('-R 3, -s and -r', () => {
    const repeated = run([C_TESTSASLAUTHD, '-u', 'good', '-p', GOOD, '-R', '3', '-f', ours.socket]);
    assert.equal(repeated.stdout, '0: OK "Success."\n1: OK "Success."\n2: OK "Success."\n');
    const service = run([C_TESTSASLAUTHD, '-u', 'alice', '-p', ACCT_PASSWORD, '-s', 'smtp', '-f', ours.socket]);
    assert.equal(service.stdout, '0: OK "Success."\n');
    const realm = run([C_TESTSASLAUTHD, '-u', 'bob', '-r', 'example.org', '-p', REALM_USER_PASSWORD, '-f', oursRealm.socket]);
    assert.equal(realm.stdout, '0: OK "Success."\n');
    assert.equal(realm.status, 0);
  });
});

describe('our testsaslauthd against the C saslauthd, compared with the C client', () => {
  const cases: [string, string[]][] = [
    ['right password', ['-u', 'good', '-p', GOOD]],
    ['wrong password', ['-u', 'good', '-p', 'wrong-pass']],
    ['unknown user', ['-u', 'nobody', '-p', 'wrong-pass']],
    ['account refused', ['-u', 'alice', '-p', ACCT_PASSWORD]],
    ['service', ['-u', 'alice', '-p', ACCT_PASSWORD, '-s', 'smtp']],
    ['repeat', ['-u', 'good', '-p', GOOD, '-R', '2']],
  ];
  for (const [name, args] of cases) {
    test(name, () => {
      const c = run([C_TESTSASLAUTHD, ...args, '-f', theirs.socket]);
      const ts = run([process.execPath, TESTSASLAUTHD_JS, ...args, '-f', theirs.socket]);
      assert.equal(ts.stdout, c.stdout);
      assert.equal(ts.status, c.status);
    });
  }

  test('no socket: the same stdout, the same connect() message, exit 255', () => {
    const args = ['-u', 'good', '-p', GOOD, '-f', '/nonexistent-dir/mux'];
    const c = run([C_TESTSASLAUTHD, ...args]);
    const ts = run([process.execPath, TESTSASLAUTHD_JS, ...args]);
    assert.equal(ts.stdout, c.stdout);
    assert.equal(ts.stdout, '0: ');
    assert.equal(ts.stderr, c.stderr);
    assert.equal(ts.status, 255);
  });

  test('usage: exit 1 when -u or -p is missing', () => {
    const c = run([C_TESTSASLAUTHD, '-u', 'good']);
    const ts = run([process.execPath, TESTSASLAUTHD_JS, '-u', 'good']);
    assert.equal(c.status, 1);
    assert.equal(ts.status, 1);
    assert.match(ts.stderr, /usage: .* -u username -p password/);
  });

  test('realm with -r on both daemons', () => {
    const args = ['-u', 'bob', '-r', 'example.org', '-p', REALM_USER_PASSWORD];
    const c = run([C_TESTSASLAUTHD, ...args, '-f', theirsRealm.socket]);
    const ts = run([process.execPath, TESTSASLAUTHD_JS, ...args, '-f', theirsRealm.socket]);
    assert.equal(c.stdout, '0: OK "Success."\n');
    assert.equal(ts.stdout, c.stdout);
  });
});

describe('the same requests to both daemons give the same reply bytes', () => {
  const long = Buffer.alloc(257, 0x61);
  const fiveFields = Buffer.concat([request('good', GOOD, 'imap', ''), request('192.0.2.1;4000')]);
  const cases: [string, Buffer, boolean][] = [
    ['right password', request('good', GOOD, 'imap', ''), false],
    ['wrong password', request('good', 'wrong-pass', 'imap', ''), false],
    ['unknown user', request('nobody', 'wrong-pass', 'imap', ''), false],
    ['account refused', request('alice', ACCT_PASSWORD, 'imap', ''), false],
    ['256-byte password', request('long', LONG, 'imap', ''), false],
    ['256-byte password, last byte changed', request('long', Buffer.concat([LONG.subarray(0, 255), Buffer.from('x')]), 'imap', ''), false],
    ['non-UTF-8 password', request('bin', BINARY, 'imap', ''), false],
    ['257-byte login', request(long, 'x', 'imap', ''), false],
    ['257-byte password', request('good', long, 'imap', ''), false],
    ['257-byte service', request('good', 'x', long, ''), false],
    ['257-byte realm', request('good', 'x', 'imap', long), false],
    ['length prefix 65535', Buffer.from([0xff, 0xff, 1, 2, 3]), false],
    ['empty login', request('', 'x', 'imap', ''), false],
    ['empty password', request('good', '', 'imap', ''), false],
    ['embedded NUL in login', request(Buffer.from('good\0zz'), GOOD, 'imap', ''), false],
    ['login that is only a NUL', request(Buffer.from('\0'), GOOD, 'imap', ''), false],
    ['empty service', request('good', GOOD, '', ''), false],
    ['realm without -r', request('good', GOOD, 'imap', 'example.org'), false],
    ['a 5th field (client address)', fiveFields, false],
    ['two requests in one write', Buffer.concat([request('good', GOOD, 'imap', ''), request('good', 'x', 'imap', '')]), false],
    ['EOF inside the password', request('good', GOOD, 'imap', '').subarray(0, 10), true],
    ['EOF after three fields', request('good', GOOD, 'imap'), true],
    ['nothing at all', Buffer.alloc(0), true],
  ];
  for (const [name, bytes, endAfterSend] of cases) {
    test(name, async () => {
      const fromC = await exchange(theirs.socket, bytes, { endAfterSend });
      const fromOurs = await exchange(ours.socket, bytes, { endAfterSend });
      assert.equal(fromOurs.toString('hex'), fromC.toString('hex'));
    });
  }
});

test('no password used here appears in our logs', () => {
  assertNoSecretsLogged([GOOD, REALM_USER_PASSWORD, ACCT_PASSWORD, LONG, 'wrong-pass']);
});
