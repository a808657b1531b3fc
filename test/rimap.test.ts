/**
 * The rimap mechanism against real IMAP servers on loopback:
 *  - Debian's dovecot (scratch config, passwd-file users, throwaway CA) on plain IMAP,
 *    STARTTLS and IMAPS, with the C saslauthd (`-a rimap -O 127.0.0.1/PORT`) as the oracle
 *    for the same requests;
 *  - a scripted IMAP server for what dovecot will not do on demand (a `* BYE` greeting, no
 *    greeting, a close or a stall after LOGIN, odd untagged lines) and for checking the exact
 *    bytes of LOGIN (quoted strings, `{n}` and `{n+}` literals, no command injection);
 *  - a private /etc/hosts (unshare -m) for per-request name resolution and certificate names.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Daemon } from './helpers/daemon.js';
import { Dovecot } from './helpers/dovecot.js';
import { ask, exchange, request } from './helpers/raw-client.js';
import { ScriptedImapServer, type ScriptedImapOptions } from './helpers/scripted-imap-server.js';
import { assertNoSecretsLogged } from './helpers/secrets.js';
import { makeThrowawayCa } from './helpers/throwaway-ca.js';

/** Fixed ports of the task's range (dovecot needs them in its config). */
const IMAP_PORT = 22143;
const IMAPS_PORT = 22993;

const GOOD = 'Rimap-good-1';
const SPECIALS = 'Rimap "quoted\\ pass 2';
const EIGHT_BIT = Buffer.from([0x52, 0x69, 0x6d, 0xe9, 0xff, 0x80, 0x61, 0x70, 0x33]);
const CONTROL = Buffer.from('Rimap\r\nsaslauthd OK\t4');
const INJECTION = `x\r\nsaslauthd LOGIN good ${GOOD}\r\nfoo`;
const QUOTE_INJECTION = 'Rimap-x"\r\nsaslauthd OK';
const WRONG = 'Wrong-pass-5';

const REPLY = {
  accepted: 'OK remote authentication successful',
  rejected: 'NO remote server rejected your credentials',
  unexpected: 'NO [ALERT] Unexpected response from remote authentication server',
  unavailable: 'NO [ALERT] The remote authentication server is currently unavailable',
  couldNotContact: "NO [ALERT] Couldn't contact remote authentication server",
};

let dovecot: Dovecot;
let ours: Daemon;
let theirs: Daemon;
const scratch = mkdtempSync('/tmp/sts-rimap-');
const daemons: Daemon[] = [];
const servers: ScriptedImapServer[] = [];

async function rimapDaemon(option: string, extra: { c?: boolean; wrap?: readonly string[] } = {}): Promise<Daemon> {
  const daemon = await Daemon.start({ mechanism: 'rimap', args: ['-O', option, '-n', '1'], ...extra });
  daemons.push(daemon);
  return daemon;
}

async function scripted(options: ScriptedImapOptions): Promise<ScriptedImapServer> {
  const server = await ScriptedImapServer.start(options);
  servers.push(server);
  return server;
}

before(async () => {
  dovecot = await Dovecot.start({
    users: [
      { name: 'good', password: GOOD },
      { name: 'specials', password: SPECIALS },
      { name: 'eight', password: EIGHT_BIT },
      { name: 'control', password: CONTROL },
    ],
    imapPort: IMAP_PORT,
    imapsPort: IMAPS_PORT,
    extraNames: ['imap.sts.test'],
  });
  ours = await rimapDaemon(`127.0.0.1/${IMAP_PORT}`);
  theirs = await rimapDaemon(`127.0.0.1/${IMAP_PORT}`, { c: true });
});

after(async () => {
  for (const daemon of daemons) await daemon.dispose();
  for (const server of servers) await server.close();
  await dovecot?.dispose();
  rmSync(scratch, { recursive: true, force: true });
});

