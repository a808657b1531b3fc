/**
 * The seed scenario, end to end (root; CI): Debian's sendmail as a submission agent set up
 * the way the classic howto does — Debian's own sasl.m4 and starttls.m4 included, AUTH
 * required on the submission listener (M=Ea), plaintext mechanisms only under TLS
 * (confAUTH_OPTIONS `p y'), no AUTH on the port-25 listener (M=A), Cyrus SASL's
 * Sendmail.conf with pwcheck_method: saslauthd — in front of the INSTALLED package's
 * /usr/sbin/saslauthd, started by sasl2-bin's /etc/init.d/saslauthd from
 * /etc/default/saslauthd, checking a throwaway local user with PAM (pam_unix through
 * "other"). A real SMTP client (swaks) talks to it over loopback high ports.
 *
 * Nothing on the machine is disturbed: sendmail runs from a private .cf with its own queue
 * and pid file, delivers nothing (DeliveryMode=queueonly), and sees a test Sendmail.conf
 * bind-mounted in a private mount namespace; the daemon's syslog goes to a test listener
 * (private /dev/log); the package is removed and the defaults file restored afterwards.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { debPackage, PACKAGE } from './helpers/debian-package.js';
import { DatagramListener } from './helpers/dgram-listener.js';
import {
  DEFAULTS,
  INIT_SCRIPT,
  SBIN_SASLAUTHD,
  addUser,
  exeOf,
  isKnown,
  readPid,
  removeUser,
  run,
  runWithServicesAllowed,
} from './helpers/installed-daemon.js';
import { privateDevLog } from './helpers/private-dev-log.js';
import { sendmailMc, waitForTcpPort } from './helpers/sendmail-config.js';

const isRoot = process.getuid?.() === 0;
const skip = !isRoot && 'needs root (installs the package, runs sendmail)';
const USER = `stsm${process.pid}`;
const PASSWORD = 'Submission-Pass-31';
const WRONG = 'Not-My-Password-77';
const SASL_APP_CONFIG = '/usr/lib/sasl2/Sendmail.conf';

let scratch: string;
let savedDefaults: Buffer | undefined;
let syslog: DatagramListener;
let submissionPort: number;
let mtaPort: number;
let daemonPid: number;

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
    server.on('error', reject);
  });
}

/** swaks against the submission (or another) port; returns its exit status and transcript. */
function swaks(args: readonly string[], port = submissionPort): { status: number | null; output: string } {
  const result = spawnSync('swaks', ['--server', '127.0.0.1', '--port', String(port), '--timeout', '30', ...args], {
    encoding: 'utf8',
    timeout: 90_000,
  });
  return { status: result.status, output: `${result.stdout}${result.stderr}` };
}

function authLine(output: string): string | undefined {
  return /^<[-~] +250[- ]AUTH\b(.*)$/m.exec(output)?.[1];
}

