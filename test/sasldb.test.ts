/**
 * The sasldb mechanism against databases made by Debian's own saslpasswd2 (sasl2-bin):
 *   - in a scratch path, named with `-O` (our way to name another database);
 *   - at the compiled-in default /etc/sasldb2, inside a private mount namespace (unshare -m)
 *     where the scratch database is bind-mounted over it: the machine's /etc never changes.
 * Debian's C saslauthd (whose path is compiled in) runs in the same kind of namespace and gets
 * the same requests: the reply bytes must be the same.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { lookupRealm, sasldbKey, sasldbPathFor, storedPasswordMatches } from '../src/mechanisms/sasldb.js';
import { Daemon } from './helpers/daemon.js';
import { childPids, eventually } from './helpers/processes.js';
import { exchange, request } from './helpers/raw-client.js';
import { assertNoSecretsLogged } from './helpers/secrets.js';

const isRoot = process.getuid?.() === 0;
const DEFAULT_SASLDB = '/etc/sasldb2';
const skip = (!isRoot && 'needs root (mount namespaces)') || (!existsSync(DEFAULT_SASLDB) && `${DEFAULT_SASLDB} (made by sasl2-bin) is missing`);

const REALM = 'example.org';
const HOST = hostname();
const ALICE = { name: 'alice', realm: REALM, password: 'Sasldb-alice-1' };
const BOB = { name: 'bob', realm: HOST, password: 'Sasldb-bob-2' };
const CAROL = { name: 'carol', realm: 'other.example', password: 'Sasldb-carol-3' };
const DELETED = { name: 'dave', realm: REALM, password: 'Sasldb-dave-4' };
const LONG = { name: 'long', realm: REALM, password: 'L'.repeat(199) + 'g' };

let scratch: string;
let database: string;
const daemons: Daemon[] = [];
let byOption: { ours: Daemon; theirs: Daemon };
let byDefault: { ours: Daemon; theirs: Daemon };
let appendRealm: { ours: Daemon; theirs: Daemon };

function saslpasswd2(args: string[], password?: string): void {
  execFileSync('saslpasswd2', ['-f', database, ...args], { input: password ?? '', stdio: ['pipe', 'ignore', 'pipe'] });
}

/** The C daemon (and ours without -O) see the scratch database at /etc/sasldb2. */
function privateSasldb(): string[] {
  return ['unshare', '-m', '--propagation', 'private', 'sh', '-c', 'mount --bind "$0" /etc/sasldb2 && exec "$@"', database];
}

async function start(options: { wrap?: string[]; args: string[]; c?: boolean }): Promise<Daemon> {
  const daemon = await Daemon.start({ mechanism: 'sasldb', ...options });
  daemons.push(daemon);
  return daemon;
}

async function both(pair: { ours: Daemon; theirs: Daemon }, login: string, password: string, realm: string): Promise<string> {
  const bytes = request(login, password, 'imap', realm);
  const [ours, theirs] = await Promise.all([exchange(pair.ours.socket, bytes), exchange(pair.theirs.socket, bytes)]);
  assert.deepEqual(ours, theirs, `ours ${JSON.stringify(ours.toString('latin1'))}, C ${JSON.stringify(theirs.toString('latin1'))}`);
  return ours.subarray(2).toString('latin1');
}

before(async () => {
  if (skip) return;
  scratch = mkdtempSync('/tmp/tslocal-sasldb-');
  database = join(scratch, 'sasldb2');
  for (const user of [ALICE, BOB, CAROL, DELETED, LONG]) saslpasswd2(['-p', '-c', '-u', user.realm, user.name], user.password);
  saslpasswd2(['-d', '-u', DELETED.realm, DELETED.name]);
  const theirs = await start({ wrap: privateSasldb(), args: ['-n', '1'], c: true });
  byOption = { ours: await start({ args: ['-n', '1', '-O', database] }), theirs };
  byDefault = { ours: await start({ wrap: privateSasldb(), args: ['-n', '1'] }), theirs };
  appendRealm = {
    ours: await start({ args: ['-n', '1', '-r', '-O', database] }),
    theirs: await start({ wrap: privateSasldb(), args: ['-n', '1', '-r'], c: true }),
  };
});

after(async () => {
  for (const daemon of daemons) await daemon.dispose();
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});