describe('plain IMAP to dovecot: the same reply bytes as the C saslauthd', () => {
  const cases: [string, Buffer][] = [
    ['right password', request('good', GOOD, 'imap', '')],
    ['wrong password', request('good', WRONG, 'imap', '')],
    ['unknown user', request('nobody', WRONG, 'imap', '')],
    ['password with ", \\ and spaces', request('specials', SPECIALS, 'imap', '')],
    ['8-bit password', request('eight', EIGHT_BIT, 'imap', '')],
    ['8-bit password, one byte off', request('eight', Buffer.concat([EIGHT_BIT.subarray(0, 8), Buffer.from('4')]), 'imap', '')],
    ['a realm (rimap ignores it)', request('good', GOOD, 'smtp', 'example.org')],
  ];
  for (const [name, bytes] of cases) {
    test(name, async () => {
      const [fromC, fromOurs] = await Promise.all([exchange(theirs.socket, bytes), exchange(ours.socket, bytes)]);
      assert.equal(fromOurs.toString('latin1'), fromC.toString('latin1'));
    });
  }

  test('the replies are the original strings, and the log lines of the original -d session (§4.3)', async () => {
    assert.equal(await ask(ours.socket, 'good', GOOD, 'imap', ''), REPLY.accepted);
    assert.equal(await ask(ours.socket, 'good', WRONG, 'imap', ''), REPLY.rejected);
    assert.equal(await ask(ours.socket, 'eight', EIGHT_BIT, 'imap', ''), REPLY.accepted);
    for (const daemon of [ours, theirs]) {
      await daemon.waitForLog(/:auth success: \[user=good\] \[service=imap\] \[realm=\] \[mech=rimap\]\n/);
      await daemon.waitForLog(
        /:auth failure: \[user=good\] \[service=imap\] \[realm=\] \[mech=rimap\] \[reason=remote server rejected your credentials\]\n/,
      );
    }
  });

  test('CR/LF in a password is no command injection (the C daemon sends it raw: listed difference)', async () => {
    // Sent as a literal, the whole thing is one (wrong) password: dovecot says NO.
    assert.equal(await ask(ours.socket, 'good', INJECTION, 'imap', ''), REPLY.rejected);
    assert.equal(await ask(ours.socket, 'good', QUOTE_INJECTION, 'imap', ''), REPLY.rejected);
    // The original breaks the command line: dovecot answers BAD, never OK.
    assert.equal(await ask(theirs.socket, 'good', INJECTION, 'imap', ''), REPLY.unexpected);
    // dovecot refuses control characters in any password ("password having illegal chars"),
    // so the right CR/LF password is refused too; the scripted server below accepts it.
    assert.equal(await ask(ours.socket, 'control', CONTROL, 'imap', ''), REPLY.rejected);
    assert.match(dovecot.log, /password having illegal chars/);
  });

  test('a loopback server gets no clear-text warning', () => {
    assert.doesNotMatch(ours.logs, /WARNING/);
  });
});

describe('STARTTLS and IMAPS to dovecot, certificates verified', () => {
  test('imaps:// and imap+starttls:// with the CA file: right, wrong, unknown, 8-bit', async () => {
    const imaps = await rimapDaemon(`imaps://localhost:${IMAPS_PORT}?cafile=${dovecot.ca.caFile}`);
    const starttls = await rimapDaemon(`imap+starttls://127.0.0.1:${IMAP_PORT}/?cafile=${dovecot.ca.caFile}&timeout=5`);
    for (const daemon of [imaps, starttls]) {
      assert.equal(await ask(daemon.socket, 'good', GOOD, 'imap', ''), REPLY.accepted);
      assert.equal(await ask(daemon.socket, 'good', WRONG, 'imap', ''), REPLY.rejected);
      assert.equal(await ask(daemon.socket, 'nobody', WRONG, 'imap', ''), REPLY.rejected);
      assert.equal(await ask(daemon.socket, 'specials', SPECIALS, 'imap', ''), REPLY.accepted);
      assert.equal(await ask(daemon.socket, 'eight', EIGHT_BIT, 'imap', ''), REPLY.accepted);
      assert.doesNotMatch(daemon.logs, /WARNING/);
    }
    assert.match(dovecot.log, /Login: user=<good>.*TLS/);
  });

  test('a certificate from an unknown CA is refused (another CA file, or the system CAs)', async () => {
    const other = makeThrowawayCa(join(scratch, 'other'), 'other', ['localhost'], ['127.0.0.1']);
    const wrongCa = await rimapDaemon(`imaps://localhost:${IMAPS_PORT}?cafile=${other.caFile}`);
    const systemCas = await rimapDaemon(`imap+starttls://localhost:${IMAP_PORT}`);
    for (const daemon of [wrongCa, systemCas]) {
      assert.equal(await ask(daemon.socket, 'good', GOOD, 'imap', ''), REPLY.couldNotContact);
      await daemon.waitForLog(/auth_rimap: TLS with localhost\/\d+ \((IMAPS|STARTTLS)\) failed: .*certificate/);
    }
  });

  test('a CA file that is missing or holds no certificate stops the start', async () => {
    const garbage = join(scratch, 'garbage.pem');
    writeFileSync(garbage, 'not a certificate\n');
    for (const [file, reason] of [[join(scratch, 'missing.pem'), /cannot be read \(ENOENT\)/], [garbage, /holds no PEM certificate/]] as const) {
      const failed = await Daemon.startFailing({ mechanism: 'rimap', args: ['-O', `imaps://localhost?cafile=${file}`] });
      assert.equal(failed.code, 1);
      assert.match(failed.output, /failed to initialize mechanism rimap/);
      assert.match(failed.output, reason);
    }
  });
});

