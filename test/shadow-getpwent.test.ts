/**
 * The shadow and getpwent mechanisms against this machine's real account databases, as root
 * (CI is root): throwaway local users (created with useradd/usermod/chage, removed in
 * `after` even when a test fails) with yescrypt, sha512crypt and md5crypt hashes, a locked
 * account, an expired account, an expired password. Every request goes to our daemon and to
 * Debian's C saslauthd started with the same options: the reply bytes must be the same.
 *
 * getpwent on a shadowed system always fails (pw_passwd is `x`); to see it accept a
 * password, both daemons also run in a private mount namespace (unshare -m) where a scratch
 * copy of /etc/passwd with a hash in the password field is bind-mounted over /etc/passwd:
 * the machine's own /etc/passwd never changes.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { checkShadowEntry } from '../src/mechanisms/shadow.js';
import { epochDay } from '../src/mechanisms/passwd-replies.js';
import { Daemon } from './helpers/daemon.js';
import { exchange, replyFrame, request } from './helpers/raw-client.js';
import { assertNoSecretsLogged } from './helpers/secrets.js';

const isRoot = process.getuid?.() === 0;
const skip = !isRoot && 'needs root (useradd, /etc/shadow)';
const tag = process.pid % 100_000;
const user = (role: string): string => `tslocal${role}${tag}`;

const YES = { name: user('y'), password: Buffer.from('Yescrypt-pass-1') };
const SHA = { name: user('s'), password: Buffer.from('Sha512crypt-pass-2') };
const MD5 = { name: user('m'), password: Buffer.from('Md5crypt-pass-3') };
const LOCKED = { name: user('l'), password: Buffer.from('Locked-pass-4') };
const EXPIRED_ACCOUNT = { name: user('e'), password: Buffer.from('Expired-acct-5') };
const EXPIRED_PASSWORD = { name: user('p'), password: Buffer.from('Expired-pw-6') };
const LONG = { name: user('g'), password: Buffer.alloc(200, 'Long-pass-7/') };
const BINARY = { name: user('b'), password: Buffer.from([0x4e, 0x6f, 0xff, 0x80, 0xfe, 0xc3, 0x28, 0x55, 0x74, 0x66, 0x38]) };
/** A user that exists only in the scratch /etc/passwd, with its hash in the password field. */
const UNSHADOWED = { name: user('u'), password: Buffer.from('Unshadowed-pass-8') };

const created: string[] = [];
const hashes: Buffer[] = [];
let scratch: string;
const daemons: Daemon[] = [];
let shadowPair: { ours: Daemon; theirs: Daemon };
let getpwentPair: { ours: Daemon; theirs: Daemon };
let unshadowedPair: { ours: Daemon; theirs: Daemon };
let shadowUnshadowedPair: { ours: Daemon; theirs: Daemon };

function hashWith(tool: 'yescrypt' | 'sha512crypt' | 'md5crypt', password: Buffer): Buffer {
  const hash =
    tool === 'yescrypt'
      ? execFileSync('mkpasswd', ['--method=yescrypt', '--stdin'], { input: password })
      : execFileSync('openssl', ['passwd', tool === 'sha512crypt' ? '-6' : '-1', '-stdin'], { input: password });
  const trimmed = Buffer.from(hash.toString('latin1').trim(), 'latin1');
  hashes.push(trimmed);
  return trimmed;
}

function addUser(name: string, hash: Buffer): void {
  execFileSync('useradd', ['--no-create-home', '--no-user-group', '--shell', '/usr/sbin/nologin', name]);
  created.push(name);
  execFileSync('usermod', ['-p', hash.toString('latin1'), name]);
}

async function startPair(mechanism: string, wrap?: readonly string[]): Promise<{ ours: Daemon; theirs: Daemon }> {
  const common = { mechanism, args: ['-n', '1'], ...(wrap ? { wrap } : {}) };
  const ours = await Daemon.start(common);
  daemons.push(ours);
  const theirs = await Daemon.start({ ...common, c: true });
  daemons.push(theirs);
  return { ours, theirs };
}