for (const [label, pair] of [
  ['-O <scratch database>', () => byOption],
  ['the default /etc/sasldb2 (private bind mount)', () => byDefault],
] as const) {
  describe(`sasldb at ${label}: the same reply bytes as the C saslauthd`, { skip }, () => {
    test('a user with a realm: right password OK; wrong password, no realm, another realm NO', async () => {
      assert.equal(await both(pair(), ALICE.name, ALICE.password, ALICE.realm), 'OK');
      assert.equal(await both(pair(), ALICE.name, `${ALICE.password}x`, ALICE.realm), 'NO');
      assert.equal(await both(pair(), ALICE.name, ALICE.password.slice(0, -1), ALICE.realm), 'NO');
      assert.equal(await both(pair(), ALICE.name, ALICE.password, ''), 'NO');
      assert.equal(await both(pair(), ALICE.name, ALICE.password, CAROL.realm), 'NO');
    });

    test('an empty realm means the hostname (gethostname, not the FQDN)', async () => {
      assert.equal(await both(pair(), BOB.name, BOB.password, ''), 'OK');
      assert.equal(await both(pair(), BOB.name, BOB.password, HOST), 'OK');
      assert.equal(await both(pair(), BOB.name, 'Sasldb-bob-3', ''), 'NO');
    });

    test('a login containing @ is looked up as it is, in the request realm', async () => {
      assert.equal(await both(pair(), `${ALICE.name}@${ALICE.realm}`, ALICE.password, ''), 'NO');
      assert.equal(await both(pair(), `${CAROL.name}@${CAROL.realm}`, CAROL.password, CAROL.realm), 'NO');
      assert.equal(await both(pair(), CAROL.name, CAROL.password, CAROL.realm), 'OK');
    });

    test('a deleted user (saslpasswd2 -d) and an unknown user: NO', async () => {
      assert.equal(await both(pair(), DELETED.name, DELETED.password, DELETED.realm), 'NO');
      assert.equal(await both(pair(), 'nobody-here', 'whatever-pass', REALM), 'NO');
    });

    test('a 200-byte password, and the same with its last byte changed', async () => {
      assert.equal(LONG.password.length, 200);
      assert.equal(await both(pair(), LONG.name, LONG.password, LONG.realm), 'OK');
      assert.equal(await both(pair(), LONG.name, `${LONG.password.slice(0, -1)}h`, LONG.realm), 'NO');
    });
  });
}

describe('sasldb with -r', { skip }, () => {
  test('the auth failure log line is the same in both daemons', async () => {
    const line = /auth failure: \[user=alice@example\.org\] \[service=imap\] \[realm=example\.org\] \[mech=sasldb\] \[reason=[^\]]*\]/;
    await both(appendRealm, ALICE.name, ALICE.password, ALICE.realm);
    await appendRealm.ours.waitForLog(line);
    await appendRealm.theirs.waitForLog(line);
    assert.equal(line.exec(appendRealm.ours.logs)![0], line.exec(appendRealm.theirs.logs)![0]);
  });

  test('login@realm is looked up in realm: saslpasswd2 users are not found, in both daemons', async () => {
    assert.equal(await both(appendRealm, ALICE.name, ALICE.password, ALICE.realm), 'NO');
    assert.equal(await both(appendRealm, BOB.name, BOB.password, ''), 'OK');
  });
});

describe('a database that cannot be used stops the start', { skip }, () => {
  test('-O naming a missing file, a file that is not a database, a relative path: failed to initialize mechanism sasldb, exit 1', async () => {
    const notADatabase = join(scratch, 'saslauthd.conf');
    writeFileSync(notADatabase, 'ldap_servers: ldap://localhost/\n');
    for (const path of [join(scratch, 'missing'), notADatabase, 'sasldb2']) {
      const runDirectory = mkdtempSync('/tmp/sts-');
      try {
        const result = await Daemon.startFailing({ mechanism: 'sasldb', args: ['-n', '1', '-O', path], runDirectory });
        assert.equal(result.code, 1, result.output);
        assert.match(result.output, /failed to initialize mechanism sasldb\n.*(cannot open .* as a Berkeley DB hash database|must be absolute)/);
        assert.ok(result.output.includes(path), result.output);
        // Checked before the lock, as the original: nothing is left in the run directory.
        assert.deepEqual(readdirSync(runDirectory), []);
      } finally {
        rmSync(runDirectory, { recursive: true, force: true });
      }
    }
  });
});