before(async () => {
  if (!isRoot) return;
  const deb = debPackage();
  scratch = mkdtempSync('/run/sts-sm-'); // not under /tmp: sendmail refuses files in world-writable directories
  savedDefaults = existsSync(DEFAULTS) ? readFileSync(DEFAULTS) : undefined;
  if (isKnown(PACKAGE)) runWithServicesAllowed(scratch, 'apt-get', ['purge', '-y', PACKAGE]);
  run(INIT_SCRIPT, ['stop']);
  const install = runWithServicesAllowed(scratch, 'apt-get', ['install', '-y', '--no-install-recommends', deb]);
  assert.equal(install.status, 0, install.stdout + install.stderr);
  addUser(USER, PASSWORD);

  // The daemon: installed package, sasl2-bin's init script, the admin's defaults file.
  writeFileSync(
    DEFAULTS,
    'DESC="SASL Authentication Daemon"\nNAME="saslauthd"\nSTART=yes\nMECHANISMS="pam"\nMECH_OPTIONS=""\nTHREADS=2\nOPTIONS="-c -m /var/run/saslauthd"\n',
  );
  syslog = await DatagramListener.bind(join(scratch, 'log'));
  const namespace = join(scratch, 'ns');
  mkdirSync(namespace);
  const wrap = privateDevLog(syslog.path, namespace);
  const [command, ...prefix] = wrap.prefix;
  const start = spawnSync(command!, [...prefix, INIT_SCRIPT, 'start'], { env: { ...process.env, ...wrap.env }, encoding: 'utf8', timeout: 60_000 });
  assert.equal(start.status, 0, `${start.stdout}${start.stderr}`);
  daemonPid = readPid('/var/run/saslauthd/saslauthd.pid')!;
  assert.equal(exeOf(daemonPid), SBIN_SASLAUTHD);
  assert.match(run(SBIN_SASLAUTHD, ['-v']).stderr, /saslauthd-ts/);

  // sendmail: a throwaway certificate, the .mc compiled with Debian's m4 macros.
  submissionPort = await freePort();
  mtaPort = await freePort();
  mkdirSync(join(scratch, 'mqueue'), { mode: 0o700 });
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', '/CN=sts.localdomain',
    '-keyout', join(scratch, 'key.pem'), '-out', join(scratch, 'cert.pem')], { stdio: 'ignore' });
  writeFileSync(
    join(scratch, 'sendmail.mc'),
    sendmailMc({
      directory: scratch,
      listeners: [
        { name: 'MTA-v4', port: mtaPort, modifiers: 'A' },
        { name: 'MSP-v4', port: submissionPort, modifiers: 'Ea' },
      ],
      authOptions: 'p y',
      tls: { cert: `${scratch}/cert.pem`, key: `${scratch}/key.pem` },
    }),
  );
  writeFileSync(join(scratch, 'sendmail.cf'), execFileSync('m4', [join(scratch, 'sendmail.mc')]));
  writeFileSync(join(scratch, 'Sendmail.conf'), 'pwcheck_method: saslauthd\nmech_list: PLAIN LOGIN\nsaslauthd_path: /var/run/saslauthd/mux\n');
  // Name lookups stay on this machine: sendmail resolves its own name at startup (and
  // sleeps a minute when that fails); it gets hosts files only, a hosts file that knows this
  // host, and a resolver pointing at loopback.
  const host = hostname();
  writeFileSync(join(scratch, 'hosts'), `127.0.0.1 localhost\n127.0.0.1 sts.localdomain ${host}\n::1 localhost sts.localdomain ${host}\n`);
  writeFileSync(join(scratch, 'resolv.conf'), 'nameserver 127.0.0.1\n');
  writeFileSync(join(scratch, 'service.switch'), 'passwd files\nhosts files\naliases files\n');
  const sendmail = spawnSync(
    'unshare',
    ['-m', '--propagation', 'private', 'sh', '-c',
      'mount --bind "$0/Sendmail.conf" "$1" && mount --bind "$0/hosts" /etc/hosts && ' +
        'mount --bind "$0/resolv.conf" /etc/resolv.conf && exec /usr/sbin/sendmail -bd -C "$0/sendmail.cf"',
      scratch, SASL_APP_CONFIG],
    { encoding: 'utf8', timeout: 60_000 },
  );
  assert.equal(sendmail.status, 0, `${sendmail.stdout}${sendmail.stderr}`);
  await waitForTcpPort(submissionPort);
  await waitForTcpPort(mtaPort);
});

after(() => {
  if (!isRoot) return;
  const sendmailPid = readPid(join(scratch, 'sendmail.pid'));
  if (sendmailPid !== undefined) {
    try {
      process.kill(sendmailPid, 'SIGTERM');
    } catch {
      // already gone
    }
  }
  run(INIT_SCRIPT, ['stop']);
  if (isKnown(PACKAGE)) runWithServicesAllowed(scratch, 'apt-get', ['purge', '-y', PACKAGE]);
  if (savedDefaults) writeFileSync(DEFAULTS, savedDefaults);
  removeUser(USER);
  syslog?.close();
  rmSync(scratch, { recursive: true, force: true });
});

test('EHLO before STARTTLS offers no PLAIN/LOGIN; after STARTTLS it offers both', { skip }, () => {
  const plain = swaks(['--quit-after', 'EHLO']);
  assert.match(plain.output, /250-STARTTLS/);
  const before = authLine(plain.output);
  assert.ok(before === undefined || !/\b(PLAIN|LOGIN)\b/.test(before), `AUTH before TLS: ${before}`);
  const tls = swaks(['--tls', '--quit-after', 'HELO']);
  assert.equal(tls.status, 0, tls.output);
  const after = authLine(tls.output);
  assert.ok(after !== undefined, `no AUTH after STARTTLS:\n${tls.output}`);
  assert.match(after, /\bPLAIN\b/);
  assert.match(after, /\bLOGIN\b/);
});