describe('servers that misbehave: the same replies as the C saslauthd', () => {
  async function both(options: ScriptedImapOptions, login = 'good', password: string | Buffer = GOOD): Promise<[string, string]> {
    const server = await scripted(options);
    const [c, ts] = await Promise.all([
      rimapDaemon(`127.0.0.1/${server.port}`, { c: true }),
      rimapDaemon(`127.0.0.1/${server.port}`),
    ]);
    return Promise.all([askPatiently(c.socket, login, password), askPatiently(ts.socket, login, password)]);
  }

  /** The C daemon waits 30 s on a silent server: longer than ask()'s deadline. */
  async function askPatiently(socket: string, login: string, password: string | Buffer): Promise<string> {
    const bytes = await exchange(socket, request(login, password, 'imap', ''), { deadlineMs: 45_000 });
    return bytes.subarray(2).toString('latin1');
  }

  const cases: [string, ScriptedImapOptions, string][] = [
    ['greeting * BYE', { greeting: '* BYE too busy', closeAfterGreeting: true }, REPLY.unavailable],
    ['greeting * NO', { greeting: '* NO not now' }, REPLY.unavailable],
    ['greeting * PREAUTH', { greeting: '* PREAUTH hello' }, REPLY.unexpected],
    ['closes after LOGIN', { onLogin: () => 'close' }, REPLY.unexpected],
    ['* CAPABILITY before the tagged OK', { onLogin: () => ['* CAPABILITY IMAP4rev1', '$TAG OK done'] }, REPLY.accepted],
    ['* OK [ALERT] before the tagged OK', { onLogin: () => ['* OK [ALERT] password expires soon', '$TAG OK done'] }, REPLY.unexpected],
    ['saslauthd BAD', { onLogin: () => ['$TAG BAD no'] }, REPLY.unexpected],
    ['tagged NO', { onLogin: () => ['$TAG NO [AUTHENTICATIONFAILED] no'] }, REPLY.rejected],
  ];
  for (const [name, options, expected] of cases) {
    test(name, async () => {
      const [fromC, fromOurs] = await both(options);
      assert.equal(fromC, expected);
      assert.equal(fromOurs, expected);
    });
  }

  test('never greets / stalls after LOGIN: the original NO, from our own deadline; the worker stays', async () => {
    const started = performance.now();
    const [[silentC, silentOurs], [stallC, stallOurs]] = await Promise.all([
      both({ greeting: null }),
      both({ onLogin: () => 'stall' }),
    ]);
    assert.equal(silentC, REPLY.unexpected);
    assert.equal(silentOurs, REPLY.unexpected);
    assert.equal(stallC, REPLY.unexpected);
    assert.equal(stallOurs, REPLY.unexpected);
    assert.ok(performance.now() - started >= 10_000, 'the C daemon waits 30 s, ours 10 s');

    // One worker, a server that stalls on the first LOGIN only: the next request is answered
    // by the same worker, before --job-timeout, with no worker replaced.
    let logins = 0;
    const server = await scripted({ onLogin: () => (++logins === 1 ? 'stall' : ['$TAG OK fine']) });
    const daemon = await rimapDaemon(`imap://127.0.0.1:${server.port}?timeout=1`);
    const before = performance.now();
    assert.equal(await ask(daemon.socket, 'good', GOOD, 'imap', ''), REPLY.unexpected);
    assert.ok(performance.now() - before < 5_000);
    assert.equal(await ask(daemon.socket, 'good', GOOD, 'imap', ''), REPLY.accepted);
    assert.equal(daemon.logs.match(/worker started/g)?.length, 1, daemon.logs);
    assert.doesNotMatch(daemon.logs, /authentication timed out|worker failed/i);
    assert.match(daemon.logs, /auth_rimap: read \(response\) from 127\.0\.0\.1\/\d+: timed out/);
  });

  test('STARTTLS refused, or clear-text data after its OK (an injection): no LOGIN is sent', async () => {
    for (const [onStartTls, log] of [
      [() => ['$TAG BAD not supported'], /auth_rimap: STARTTLS refused by 127\.0\.0\.1\/\d+ \(STARTTLS\): saslauthd-tls BAD/],
      [() => ['$TAG OK begin TLS', '* OK injected'], /sent data after its STARTTLS reply, before TLS: refused/],
    ] as const) {
      const server = await scripted({ onStartTls });
      const daemon = await rimapDaemon(`imap+starttls://127.0.0.1:${server.port}?cafile=${dovecot.ca.caFile}`);
      assert.equal(await ask(daemon.socket, 'good', GOOD, 'imap', ''), REPLY.unexpected);
      await daemon.waitForLog(log);
      assert.deepEqual(server.logins, []);
    }
  });

  test('nothing listening: Couldn\'t contact, with the connect error logged', async () => {
    const server = await scripted({});
    const port = server.port;
    await server.close();
    servers.splice(servers.indexOf(server), 1);
    const daemon = await rimapDaemon(`127.0.0.1/${port}`);
    assert.equal(await ask(daemon.socket, 'good', GOOD, 'imap', ''), REPLY.couldNotContact);
    assert.match(daemon.logs, /auth_rimap: connect 127\.0\.0\.1\[127\.0\.0\.1\]\/\d+: .*ECONNREFUSED/);
  });
});