test('without a loadable libdb-5.3, sasldb refuses to start: failed to initialize mechanism sasldb, exit 1', { skip }, async () => {
  // libdb-5.3.so is hidden behind /dev/null in a private mount namespace (Node does not link it).
  const library = realpathSync('/usr/lib/x86_64-linux-gnu/libdb-5.3.so');
  const wrap = ['unshare', '-m', '--propagation', 'private', 'sh', '-c', 'mount --bind /dev/null "$0" && exec "$@"', library];
  const runDirectory = mkdtempSync('/tmp/sts-');
  try {
    const result = await Daemon.startFailing({ mechanism: 'sasldb', args: ['-n', '1'], wrap, runDirectory });
    assert.equal(result.code, 1, result.output);
    assert.match(result.output, /failed to initialize mechanism sasldb\n.*cannot load Berkeley DB library "libdb-5\.3\.so"/);
  } finally {
    rmSync(runDirectory, { recursive: true, force: true });
  }
});

test('an /etc/sasldb2 that is no database (empty file): both daemons start and answer NO; ours warns at start', { skip }, async () => {
  const empty = join(scratch, 'empty');
  writeFileSync(empty, '');
  const wrap = ['unshare', '-m', '--propagation', 'private', 'sh', '-c', 'mount --bind "$0" /etc/sasldb2 && exec "$@"', empty];
  const pair = { ours: await start({ wrap, args: ['-n', '1'] }), theirs: await start({ wrap, args: ['-n', '1'], c: true }) };
  assert.equal(await both(pair, ALICE.name, ALICE.password, ALICE.realm), 'NO');
  assert.match(pair.ours.logs, /auth_sasldb: warning: cannot open \/etc\/sasldb2 as a Berkeley DB hash database/);
  assert.match(pair.ours.logs, /auth_sasldb: cannot open \/etc\/sasldb2/);
});

test('-n 0: a fresh worker per request gives the same answers; no worker stays resident', { skip }, async () => {
  const ours = await start({ args: ['-n', '0', '-O', database] });
  assert.equal(childPids(ours.pid).length, 0, 'no resident worker once listening (the start-up probe has exited)');
  const pair = { ours, theirs: byOption.theirs };
  assert.equal(await both(pair, ALICE.name, ALICE.password, ALICE.realm), 'OK');
  assert.equal(await both(pair, ALICE.name, 'Sasldb-alice-9', ALICE.realm), 'NO');
  await eventually(() => childPids(ours.pid).length === 0, 'one-shot workers exited');
});

test('changes made by saslpasswd2 apply at once (the database is read per request)', { skip }, async () => {
  const user = { name: 'erin', realm: REALM, password: 'Sasldb-erin-5' };
  assert.equal(await both(byOption, user.name, user.password, user.realm), 'NO');
  saslpasswd2(['-p', '-c', '-u', user.realm, user.name], user.password);
  assert.equal(await both(byOption, user.name, user.password, user.realm), 'OK');
  saslpasswd2(['-d', '-u', user.realm, user.name]);
  assert.equal(await both(byOption, user.name, user.password, user.realm), 'NO');
});

describe('sasldb pieces (no daemon)', () => {
  test('the key is login NUL realm NUL userPassword, as saslpasswd2 writes it', () => {
    assert.deepEqual(sasldbKey(Buffer.from('bob'), Buffer.from('ex.org')), Buffer.from('bob\0ex.org\0userPassword'));
  });

  test('an empty realm is the hostname; a given one is kept byte for byte', () => {
    assert.deepEqual(lookupRealm(Buffer.alloc(0), () => 'mailhost'), Buffer.from('mailhost'));
    assert.deepEqual(lookupRealm(Buffer.from([0xff, 0x41]), () => 'mailhost'), Buffer.from([0xff, 0x41]));
  });

  test('passwords compare byte for byte: a prefix, an extension, an empty value never match', () => {
    assert.equal(storedPasswordMatches(Buffer.from('secret'), Buffer.from('secret')), true);
    assert.equal(storedPasswordMatches(Buffer.from('secret'), Buffer.from('secre')), false);
    assert.equal(storedPasswordMatches(Buffer.from('secret'), Buffer.from('secrets')), false);
    assert.equal(storedPasswordMatches(Buffer.alloc(0), Buffer.alloc(0)), false);
  });

  test('-O names the database; without it, /etc/sasldb2', () => {
    assert.equal(sasldbPathFor(undefined), '/etc/sasldb2');
    assert.equal(sasldbPathFor(''), '/etc/sasldb2');
    assert.equal(sasldbPathFor('/srv/sasldb2'), '/srv/sasldb2');
  });
});

test('no password in any daemon log line', { skip }, () => {
  assertNoSecretsLogged([ALICE, BOB, CAROL, DELETED, LONG].map((user) => user.password).concat('Sasldb-erin-5'));
});
