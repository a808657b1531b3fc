/**
 * `-a ldap` through the whole daemon, beside Debian's C saslauthd with the same `-O` file and
 * the same slapd: the same requests give the same reply bytes (the differences the README
 * lists are asserted as such). Also: a stalled slapd answered NO by the mechanism's own
 * deadline with the worker kept; slapd down then back without restarting the daemon; a
 * config the mechanism cannot honour stops the daemon at start; no secret in any log.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Daemon } from './helpers/daemon.js';
import { exchange, request } from './helpers/raw-client.js';
import { assertNoSecretsLogged } from './helpers/secrets.js';
import { childPids } from './helpers/processes.js';
import { Slapd, hash, makeTestCa, personDn, type TestCa } from './helpers/slapd.js';
import {
  ALICE, BOB, DAVE, GROUP_DN, JURGEN, PEOPLE, SERVICE_PASSWORD, STAR, directoryLdif, schemeUsers, writeLdapConfig,
} from './helpers/ldap-fixture.js';

const LDAP_PORT = 21201;
const LDAPS_PORT = 21202;
const CHANGED_PASSWORD = 'Alice-changed-9';
/** Nothing listens here: the first URI of the failover case. */
const DEAD_PORT = 21209;

const schemes = schemeUsers();
let ca: TestCa;
let slapd: Slapd;
let scratch: string;
const daemons: Daemon[] = [];

before(async () => {
  ca = makeTestCa();
  scratch = mkdtempSync('/tmp/ldap-daemon-test-');
  slapd = await Slapd.start({ ldapPort: LDAP_PORT, ldapsPort: LDAPS_PORT, ca, ldif: directoryLdif(schemes), servicePassword: SERVICE_PASSWORD });
});

after(async () => {
  for (const daemon of daemons) await daemon.dispose();
  await slapd?.dispose();
  rmSync(scratch, { recursive: true, force: true });
  if (ca) rmSync(ca.directory, { recursive: true, force: true });
});

async function start(configPath: string, options: { c?: boolean; args?: string[]; workers?: number } = {}): Promise<Daemon> {
  const args = ['-O', configPath, '-n', String(options.workers ?? 2), ...(options.args ?? [])];
  const daemon = await Daemon.start({ c: options.c ?? false, mechanism: 'ldap', args });
  daemons.push(daemon);
  return daemon;
}

type Request = [label: string, login: string | Buffer, password: string | Buffer, service: string, realm: string];

function ask(daemon: Daemon, [, login, password, service, realm]: Request): Promise<Buffer> {
  const bytes = (value: string | Buffer): Buffer => (typeof value === 'string' ? Buffer.from(value, 'utf8') : value);
  return exchange(daemon.socket, request(bytes(login), bytes(password), bytes(service), bytes(realm)));
}

const REQUESTS: Request[] = [
  ['right password', ALICE.login, ALICE.password, 'imap', ''],
  ['wrong password', ALICE.login, 'Wrong-pass-0', 'imap', ''],
  ['unknown user', 'nobody-here', ALICE.password, 'imap', ''],
  ['other user', BOB.login, BOB.password, 'smtp', ''],
  ['login with * ( ) \\', STAR.login, STAR.password, 'imap', ''],
  ['login *', '*', ALICE.password, 'imap', ''],
  ['login a*', 'a*', ALICE.password, 'imap', ''],
  ['login closing the filter', 'alice)(|(uid=*', ALICE.password, 'imap', ''],
  ['UTF-8 login and password', JURGEN.login, JURGEN.password, 'imap', ''],
  ['realm field (not -r)', ALICE.login, ALICE.password, 'imap', 'example.com'],
  ['latin-1 login byte', Buffer.from('j\xfcrgen', 'latin1'), JURGEN.password, 'imap', ''],
  ...schemes.slice(0, 4).map((user): Request => [`custom-only user ${user.scheme} by bind`, user.login, user.password, 'imap', '']),
];

