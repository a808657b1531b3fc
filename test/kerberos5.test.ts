/**
 * The kerberos5 mechanism against a real MIT KDC (Debian's krb5-kdc) on loopback with a
 * scratch realm, side by side with Debian's C saslauthd (`-a kerberos5`, same config file,
 * same environment): the same requests give the same reply bytes, except the differences
 * the README lists (the -r double realm, cyrus-sasl#832; our deadline on a silent KDC).
 *
 * Ports (this file's range, 20000–20999): the KDC on 20088, a silent KDC (accepts, never
 * answers) on 20089, nothing on 20090, a front that passes only initial-credential
 * requests to the KDC on 20091.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { Daemon } from './helpers/daemon.js';
import { AsOnlyKdcProxy, SilentKdc } from './helpers/fake-kdcs.js';
import { MitKdc } from './helpers/mit-kdc.js';
import { exchange, replyFrame, request } from './helpers/raw-client.js';
import { assertNoSecretsLogged } from './helpers/secrets.js';

const REALM = 'TS.TEST';
const KDC_PORT = 20088;
const SILENT_KDC_PORT = 20089;
const NO_KDC_PORT = 20090;
const AS_ONLY_PORT = 20091;

const ALICE_PASSWORD = 'Krb5-alice-Pw1';
const CAROL_PASSWORD = 'Krb5-carol-Pw2';
const DAVE_PASSWORD = 'Krb5-dave-Pw3';
const WRONG_PASSWORD = 'Krb5-wrong-Pw9';

/** Our krb5_timeout in these tests (seconds), far below the --job-timeout we give. */
const KRB5_TIMEOUT_S = 2;
const JOB_TIMEOUT_MS = 15_000;
/** Scheduling slack on a loaded 2-core machine for "answered by the deadline". */
const SLACK_MS = 1_500;
/** The C daemon waits for libkrb5's own retries against a silent KDC (~27 s). */
const C_SILENT_KDC_DEADLINE_MS = 90_000;

const OK = 'OK';
const INIT_CREDS_FAILED = 'NO krb5_get_init_creds_password failed';
const VERIFY_FAILED = 'NO krb5_verify_init_creds failed';
const PRINCIPAL_ERROR = 'NO saslauthd principal name error';
const INTERNAL_ERROR = 'NO saslauthd internal error';

let kdc: MitKdc;
let silent: SilentKdc;
let asOnly: AsOnlyKdcProxy;
const daemons: Daemon[] = [];
let env: NodeJS.ProcessEnv;
let mainConf: string;
let realmConf: string;
let noKeyConf: string;

async function pair(conf: string, extra: string[] = []): Promise<{ ours: Daemon; theirs: Daemon }> {
  const common = { mechanism: 'kerberos5', env, args: ['-O', conf, '-n', '1', ...extra] };
  const ours = await Daemon.start({ ...common, args: [...common.args, '--job-timeout', String(JOB_TIMEOUT_MS)] });
  daemons.push(ours);
  const theirs = await Daemon.start({ ...common, c: true });
  daemons.push(theirs);
  return { ours, theirs };
}

async function reply(daemon: Daemon, fields: (string | Buffer)[], deadlineMs?: number): Promise<Buffer> {
  return exchange(daemon.socket, request(...fields), deadlineMs === undefined ? {} : { deadlineMs });
}

let main: { ours: Daemon; theirs: Daemon };
let withRealm: { ours: Daemon; theirs: Daemon };
let noKey: { ours: Daemon; theirs: Daemon };

