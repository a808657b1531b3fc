/**
 * An MTA's own fail2ban filter keeps working when the MTA authenticates through us (root;
 * CI). Postfix cannot be installed beside sendmail, which the package tests need (both are
 * a mail-transport-agent), so the MTA here is Debian's sendmail — Cyrus SASL's
 * `pwcheck_method: saslauthd`, as Postfix uses it — in front of our daemon (not the
 * package: the compiled tree, PAM through pam_wrapper + pam_matrix). Both log to one private
 * /dev/log; Debian's fail2ban-regex then counts, over those lines:
 *   - with fail2ban's shipped `sendmail-auth` filter, sendmail's `AUTH failure` lines: one
 *     per wrong password, banned by the client's address (sendmail knows it, we do not);
 *   - with our filter, our `auth failure:` lines: none in the default mode (libsasl2 sends
 *     4 fields: no address to ban), one per wrong password in mode `users`.
 * Sendmail runs from a private .cf (queue, pid file in the scratch directory, delivering
 * nothing) on a loopback port of this engineer's range, with a test Sendmail.conf and hosts
 * file bind-mounted in its private mount namespace; nothing on the machine changes.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { Daemon } from './helpers/daemon.js';
import { DatagramListener } from './helpers/dgram-listener.js';
import { FAIL2BAN_FILTERS, fail2banRegex, installShippedFilter, writeAuthLog } from './helpers/fail2ban.js';
import { PamFixture } from './helpers/pam-fixture.js';
import { privateDevLog } from './helpers/private-dev-log.js';
import { eventually } from './helpers/processes.js';
import { assertNoSecretsLogged } from './helpers/secrets.js';
import { sendmailMc, waitForTcpPort } from './helpers/sendmail-config.js';

const isRoot = process.getuid?.() === 0;
const skip = !isRoot && 'needs root (mount namespaces, sendmail)';
const SUBMISSION_PORT = 23_120;
const SASL_APP_CONFIG = '/usr/lib/sasl2/Sendmail.conf';
const GOOD = 'F2b-sm-good-pass-1';
const WRONG = 'F2b-sm-wrong-pass-2';
/** Wrong passwords sent through sendmail, by SASL mechanism. */
const WRONG_ATTEMPTS = [['PLAIN', 'alice'], ['LOGIN', 'alice'], ['PLAIN', 'nosuchuser']] as const;
const PORT_DEADLINE_MS = 30_000;

let scratch: string;
let listener: DatagramListener;
let pam: PamFixture;
let daemon: Daemon;
let logFile: string;

function swaks(mechanism: string, user: string, password: string): { status: number | null; output: string } {
  const result = spawnSync(
    'swaks',
    ['--server', '127.0.0.1', '--port', String(SUBMISSION_PORT), '--timeout', '30', '--auth', mechanism, '--auth-user', user, '--auth-password', password, '--quit-after', 'AUTH'],
    { encoding: 'utf8', timeout: 90_000 },
  );
  return { status: result.status, output: `${result.stdout}${result.stderr}` };
}