describe('same replies as the C saslauthd (same -O file, same slapd)', () => {
  const configs: [string, Record<string, string>][] = [
    ['bind', { ldap_auth_method: 'bind' }],
    ['custom', { ldap_auth_method: 'custom' }],
    ['fastbind', { ldap_auth_method: 'fastbind', ldap_filter: `uid=%u,${PEOPLE}` }],
    ['bind + group', { ldap_group_dn: GROUP_DN }],
    ['filter by mail, -r', { ldap_filter: '(mail=%u)' }],
    ['ldaps://', { ldap_servers: `ldaps://localhost:${LDAPS_PORT}/`, ldap_tls_cacert_file: '{CA}' }],
    ['StartTLS', { ldap_servers: `ldap://localhost:${LDAP_PORT}/`, ldap_start_tls: 'yes', ldap_tls_cacert_file: '{CA}' }],
    ['ldaps:// from an unknown CA', { ldap_servers: `ldaps://localhost:${LDAPS_PORT}/`, ldap_tls_cacert_file: '{OTHER_CA}' }],
    ['ldapi://', { ldap_servers: '{LDAPI}' }],
    ['failover to the second URI', { ldap_servers: `ldap://127.0.0.1:${DEAD_PORT}/ ldap://127.0.0.1:${LDAP_PORT}/` }],
  ];
  for (const [name, keys] of configs) {
    test(name, async () => {
      const placeholders: Record<string, string> = { '{CA}': ca.caFile, '{OTHER_CA}': ca.otherCaFile, '{LDAPI}': slapd.ldapiUri };
      const resolved = Object.fromEntries(Object.entries(keys).map(([key, value]) => [key, placeholders[value] ?? value]));
      const path = writeLdapConfig(scratch, `${name.replace(/\W+/g, '-')}.conf`, { ldap_servers: `ldap://127.0.0.1:${LDAP_PORT}/`, ...resolved });
      const extra = name.includes('-r') ? ['-r'] : [];
      const ours = await start(path, { args: extra });
      const theirs = await start(path, { c: true, args: extra });
      const requests = name.includes('-r') ? [...REQUESTS, ['dave + realm', DAVE.login, DAVE.password, 'imap', DAVE.realm] as Request] : REQUESTS;
      for (const req of requests) {
        const [ourReply, theirReply] = [await ask(ours, req), await ask(theirs, req)];
        assert.deepEqual(ourReply, theirReply, `${name} / ${req[0]}: ours ${ourReply.subarray(2).toString('latin1')}, C ${theirReply.subarray(2).toString('latin1')}`);
      }
      // Equal replies mean something only if the setup works: the right login gets OK
      // (by mail for the -r case), and nothing at all from a server of an unknown CA.
      const right: Request = name.includes('-r') ? ['dave', DAVE.login, DAVE.password, 'imap', DAVE.realm] : REQUESTS[0]!;
      assert.equal((await ask(ours, right)).subarray(2).toString(), name.includes('unknown CA') ? 'NO' : 'OK', name);
    });
  }
});

test('through the daemon: stalled slapd → NO before --job-timeout, the worker stays; then OK', async () => {
  const path = writeLdapConfig(scratch, 'stall.conf', { ldap_servers: `ldap://127.0.0.1:${LDAP_PORT}/`, ldap_timeout: '1' });
  const ours = await start(path, { args: ['--job-timeout', '4000'], workers: 1 });
  const ok = (): Promise<Buffer> => ask(ours, ['alice', ALICE.login, ALICE.password, 'imap', '']);
  assert.equal((await ok()).subarray(2).toString(), 'OK');
  const workersBefore = childPids(ours.pid);
  slapd.pause();
  try {
    const started = Date.now();
    assert.equal((await ok()).subarray(2).toString(), 'NO');
    assert.ok(Date.now() - started < 4_000, 'answered by the mechanism, not by the job timeout');
  } finally {
    slapd.resume();
  }
  assert.equal((await ok()).subarray(2).toString(), 'OK');
  assert.deepEqual(childPids(ours.pid), workersBefore, 'the same worker answered: it was not replaced');
});