describe('the bytes of LOGIN', () => {
  test('a quoted string when it may be one: " and \\ escaped', async () => {
    const server = await scripted({ accept: { login: 'specials', password: SPECIALS } });
    const daemon = await rimapDaemon(`127.0.0.1/${server.port}`);
    assert.equal(await ask(daemon.socket, 'specials', SPECIALS, 'imap', ''), REPLY.accepted);
    const wire = server.received[0]!.toString('latin1');
    assert.equal(wire, 'saslauthd LOGIN "specials" "Rimap \\"quoted\\\\ pass 2"\r\nsaslauthd LOGOUT\r\n');
  });

  test('CR, LF, TAB and 8-bit bytes: {n+} literals when the server has LITERAL+, accepted byte for byte', async () => {
    const server = await scripted({ accept: { login: EIGHT_BIT, password: CONTROL } });
    const daemon = await rimapDaemon(`127.0.0.1/${server.port}`);
    assert.equal(await ask(daemon.socket, EIGHT_BIT, CONTROL, 'imap', ''), REPLY.accepted);
    assert.deepEqual(server.logins, [{ login: EIGHT_BIT, password: CONTROL }]);
    const wire = server.received[0]!;
    assert.ok(wire.subarray(0, 20).equals(Buffer.from('saslauthd LOGIN {9+}')), wire.toString('latin1'));
    assert.ok(wire.includes(Buffer.from(`{${CONTROL.length}+}\r\n`)));
  });

  test('without LITERAL+: synchronizing {n} literals, each sent after the server\'s +', async () => {
    const server = await scripted({ greeting: '* OK [CAPABILITY IMAP4rev1] no literal+', accept: { login: 'control', password: CONTROL } });
    const daemon = await rimapDaemon(`127.0.0.1/${server.port}`);
    assert.equal(await ask(daemon.socket, 'control', CONTROL, 'imap', ''), REPLY.accepted);
    assert.deepEqual(server.logins, [{ login: Buffer.from('control'), password: CONTROL }]);
    assert.ok(server.received[0]!.includes(Buffer.from(`"control" {${CONTROL.length}}\r\n`)));
    assert.equal(await ask(daemon.socket, 'control', WRONG, 'imap', ''), REPLY.rejected);
  });

  test('a password that tries to inject a command or a reply is one password', async () => {
    const server = await scripted({ accept: { login: 'good', password: GOOD } });
    const daemon = await rimapDaemon(`127.0.0.1/${server.port}`);
    assert.equal(await ask(daemon.socket, 'good', INJECTION, 'imap', ''), REPLY.rejected);
    assert.equal(await ask(daemon.socket, 'good', QUOTE_INJECTION, 'imap', ''), REPLY.rejected);
    assert.deepEqual(
      server.logins.map((login) => login.password.toString('latin1')),
      [INJECTION, QUOTE_INJECTION],
    );
  });
});