before(async () => {
  kdc = await MitKdc.start({
    realm: REALM,
    port: KDC_PORT,
    otherRealms: {
      'SILENT.TEST': `127.0.0.1:${SILENT_KDC_PORT}`,
      'GONE.TEST': `127.0.0.1:${NO_KDC_PORT}`,
      'UNRESOLVED.TEST': 'kdc.does-not-exist.invalid',
    },
  });
  silent = await SilentKdc.start(SILENT_KDC_PORT);
  asOnly = await AsOnlyKdcProxy.start(AS_ONLY_PORT, KDC_PORT);
  env = { ...kdc.env };
  kdc.addPrincipal('alice', ALICE_PASSWORD);
  kdc.addPrincipal('carol/mail', CAROL_PASSWORD);
  kdc.addPrincipal('dave/admin', DAVE_PASSWORD);
  // MIT forms host principals from gethostname() in lower case (dns_canonicalize_hostname off).
  const thisHost = `host/${hostname().toLowerCase()}`;
  for (const service of [thisHost, 'imap/saslauthd.ts.test', 'other/saslauthd.ts.test']) kdc.addServicePrincipal(service);
  kdc.exportKeytab(kdc.path('host.keytab'), [thisHost]);
  kdc.exportKeytab(kdc.path('imap.keytab'), ['imap/saslauthd.ts.test']);
  kdc.exportKeytab(kdc.path('other.keytab'), ['other/saslauthd.ts.test']);

  mainConf = kdc.path('main.conf');
  writeFileSync(
    mainConf,
    [
      '# keys of other mechanisms may share the file',
      'ldap_servers: ldap://127.0.0.1:20999/',
      `krb5_keytab: ${kdc.path('host.keytab')}`,
      'krb5_smtp_instance: mail',
      `krb5_timeout: ${KRB5_TIMEOUT_S}`,
      '',
    ].join('\n'),
  );
  realmConf = kdc.path('realm.conf');
  writeFileSync(
    realmConf,
    [
      `krb5_keytab: FILE:${kdc.path('imap.keytab')}`,
      'krb5_verify_principal: imap',
      'krb5_servername: saslauthd.ts.test',
      'krb5_conv_krb4_instance: yes',
      `krb5_timeout: ${KRB5_TIMEOUT_S}`,
      '',
    ].join('\n'),
  );
  noKeyConf = kdc.path('nokey.conf');
  writeFileSync(noKeyConf, `krb5_keytab: ${kdc.path('other.keytab')}\nkrb5_timeout: ${KRB5_TIMEOUT_S}\n`);

  main = await pair(mainConf);
  withRealm = await pair(realmConf, ['-r']);
  noKey = await pair(noKeyConf);
});

after(async () => {
  for (const daemon of daemons) await daemon.dispose();
  await silent?.stop();
  await asOnly?.stop();
  await kdc?.stop();
});

/** Sends the same request to both daemons; asserts the expected reply from each. */
async function compare(
  daemons: { ours: Daemon; theirs: Daemon },
  fields: (string | Buffer)[],
  expected: string,
  expectedFromC = expected,
): Promise<void> {
  const [fromOurs, fromC] = await Promise.all([reply(daemons.ours, fields), reply(daemons.theirs, fields)]);
  assert.equal(fromC.toString('latin1'), replyFrame(expectedFromC).toString('latin1'), 'the C daemon');
  assert.equal(fromOurs.toString('latin1'), replyFrame(expected).toString('latin1'), 'ours');
}

describe('the same replies as the C saslauthd', () => {
  const cases: [string, string[], string][] = [
    ['right password', ['alice', ALICE_PASSWORD, 'imap', ''], OK],
    ['wrong password', ['alice', WRONG_PASSWORD, 'imap', ''], INIT_CREDS_FAILED],
    ['unknown principal', ['nobody', WRONG_PASSWORD, 'imap', ''], INIT_CREDS_FAILED],
    ['realm in the request (no -r)', ['alice', ALICE_PASSWORD, 'imap', REALM], OK],
    ['wrong password with a realm', ['alice', WRONG_PASSWORD, 'imap', REALM], INIT_CREDS_FAILED],
    ['a realm krb5.conf does not know', ['alice', ALICE_PASSWORD, 'imap', 'NOWHERE.TEST'], INIT_CREDS_FAILED],
    ['a realm whose KDC port is closed', ['alice', ALICE_PASSWORD, 'imap', 'GONE.TEST'], INIT_CREDS_FAILED],
    ['krb5_smtp_instance: carol becomes carol/mail', ['carol', CAROL_PASSWORD, 'smtp', ''], OK],
    ['krb5_smtp_instance: carol/mail named by the user', ['carol/mail', CAROL_PASSWORD, 'smtp', REALM], OK],
    ['krb5_smtp_instance: another instance is refused', ['carol/admin', CAROL_PASSWORD, 'smtp', ''], PRINCIPAL_ERROR],
    ['krb5_smtp_instance: alice/mail does not exist', ['alice', ALICE_PASSWORD, 'smtp', ''], INIT_CREDS_FAILED],
    ['a service in capitals forces no instance', ['alice', ALICE_PASSWORD, 'SMTP', ''], OK],
    ['an instance the user names himself', ['dave/admin', DAVE_PASSWORD, 'imap', ''], OK],
    ['krb5_conv_krb4_instance is off here', ['dave.admin', DAVE_PASSWORD, 'imap', ''], INIT_CREDS_FAILED],
    ['a name libkrb5 cannot parse', ['alice@A.TEST@B.TEST', ALICE_PASSWORD, 'imap', ''], INTERNAL_ERROR],
    ['a realm in the login', [`alice@${REALM}`, ALICE_PASSWORD, 'imap', ''], OK],
    ['empty password (refused before the mechanism)', ['alice', '', 'imap', ''], 'NO NULL password received'],
    ['empty login (refused before the mechanism)', ['', ALICE_PASSWORD, 'imap', ''], 'NO NULL login received'],
  ];
  for (const [name, fields, expected] of cases) {
    test(name, () => compare(main, fields, expected));
  }

  test('non-UTF-8 bytes in the login', () =>
    compare(main, [Buffer.from([0x61, 0xff, 0x80]), ALICE_PASSWORD, 'imap', ''], INIT_CREDS_FAILED));
});