test('AUTH PLAIN and AUTH LOGIN with the right password: 235', { skip }, () => {
  for (const mechanism of ['PLAIN', 'LOGIN']) {
    const result = swaks(['--tls', '--auth', mechanism, '--auth-user', USER, '--auth-password', PASSWORD, '--quit-after', 'AUTH']);
    assert.equal(result.status, 0, result.output);
    assert.match(result.output, /^<~ +235 2\.0\.0 OK Authenticated/m, `${mechanism}:\n${result.output}`);
  }
});

test('a wrong password and an unknown user: 535', { skip }, () => {
  for (const [mechanism, user] of [['PLAIN', USER], ['LOGIN', USER], ['PLAIN', `${USER}x`], ['LOGIN', `${USER}x`]] as const) {
    const result = swaks(['--tls', '--auth', mechanism, '--auth-user', user, '--auth-password', WRONG, '--quit-after', 'AUTH']);
    assert.equal(result.status, 28, `${mechanism} ${user}: swaks reports an authentication failure\n${result.output}`);
    assert.match(result.output, /^<~\* +535 5\.7\.0 authentication failed/m, `${mechanism} ${user}:\n${result.output}`);
    assert.doesNotMatch(result.output, /^<~ +235/m);
  }
});

test('a message submitted after AUTH is accepted (250) and queued', { skip }, () => {
  const result = swaks([
    '--tls', '--auth', 'LOGIN', '--auth-user', USER, '--auth-password', PASSWORD,
    '--from', `${USER}@sts.localdomain`, '--to', 'root@localhost', '--header', 'Subject: saslauthd-ts submission test',
  ]);
  assert.equal(result.status, 0, result.output);
  assert.match(result.output, /^<~ +235 /m);
  assert.match(result.output, /^<~ +250 2\.0\.0 \S+ Message accepted for delivery/m);
  const queued = readdirSync(join(scratch, 'mqueue')).filter((name) => name.startsWith('qf'));
  assert.equal(queued.length, 1, 'the message waits in the test queue (queue-only: nothing is delivered)');
});

test('submission without AUTH is refused; the port-25-style listener offers no AUTH at all', { skip }, () => {
  const anonymous = swaks(['--tls', '--from', `${USER}@sts.localdomain`, '--to', 'someone@example.org', '--quit-after', 'RCPT']);
  assert.notEqual(anonymous.status, 0, anonymous.output);
  assert.match(anonymous.output, /^<~\* +5\d\d /m, 'relaying without AUTH is refused');

  for (const args of [['--quit-after', 'EHLO'], ['--tls', '--quit-after', 'HELO']]) {
    const result = swaks(args, mtaPort);
    assert.match(result.output, /^<[-~] +250[- ]/m, result.output);
    assert.equal(authLine(result.output), undefined, `port 25 offers AUTH:\n${result.output}`);
  }
  const attempt = swaks(['--tls', '--auth', 'PLAIN', '--auth-user', USER, '--auth-password', PASSWORD, '--quit-after', 'AUTH'], mtaPort);
  assert.notEqual(attempt.status, 0);
  assert.doesNotMatch(attempt.output, /^<~ +235/m);
});

test('our daemon answered: auth failure lines in syslog (auth facility, ident saslauthd), no password', { skip }, async () => {
  const failure = await syslog.waitFor((message) => message.includes(`auth failure: [user=${USER}] [service=smtp]`));
  assert.match(failure, /^<38>\w{3} [ \d]\d \d\d:\d\d:\d\d saslauthd\[\d+\]: {17}: auth failure: \[user=\S+\] \[service=smtp\] \[realm=[^\]]*\] \[mech=pam\] \[reason=PAM auth error\]$/);
  const pid = Number(/saslauthd\[(\d+)\]/.exec(failure)![1]);
  assert.equal(pid, daemonPid, 'logged by the daemon the init script started');
  await syslog.waitFor((message) => message.includes(`auth failure: [user=${USER}x] [service=smtp]`));
  for (const message of syslog.messages) {
    assert.ok(!message.includes(PASSWORD) && !message.includes(WRONG), `a password in syslog: ${JSON.stringify(message)}`);
  }
});