test('through the daemon: slapd down, then back, no daemon restart', async () => {
  const path = writeLdapConfig(scratch, 'outage.conf', { ldap_servers: `ldap://127.0.0.1:${LDAP_PORT}/` });
  const ours = await start(path, { workers: 1 });
  const ok = async (): Promise<string> => (await ask(ours, ['alice', ALICE.login, ALICE.password, 'imap', ''])).subarray(2).toString();
  assert.equal(await ok(), 'OK');
  await slapd.stop();
  assert.equal(await ok(), 'NO');
  await slapd.run();
  assert.equal(await ok(), 'OK');
});

test('ldaps:// through the daemon', async () => {
  const path = writeLdapConfig(scratch, 'ldaps.conf', { ldap_servers: `ldaps://localhost:${LDAPS_PORT}/`, ldap_tls_cacert_file: ca.caFile });
  const ours = await start(path);
  assert.equal((await ask(ours, ['alice', ALICE.login, ALICE.password, 'imap', ''])).subarray(2).toString(), 'OK');
});

test('a key we cannot honour, or an invalid file, stops the daemon at start naming it', async () => {
  const sasl = writeLdapConfig(scratch, 'sasl.conf', { ldap_use_sasl: 'yes', ldap_mech: 'EXTERNAL' });
  const refused = await Daemon.startFailing({ mechanism: 'ldap', args: ['-O', sasl] });
  assert.equal(refused.code, 1);
  assert.match(refused.output, /failed to initialize mechanism ldap/);
  assert.match(refused.output, /ldap_mech: EXTERNAL authenticates this daemon/);
  const broken = join(scratch, 'broken.conf');
  writeFileSync(broken, 'ldap_search_base dc=example,dc=org\n');
  const invalid = await Daemon.startFailing({ mechanism: 'ldap', args: ['-O', broken] });
  assert.equal(invalid.code, 1);
  assert.match(invalid.output, /broken\.conf:1/);
});

test('a password changed in the directory: the old one is refused at once (the C daemon still takes it: cyrus-sasl#550)', async () => {
  // fastbind: nothing re-binds the C daemon's connection between two requests of one user.
  const path = writeLdapConfig(scratch, 'change.conf', { ldap_servers: `ldap://127.0.0.1:${LDAP_PORT}/`, ldap_auth_method: 'fastbind', ldap_filter: `uid=%u,${PEOPLE}` });
  const ours = await start(path, { workers: 1 });
  const theirs = await start(path, { c: true, workers: 1 });
  const text = async (daemon: Daemon, password: string): Promise<string> => (await ask(daemon, ['alice', ALICE.login, password, 'imap', ''])).subarray(2).toString();
  const dn = personDn(ALICE.login, PEOPLE);
  assert.equal(await text(ours, ALICE.password), 'OK');
  assert.equal(await text(theirs, ALICE.password), 'OK');
  await slapd.setPassword(dn, hash.digest('SSHA', 'sha1', CHANGED_PASSWORD, hash.salt()));
  try {
    assert.equal(await text(ours, ALICE.password), 'NO');
    assert.equal(await text(ours, CHANGED_PASSWORD), 'OK');
    // The original's "already bound as this user" shortcut: its worker last bound as alice
    // with the old password, so it answers OK without asking the server.
    assert.equal(await text(theirs, ALICE.password), 'OK');
  } finally {
    await slapd.setPassword(dn, hash.digest('SSHA', 'sha1', ALICE.password, hash.salt()));
  }
});

test('no password or bind password in any daemon log', () => {
  assertNoSecretsLogged([ALICE.password, CHANGED_PASSWORD, BOB.password, STAR.password, JURGEN.password, DAVE.password, SERVICE_PASSWORD, 'Wrong-pass-0', ...schemes.map((user) => user.password)]);
});