describe('the keytab check', () => {
  test('a right password whose KDC answer cannot be verified with the keytab is refused', () =>
    compare(noKey, ['alice', ALICE_PASSWORD, 'imap', ''], VERIFY_FAILED));

  test('a wrong password fails before the keytab is used', () =>
    compare(noKey, ['alice', WRONG_PASSWORD, 'imap', ''], INIT_CREDS_FAILED));

  test('krb5_verify_principal and krb5_servername choose the key (imap/saslauthd.ts.test)', () =>
    compare(withRealm, ['alice', ALICE_PASSWORD, 'imap', ''], OK));
});

describe('-r', () => {
  test('login@realm: the realm is appended once (the C daemon appends it twice and fails, cyrus-sasl#832)', () =>
    compare(withRealm, ['alice', ALICE_PASSWORD, 'imap', REALM], OK, INTERNAL_ERROR));

  test('wrong password under -r', () =>
    compare(withRealm, ['alice', WRONG_PASSWORD, 'imap', REALM], INIT_CREDS_FAILED, INTERNAL_ERROR));

  test('without a realm -r changes nothing; krb5_conv_krb4_instance makes dave.admin dave/admin', () =>
    compare(withRealm, ['dave.admin', DAVE_PASSWORD, 'imap', ''], OK));

  test('without -r, a client that sends login@realm and the realm gets the same fix', () =>
    compare(main, [`alice@${REALM}`, ALICE_PASSWORD, 'imap', REALM], OK, INTERNAL_ERROR));

  test('krb5_conv_krb4_instance with -r converts the user part only', async () => {
    const fromOurs = await reply(withRealm.ours, ['dave.admin', DAVE_PASSWORD, 'imap', REALM]);
    assert.equal(fromOurs.toString('latin1'), replyFrame(OK).toString('latin1'));
  });
});