before(async () => {
  if (!isRoot) return;
  scratch = mkdtempSync('/run/sts-f2bsm-'); // not under /tmp: sendmail refuses files in world-writable directories
  listener = await DatagramListener.bind(join(scratch, 'log'));
  pam = new PamFixture([{ name: 'alice', password: GOOD, service: 'smtp' }]);
  const daemonLog = privateDevLog(listener.path, mkdtempSync(join(scratch, 'ns-')));
  daemon = await Daemon.start({ env: { ...pam.env, ...daemonLog.env }, wrap: daemonLog.prefix, args: ['-n', '1'] });

  mkdirSync(join(scratch, 'mqueue'), { mode: 0o700 });
  // A minimal submission-only sendmail: AUTH required (M=Ea), plaintext AUTH allowed without TLS.
  writeFileSync(
    join(scratch, 'sendmail.mc'),
    sendmailMc({ directory: scratch, listeners: [{ name: 'MSP-v4', port: SUBMISSION_PORT, modifiers: 'Ea' }], authOptions: 'A' }),
  );
  writeFileSync(join(scratch, 'sendmail.cf'), execFileSync('m4', [join(scratch, 'sendmail.mc')]));
  writeFileSync(join(scratch, 'Sendmail.conf'), `pwcheck_method: saslauthd\nmech_list: PLAIN LOGIN\nsaslauthd_path: ${daemon.socket}\n`);
  // Name lookups stay on this machine (sendmail resolves its own name at startup).
  const host = hostname();
  writeFileSync(join(scratch, 'hosts'), `127.0.0.1 localhost\n127.0.0.1 sts.localdomain ${host}\n::1 localhost sts.localdomain ${host}\n`);
  writeFileSync(join(scratch, 'resolv.conf'), 'nameserver 127.0.0.1\n');
  writeFileSync(join(scratch, 'service.switch'), 'passwd files\nhosts files\naliases files\n');
  const sendmailLog = privateDevLog(listener.path, mkdtempSync(join(scratch, 'ns-')));
  const [command, ...prefix] = sendmailLog.prefix;
  const sendmail = spawnSync(
    command!,
    [
      ...prefix,
      'sh',
      '-c',
      'mount --bind "$0/Sendmail.conf" "$1" && mount --bind "$0/hosts" /etc/hosts && ' +
        'mount --bind "$0/resolv.conf" /etc/resolv.conf && exec /usr/sbin/sendmail -bd -C "$0/sendmail.cf"',
      scratch,
      SASL_APP_CONFIG,
    ],
    { env: { ...process.env, ...sendmailLog.env }, encoding: 'utf8', timeout: 60_000 },
  );
  assert.equal(sendmail.status, 0, `${sendmail.stdout}${sendmail.stderr}`);
  await waitForTcpPort(SUBMISSION_PORT, PORT_DEADLINE_MS);

  const ok = swaks('PLAIN', 'alice', GOOD);
  assert.equal(ok.status, 0, ok.output);
  assert.match(ok.output, /^<- +235 /m);
  for (const [mechanism, user] of WRONG_ATTEMPTS) {
    const refused = swaks(mechanism, user, WRONG);
    assert.equal(refused.status, 28, `${mechanism} ${user}: swaks reports an authentication failure\n${refused.output}`);
  }
  const isSendmailFailure = (message: string): boolean => message.includes('AUTH failure');
  const isOurFailure = (message: string): boolean => message.includes(': auth failure: ');
  await eventually(
    () => listener.messages.filter(isSendmailFailure).length >= WRONG_ATTEMPTS.length && listener.messages.filter(isOurFailure).length >= WRONG_ATTEMPTS.length,
    'sendmail and saslauthd logged every failure',
  );
  logFile = writeAuthLog(scratch, listener.messages);
});

after(async () => {
  if (!isRoot) return;
  try {
    const pid = Number.parseInt(readFileSync(join(scratch, 'sendmail.pid'), 'latin1'), 10);
    if (pid > 0) process.kill(pid, 'SIGTERM');
  } catch {
    // not started, or gone
  }
  await daemon?.dispose();
  pam?.dispose();
  listener?.close();
  rmSync(scratch, { recursive: true, force: true });
});

test("fail2ban's sendmail-auth filter counts every wrong password, by the client's address", { skip }, () => {
  const addresses = fail2banRegex(logFile, join(FAIL2BAN_FILTERS, 'sendmail-auth.conf'), 'ip');
  assert.deepEqual(addresses, WRONG_ATTEMPTS.map(() => '127.0.0.1'), readFileSync(logFile, 'utf8'));
});

test('our filter: no address to ban from a 4-field client; mode users counts each failure, by user', { skip }, () => {
  const filter = installShippedFilter(scratch);
  assert.deepEqual(fail2banRegex(logFile, filter, 'ip'), []);
  const users = fail2banRegex(logFile, `${filter}[mode=users]`, 'id');
  assert.deepEqual(users.sort(), WRONG_ATTEMPTS.map(([, user]) => user).sort());
});

test('no password in any line, sendmail\'s included', { skip }, () => {
  assertNoSecretsLogged([GOOD, WRONG]);
  const all = listener.messages.join('\n');
  assert.ok(!all.includes(GOOD) && !all.includes(WRONG));
});