/** Sends the same request to both daemons; asserts the same bytes and returns our reply text. */
async function both(pair: { ours: Daemon; theirs: Daemon }, login: string | Buffer, password: Buffer, realm = ''): Promise<string> {
  const bytes = request(login, password, 'imap', realm);
  const [ours, theirs] = await Promise.all([exchange(pair.ours.socket, bytes), exchange(pair.theirs.socket, bytes)]);
  assert.deepEqual(ours, theirs, `ours ${JSON.stringify(ours.toString('latin1'))}, C ${JSON.stringify(theirs.toString('latin1'))}`);
  return ours.subarray(2).toString('latin1');
}

function lastByteChanged(password: Buffer): Buffer {
  const changed = Buffer.from(password);
  changed[changed.length - 1]! ^= 0x01;
  return changed;
}

before(async () => {
  if (!isRoot) return;
  addUser(YES.name, hashWith('yescrypt', YES.password));
  addUser(SHA.name, hashWith('sha512crypt', SHA.password));
  addUser(MD5.name, hashWith('md5crypt', MD5.password));
  addUser(LOCKED.name, hashWith('sha512crypt', LOCKED.password));
  execFileSync('usermod', ['-L', LOCKED.name]);
  addUser(EXPIRED_ACCOUNT.name, hashWith('yescrypt', EXPIRED_ACCOUNT.password));
  execFileSync('chage', ['-E', '2000-01-01', EXPIRED_ACCOUNT.name]);
  addUser(EXPIRED_PASSWORD.name, hashWith('sha512crypt', EXPIRED_PASSWORD.password));
  execFileSync('chage', ['-d', '2000-01-01', '-M', '30', EXPIRED_PASSWORD.name]);
  addUser(LONG.name, hashWith('sha512crypt', LONG.password));
  addUser(BINARY.name, hashWith('yescrypt', BINARY.password));

  scratch = mkdtempSync('/tmp/tslocal-');
  const passwdCopy = join(scratch, 'passwd');
  const unshadowedHash = hashWith('sha512crypt', UNSHADOWED.password);
  writeFileSync(
    passwdCopy,
    Buffer.concat([readFileSync('/etc/passwd'), Buffer.from(`${UNSHADOWED.name}:`), unshadowedHash, Buffer.from(':64999:64999::/nonexistent:/usr/sbin/nologin\n')]),
  );

  shadowPair = await startPair('shadow');
  getpwentPair = await startPair('getpwent');
  const privatePasswd = ['unshare', '-m', '--propagation', 'private', 'sh', '-c', 'mount --bind "$0" /etc/passwd && exec "$@"', passwdCopy];
  unshadowedPair = await startPair('getpwent', privatePasswd);
  shadowUnshadowedPair = await startPair('shadow', privatePasswd);
});

after(async () => {
  for (const daemon of daemons) await daemon.dispose();
  const failures: string[] = [];
  for (const name of created) {
    try {
      execFileSync('userdel', [name], { stdio: ['ignore', 'ignore', 'pipe'] });
    } catch (error) {
      failures.push(`${name}: ${(error as Error).message}`); // try the others first
    }
  }
  if (scratch) rmSync(scratch, { recursive: true, force: true });
  assert.deepEqual(failures, [], 'every throwaway user is removed');
});