describe('a KDC that accepts and never answers', () => {
  const silentRequest = ['alice', ALICE_PASSWORD, 'imap', 'SILENT.TEST'];
  /** Lines our worker logs when an abandoned libkrb5 call finally returns. */
  const lateReturns = (): number => (main.ours.logs.match(/\(after the client was answered\)/g) ?? []).length;
  const workerPids = (): string[] => [...main.ours.logs.matchAll(/worker started: (\d+)/g)].map((match) => match[1]!);

  test('NO within krb5_timeout, the same worker answers the next request, the C daemon gives the same bytes later', async () => {
    const requestsBefore = silent.requests;
    const fromC = reply(main.theirs, silentRequest, C_SILENT_KDC_DEADLINE_MS);
    const workersBefore = workerPids();
    assert.equal(workersBefore.length, 1);

    const started = Date.now();
    const fromOurs = await reply(main.ours, silentRequest);
    const elapsed = Date.now() - started;
    assert.equal(fromOurs.toString('latin1'), replyFrame(INIT_CREDS_FAILED).toString('latin1'));
    assert.ok(elapsed >= KRB5_TIMEOUT_S * 1000 - 100, `answered after ${elapsed} ms: before the deadline?`);
    assert.ok(elapsed < KRB5_TIMEOUT_S * 1000 + SLACK_MS, `answered after ${elapsed} ms`);
    assert.ok(silent.requests > requestsBefore, 'the silent KDC was asked');
    assert.match(main.ours.logs, /auth_krb5: no answer from the KDC within 2000 ms \(initial-credentials\)/);

    // The next request runs at once, in the same worker (not killed, not replaced).
    assert.equal((await reply(main.ours, ['alice', ALICE_PASSWORD, 'imap', ''])).toString('latin1'), replyFrame(OK).toString('latin1'));
    assert.deepEqual(workerPids(), workersBefore);
    assert.doesNotMatch(main.ours.logs, /killed and replaced|died during a request|exited \(/);

    // Ours answered NO in seconds; the C daemon, with no deadline, after libkrb5's retries.
    assert.equal((await fromC).toString('latin1'), replyFrame(INIT_CREDS_FAILED).toString('latin1'));
  });

  test('hung calls are bounded: past three, NO at once; once they return, the worker answers again', async () => {
    await main.ours.waitForLog(/\(after the client was answered\)/, 60_000); // the first test's call
    const before = lateReturns();
    for (let i = 0; i < 3; i++) {
      assert.equal((await reply(main.ours, silentRequest)).toString('latin1'), replyFrame(INIT_CREDS_FAILED).toString('latin1'));
    }
    const started = Date.now();
    const refused = await reply(main.ours, ['alice', ALICE_PASSWORD, 'imap', '']);
    assert.equal(refused.toString('latin1'), replyFrame(INIT_CREDS_FAILED).toString('latin1'));
    assert.ok(Date.now() - started < SLACK_MS, 'refused at once, not after a deadline');
    assert.match(main.ours.logs, /auth_krb5: 3 earlier KDC calls have not returned yet: request not sent/);

    const deadline = Date.now() + 60_000;
    while (lateReturns() < before + 3) {
      assert.ok(Date.now() < deadline, 'the abandoned calls did not return within 60 s');
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    assert.equal((await reply(main.ours, ['alice', ALICE_PASSWORD, 'imap', ''])).toString('latin1'), replyFrame(OK).toString('latin1'));
    assert.equal(workerPids().length, 1, 'the worker was never replaced');
  });

  test('a KDC whose name does not resolve: NO within krb5_timeout', async () => {
    const started = Date.now();
    const fromOurs = await reply(main.ours, ['alice', ALICE_PASSWORD, 'imap', 'UNRESOLVED.TEST']);
    assert.equal(fromOurs.toString('latin1'), replyFrame(INIT_CREDS_FAILED).toString('latin1'));
    assert.ok(Date.now() - started < KRB5_TIMEOUT_S * 1000 + SLACK_MS);
  });
});

test('a KDC that issues initial credentials and then hangs: NO krb5_verify_init_creds failed within krb5_timeout', async () => {
  // The same realm, reached through a front that swallows the keytab check's TGS request.
  const config = kdc.path('as-only-krb5.conf');
  writeFileSync(config, readFileSync(kdc.env.KRB5_CONFIG!, 'utf8').replace(`127.0.0.1:${KDC_PORT}`, `127.0.0.1:${AS_ONLY_PORT}`));
  const ours = await Daemon.start({
    mechanism: 'kerberos5',
    env: { ...env, KRB5_CONFIG: config },
    args: ['-O', mainConf, '-n', '1', '--job-timeout', String(JOB_TIMEOUT_MS)],
  });
  daemons.push(ours);
  const wrong = await reply(ours, ['alice', WRONG_PASSWORD, 'imap', '']);
  assert.equal(wrong.toString('latin1'), replyFrame(INIT_CREDS_FAILED).toString('latin1'), 'initial credentials pass through');
  const started = Date.now();
  const right = await reply(ours, ['alice', ALICE_PASSWORD, 'imap', '']);
  const elapsed = Date.now() - started;
  assert.equal(right.toString('latin1'), replyFrame(VERIFY_FAILED).toString('latin1'));
  assert.ok(elapsed < KRB5_TIMEOUT_S * 1000 + SLACK_MS, `answered after ${elapsed} ms`);
  assert.match(ours.logs, /no answer from the KDC within 2000 ms \(verification\)/);
});

describe('start', () => {
  test('an -O file that cannot be read stops the start, saying why', async () => {
    const result = await Daemon.startFailing({ mechanism: 'kerberos5', env, args: ['-O', kdc.path('missing.conf')] });
    assert.equal(result.code, 1);
    assert.match(result.output, /failed to initialize mechanism kerberos5/);
    assert.match(result.output, /missing\.conf: cannot be read \(ENOENT\)/);
  });

  test('an invalid krb5_timeout stops the start, saying why', async () => {
    const bad = kdc.path('bad.conf');
    writeFileSync(bad, 'krb5_timeout: soon\n');
    const result = await Daemon.startFailing({ mechanism: 'kerberos5', env, args: ['-O', bad] });
    assert.equal(result.code, 1);
    assert.match(result.output, /krb5_timeout must be a number of seconds/);
  });
});

test('no password used here appears in any daemon log', () => {
  assertNoSecretsLogged([ALICE_PASSWORD, CAROL_PASSWORD, DAVE_PASSWORD, WRONG_PASSWORD]);
});