describe('per-request name resolution and certificate names (private /etc/hosts)', () => {
  test('a name missing at start: the daemon starts, then follows /etc/hosts as it changes', async () => {
    const hosts = join(scratch, 'hosts');
    const nsswitch = join(scratch, 'nsswitch.conf');
    writeFileSync(hosts, '127.0.0.1 localhost\n');
    // Names come from the private hosts file only: no DNS query leaves the machine.
    writeFileSync(nsswitch, 'hosts: files\n');
    const wrap = [
      'unshare', '-m', '--propagation', 'private', 'sh', '-c',
      'mount --bind "$0" /etc/hosts && mount --bind "$1" /etc/nsswitch.conf && shift && exec "$@"', hosts, nsswitch,
    ];
    const plain = await rimapDaemon(`imap.sts.test/${IMAP_PORT}`, { wrap });
    const imaps = await rimapDaemon(`imaps://imap.sts.test:${IMAPS_PORT}?cafile=${dovecot.ca.caFile}`, { wrap });
    const wrongName = await rimapDaemon(`imaps://wrong.sts.test:${IMAPS_PORT}?cafile=${dovecot.ca.caFile}`, { wrap });
    // Plain IMAP to a host that is not loopback by name: a warning at start.
    assert.match(plain.logs, /auth_rimap: WARNING: passwords go to imap\.sts\.test\/22143 over plain IMAP/);

    assert.equal(await ask(plain.socket, 'good', GOOD, 'imap', ''), REPLY.couldNotContact);
    assert.match(plain.logs, /auth_rimap: getaddrinfo imap\.sts\.test\/22143: .*ENOTFOUND/);

    writeFileSync(hosts, '127.0.0.1 localhost\n127.0.0.1 imap.sts.test wrong.sts.test\n');
    assert.equal(await ask(plain.socket, 'good', GOOD, 'imap', ''), REPLY.accepted);
    assert.equal(await ask(imaps.socket, 'good', GOOD, 'imap', ''), REPLY.accepted);
    // The certificate names localhost, imap.sts.test and 127.0.0.1, not wrong.sts.test.
    assert.equal(await ask(wrongName.socket, 'good', GOOD, 'imap', ''), REPLY.couldNotContact);
    await wrongName.waitForLog(/TLS with wrong\.sts\.test\/22993 \(IMAPS\) failed: .*(altnames|wrong\.sts\.test)/);

    writeFileSync(hosts, '127.0.0.1 localhost\n');
    assert.equal(await ask(plain.socket, 'good', GOOD, 'imap', ''), REPLY.couldNotContact);
  });
});

describe('start-up', () => {
  test('no -O: refused with the original message', async () => {
    const failed = await Daemon.startFailing({ mechanism: 'rimap' });
    assert.equal(failed.code, 1);
    assert.match(failed.output, /failed to initialize mechanism rimap/);
    assert.match(failed.output, /rimap_init: no hostname specified/);
  });

  test('bad -O forms are refused with the reason', async () => {
    const cases: [string, RegExp][] = [
      ['localhost/nosuchservice', /unknown service name "nosuchservice"/],
      ['localhost/70000', /out of range/],
      ['pop3://localhost', /unknown scheme pop3:/],
      ['imap://localhost?cafile=/etc/ssl/certs/ca-certificates.crt', /cafile= needs imaps/],
      ['imaps://localhost?timeout=0', /timeout=0/],
      ['imaps://localhost?verify=no', /unknown -O URL parameter "verify"/],
      ['imaps://user:pw@localhost', /must not carry a user or password/],
    ];
    for (const [option, reason] of cases) {
      const failed = await Daemon.startFailing({ mechanism: 'rimap', args: ['-O', option] });
      assert.equal(failed.code, 1, option);
      assert.match(failed.output, reason, option);
    }
  });

  test('a port given by service name: imap is 143', async () => {
    const daemon = await rimapDaemon('127.0.0.1/imap');
    assert.equal(daemon.exited, false);
  });
});

test('no password used here appears in any log', () => {
  assertNoSecretsLogged([GOOD, SPECIALS, EIGHT_BIT, CONTROL, INJECTION, QUOTE_INJECTION, WRONG, 'Rimap\r\nsaslauthd']);
});