describe('shadow: our daemon and the C saslauthd give the same reply bytes', { skip }, () => {
  test('yescrypt, sha512crypt and md5crypt: right password OK, last byte changed NO Incorrect password', async () => {
    for (const { name, password } of [YES, SHA, MD5]) {
      assert.equal(await both(shadowPair, name, password), 'OK', name);
      assert.equal(await both(shadowPair, name, lastByteChanged(password)), 'NO Incorrect password', name);
    }
  });

  test('a 200-byte password, and the same with its last byte changed', async () => {
    assert.equal(LONG.password.length, 200);
    assert.equal(await both(shadowPair, LONG.name, LONG.password), 'OK');
    assert.equal(await both(shadowPair, LONG.name, lastByteChanged(LONG.password)), 'NO Incorrect password');
  });

  test('non-UTF-8 bytes in the password reach crypt unchanged; in a login they find no user', async () => {
    assert.equal(await both(shadowPair, BINARY.name, BINARY.password), 'OK');
    assert.equal(await both(shadowPair, BINARY.name, lastByteChanged(BINARY.password)), 'NO Incorrect password');
    assert.equal(await both(shadowPair, Buffer.from([0x74, 0xff, 0x80]), BINARY.password), 'NO Invalid username');
  });

  test('a login cannot forge a log line: control bytes are escaped in our debug lines', async () => {
    const forged = `${YES.name}\nauth success: [user=forged${tag}]`;
    assert.equal(await both(shadowPair, forged, YES.password), 'NO Invalid username');
    await shadowPair.ours.waitForLog(/getpwnam\(tslocal\S*\\x0aauth success: \[user=forged\d+\]\): invalid username/);
    assert.doesNotMatch(shadowPair.ours.logs, /^\S+ :auth success: \[user=forged/m);
  });

  test('a locked account (usermod -L) fails as a wrong password', async () => {
    assert.equal(await both(shadowPair, LOCKED.name, LOCKED.password), 'NO Incorrect password');
  });

  test('an expired account (chage -E): NO Account expired, but a wrong password is checked first', async () => {
    assert.equal(await both(shadowPair, EXPIRED_ACCOUNT.name, EXPIRED_ACCOUNT.password), 'NO Account expired');
    assert.equal(await both(shadowPair, EXPIRED_ACCOUNT.name, lastByteChanged(EXPIRED_ACCOUNT.password)), 'NO Incorrect password');
  });

  test('an expired password (chage -d 2000-01-01 -M 30): NO Password expired', async () => {
    assert.equal(await both(shadowPair, EXPIRED_PASSWORD.name, EXPIRED_PASSWORD.password), 'NO Password expired');
  });

  test('the auth failure log lines are the same in both daemons', async () => {
    const line = `auth failure: [user=${EXPIRED_ACCOUNT.name}] [service=imap] [realm=] [mech=shadow] [reason=Account expired]`;
    await both(shadowPair, EXPIRED_ACCOUNT.name, EXPIRED_ACCOUNT.password);
    await shadowPair.ours.waitForLog(new RegExp(line.replace(/[[\]]/g, '\\$&')));
    await shadowPair.theirs.waitForLog(new RegExp(line.replace(/[[\]]/g, '\\$&')));
  });

  test('an unknown user; an empty password is refused before the mechanism; the realm is ignored', async () => {
    assert.equal(await both(shadowPair, `${YES.name}x`, YES.password), 'NO Invalid username');
    assert.equal(await both(shadowPair, SHA.name, SHA.password, 'example.org'), 'OK');
    assert.equal(await both(shadowPair, SHA.name, Buffer.alloc(0)), 'NO NULL password received');
  });

  test('a user in /etc/passwd without a shadow entry: NO Invalid shadow username', async () => {
    assert.equal(await both(shadowUnshadowedPair, UNSHADOWED.name, UNSHADOWED.password), 'NO Invalid shadow username');
    assert.equal(await both(shadowUnshadowedPair, YES.name, YES.password), 'OK');
  });
});

describe('getpwent: our daemon and the C saslauthd give the same reply bytes', { skip }, () => {
  test('on a shadowed system every password fails (pw_passwd is x)', async () => {
    for (const { name, password } of [YES, SHA, MD5, LONG]) {
      assert.equal(await both(getpwentPair, name, password), 'NO Incorrect password', name);
    }
    assert.equal(await both(getpwentPair, Buffer.from('x'), Buffer.from('x')), 'NO Invalid username');
    assert.equal(await both(getpwentPair, `${YES.name}x`, YES.password), 'NO Invalid username');
  });

  test('a hash in /etc/passwd itself (private bind mount): right password OK, wrong one refused', async () => {
    assert.equal(await both(unshadowedPair, UNSHADOWED.name, UNSHADOWED.password), 'OK');
    assert.equal(await both(unshadowedPair, UNSHADOWED.name, lastByteChanged(UNSHADOWED.password)), 'NO Incorrect password');
    assert.equal(await both(unshadowedPair, `${UNSHADOWED.name}x`, UNSHADOWED.password), 'NO Invalid username');
  });
});

describe('the shadow checks with a fixed "today" (no daemon)', () => {
  const hash = Buffer.from(execFileSync('openssl', ['passwd', '-6', '-stdin'], { input: 'Unit-pass-1' }).toString().trim());
  const quiet = { debug: () => {}, debugAlways: () => {}, info: () => {}, error: () => {} };
  const request = { login: Buffer.from('unit'), password: Buffer.from('Unit-pass-1'), service: Buffer.alloc(0), realm: Buffer.alloc(0) };
  const entry = { hash, lastChange: -1, maxDays: -1, expire: -1 };
  const reply = (changes: Partial<typeof entry>, today = 20_000, password = request.password): string =>
    checkShadowEntry({ ...request, password }, { ...entry, ...changes }, today, quiet).reply;

  test('account expiry: today > sp_expire expires, the day itself does not', () => {
    assert.equal(reply({ expire: 20_000 }), 'OK');
    assert.equal(reply({ expire: 19_999 }), 'NO Account expired');
  });

  test('password expiry: lstchg + max < today expires, equal does not; -1 or a missing half never does', () => {
    assert.equal(reply({ lastChange: 19_970, maxDays: 30 }), 'OK');
    assert.equal(reply({ lastChange: 19_969, maxDays: 30 }), 'NO Password expired');
    assert.equal(reply({ lastChange: -1, maxDays: 1 }), 'OK');
    assert.equal(reply({ lastChange: 1, maxDays: -1 }), 'OK');
    assert.equal(reply({ lastChange: 0, maxDays: 99_999 }), 'OK', 'a forced change (lstchg 0) is not checked, as in the original');
  });

  test('*NP* comes first; a wrong password comes before expiry', () => {
    assert.equal(reply({ hash: Buffer.from('*NP*') }), 'NO Insufficient permission to access NIS authentication database (saslauthd)');
    assert.equal(reply({ expire: 1 }, 20_000, Buffer.from('Unit-pass-2')), 'NO Incorrect password');
  });

  test('today is days since the epoch, as time(NULL) / 86400', () => {
    assert.equal(epochDay(Date.UTC(2000, 0, 1, 23, 59, 59)), 10_957);
    assert.equal(epochDay(Date.UTC(2000, 0, 2)), 10_958);
  });
});

test('without a loadable libcrypt, shadow and getpwent refuse to start: failed to initialize mechanism, exit 1', { skip }, async () => {
  // libcrypt.so.1 is hidden behind /dev/null in a private mount namespace (Node does not link it).
  const library = realpathSync('/lib/x86_64-linux-gnu/libcrypt.so.1');
  const wrap = ['unshare', '-m', '--propagation', 'private', 'sh', '-c', 'mount --bind /dev/null "$0" && exec "$@"', library];
  for (const mechanism of ['shadow', 'getpwent']) {
    const runDirectory = mkdtempSync('/tmp/sts-');
    try {
      const result = await Daemon.startFailing({ mechanism, args: ['-n', '1'], wrap, runDirectory });
      assert.equal(result.code, 1, result.output);
      assert.match(result.output, new RegExp(`failed to initialize mechanism ${mechanism}\\n.*cannot load "libcrypt\\.so\\.1"`));
      assert.deepEqual(readdirSync(runDirectory), [], 'no lock or pid file left');
    } finally {
      rmSync(runDirectory, { recursive: true, force: true });
    }
  }
});

test('our replies reach the client as one frame each', { skip }, async () => {
  const bytes = await exchange(shadowPair.ours.socket, request(YES.name, YES.password, 'imap', ''));
  assert.deepEqual(bytes, replyFrame('OK'));
});

test('no password or hash in any daemon log line', { skip }, () => {
  const secrets = [YES, SHA, MD5, LOCKED, EXPIRED_ACCOUNT, EXPIRED_PASSWORD, LONG, BINARY, UNSHADOWED].map((entry) => entry.password);
  assertNoSecretsLogged([...secrets, ...hashes]);
});
