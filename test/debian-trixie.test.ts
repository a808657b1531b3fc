/**
 * The package on Debian 13 (trixie), in a real trixie booted with systemd-nspawn (root; see
 * test/helpers/trixie-machine.ts): built there with trixie's own tools, installed over a
 * stock sasl2-bin whose own saslauthd.service runs the C daemon with the stock default file
 * (no START line), driven with systemctl, then sasl2-bin reinstalled, an upgrade, removal and
 * purge — with `dpkg --verify sasl2-bin` clean after each step. Tests run in order and share
 * the machine; the container and its overlay go at the end.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { basename, join } from 'node:path';
import { TrixieMachine, trixieDeb } from './helpers/trixie-machine.js';
import { releasedDeb } from './helpers/debian-package.js';
import { sendmailMc } from './helpers/sendmail-config.js';

const isRoot = process.getuid?.() === 0;
const skip = !isRoot && 'needs root (debootstrap, systemd-nspawn)';
const USER = 'ststrixie';
const PASSWORD = 'Trixie-Pass-4471';
const WRONG = 'Trixie-Wrong-9913';
const UNIT = '/usr/lib/systemd/system/saslauthd.service';
const INSTANCE = 'saslauthd-sts';
const OK = '0: OK "Success."';
const NO = '0: NO "authentication failed"';
/** A NODE_OPTIONS payload: it would leave this file behind if it ever ran in the daemon. */
const PAYLOAD = '/tmp/sts-node-options.js';
const PAYLOAD_MARK = '/run/sts-node-options-ran';

let scratch: string;
let machine: TrixieMachine;
let deb: string;

/**
 * A shell script in the container. Its systemd counts starts (5 in 10 s, then refused): these
 * tests restart more often than that on purpose, so the count starts over each time.
 */
function sh(script: string): string {
  const result = machine.sh(`systemctl reset-failed 'saslauthd*'; ${script}`);
  assert.equal(result.status, 0, `${script}\n${result.stdout}\n${result.stderr}`);
  return result.stdout;
}

function show(unit: string): Record<string, string> {
  const out = sh(`systemctl show ${unit} -p ActiveState,SubState,MainPID,Type,FragmentPath,Result,StatusText,UnitFileState`);
  return Object.fromEntries(out.trim().split('\n').map((line) => [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1)]));
}

function testsaslauthd(password: string, socket = '/run/saslauthd/mux'): string {
  return machine.run('testsaslauthd', '-u', USER, '-p', password, '-s', 'smtp', '-f', socket).stdout.trim();
}

function exe(pid: string): string {
  return machine.run('readlink', `/proc/${pid}/exe`).stdout.trim();
}

function verifySasl2Bin(): void {
  const result = machine.run('dpkg', '--verify', 'sasl2-bin');
  assert.equal(result.stdout + result.stderr, '', 'dpkg --verify sasl2-bin prints nothing');
  assert.equal(result.status, 0);
}

/** sasl2-bin's recorded md5sum of one of its files. */
function sasl2BinMd5(path: string): string {
  const line = readFileSync(join(machine.root, 'var/lib/dpkg/info/sasl2-bin.md5sums'), 'latin1')
    .split('\n')
    .find((entry) => entry.endsWith(`  ${path.slice(1)}`));
  assert.ok(line, `sasl2-bin lists ${path}`);
  return line.split(' ')[0]!;
}

function md5(path: string): string {
  return createHash('md5').update(readFileSync(join(machine.root, path))).digest('hex');
}

function apt(...args: string[]): void {
  sh('true');
  const result = machine.run('apt-get', '-y', '-q', '--no-install-recommends', ...args);
  assert.equal(result.status, 0, `apt-get ${args.join(' ')}:\n${result.stdout}\n${result.stderr}`);
}

/** The process runs /usr/sbin/saslauthd, and that is our launcher. */
function isOurs(pid: string): boolean {
  return exe(pid) === '/usr/sbin/saslauthd' && machine.sh('/usr/sbin/saslauthd -v 2>&1').stdout.includes('saslauthd-ts');
}

before(async () => {
  if (!isRoot) return;
  deb = trixieDeb();
  scratch = mkdtempSync('/var/tmp/sts-trixie-'); // overlayfs upper: not on a tmpfs /tmp
  machine = await TrixieMachine.boot(scratch);
  copyFileSync(deb, join(machine.root, 'root', basename(deb)));
  sh(`useradd --no-create-home --shell /usr/sbin/nologin ${USER}`);
  const chpasswd = machine.runWithInput(`${USER}:${PASSWORD}\n`, 'chpasswd');
  assert.equal(chpasswd.status, 0, chpasswd.stderr);
});

after(async () => {
  if (!isRoot) return;
  await machine?.stop();
  rmSync(scratch, { recursive: true, force: true });
});

test('built on trixie: the launcher linked to trixie’s libnode; lintian (trixie’s) reports no error or warning', { skip }, (t) => {
  const fields = sh(`dpkg-deb --field /root/${basename(deb)} Depends`);
  assert.match(fields, /\blibnode115\b/, 'Node.js comes from the release (its security updates)');
  assert.match(fields, /\bsasl2-bin\b/);
  const contents = sh(`dpkg-deb --contents /root/${basename(deb)}`);
  for (const path of ['./usr/sbin/saslauthd', './usr/lib/saslauthd-ts/sea-main.cjs', `.${UNIT}`, './usr/lib/systemd/system/saslauthd.socket', './usr/lib/systemd/system/saslauthd@.service', './usr/lib/systemd/system-generators/saslauthd-ts-generator']) {
    assert.ok(contents.includes(` ${path}\n`), `${path} is in the package`);
  }
  assert.ok(!/ \.\/lib\//.test(contents), 'nothing under /lib (merged /usr: one file, two dpkg paths)');
  const lintian = machine.run('lintian', '--tag-display-limit', '0', '-I', `/root/${basename(deb)}`);
  t.diagnostic(`lintian:\n${lintian.stdout}${lintian.stderr}`);
  const lines = (lintian.stdout + lintian.stderr).split('\n');
  assert.deepEqual(lines.filter((line) => /^[EW]: /.test(line) || /unused-override/.test(line)), [], 'no error, warning or unused override');
});

test('stock trixie: sasl2-bin’s own unit runs the C daemon from the stock default file', { skip }, () => {
  assert.doesNotMatch(readFileSync(join(machine.root, 'etc/default/saslauthd'), 'latin1'), /^START=/m, 'the stock file has no START');
  sh('systemctl enable --now saslauthd');
  const state = show('saslauthd');
  assert.equal(state['ActiveState'], 'active');
  assert.equal(state['Type'], 'forking');
  assert.equal(exe(state['MainPID']!), '/usr/sbin/saslauthd');
  assert.equal(testsaslauthd(PASSWORD), OK);
  verifySasl2Bin();
});

test('install: ours takes over the running service (divert of sasl2-bin’s unit), START not needed', { skip }, () => {
  const before = show('saslauthd')['MainPID'];
  apt('install', `/root/${basename(deb)}`);
  const state = show('saslauthd');
  assert.equal(state['ActiveState'], 'active', 'restarted by the postinst');
  assert.equal(state['Type'], 'notify', 'our unit under sasl2-bin’s name');
  assert.equal(state['FragmentPath'], UNIT);
  assert.equal(state['UnitFileState'], 'enabled', 'the admin’s enable carries over');
  assert.equal(state['StatusText'], 'listening on socket: /var/run/saslauthd/mux');
  assert.notEqual(state['MainPID'], before);
  assert.equal(exe(state['MainPID']!), '/usr/sbin/saslauthd', 'the launcher is the process (start-stop-daemon --exec)');
  assert.ok(isOurs(state['MainPID']!));
  assert.equal(testsaslauthd(PASSWORD), OK);
  assert.equal(testsaslauthd(WRONG), NO);
  assert.equal(sh('stat -c "%U:%G %a" /run/saslauthd').trim(), 'root:sasl 710', 'sasl2-bin’s statoverride');
  assert.equal(sh(`stat -c %G /run/saslauthd/saslauthd.pid`).trim(), 'sasl', 'Group=sasl as sasl2-bin’s unit');
  const diversions = sh('dpkg-divert --list "*saslauthd*"');
  assert.match(diversions, /diversion of \/usr\/lib\/systemd\/system\/saslauthd\.service to \/usr\/lib\/systemd\/system\/saslauthd\.service\.cyrus by saslauthd-ts/);
  assert.equal(md5(`${UNIT}.cyrus`), sasl2BinMd5(UNIT), 'sasl2-bin’s unit kept as shipped');
  verifySasl2Bin();
});

test('systemctl reload keeps the daemon; restart replaces it; stop; start', { skip }, () => {
  const first = show('saslauthd')['MainPID'];
  sh('systemctl reload saslauthd');
  assert.equal(show('saslauthd')['MainPID'], first);
  sh('systemctl restart saslauthd');
  const second = show('saslauthd')['MainPID'];
  assert.notEqual(second, first);
  assert.equal(testsaslauthd(PASSWORD), OK);
  sh('systemctl stop saslauthd');
  assert.equal(show('saslauthd')['ActiveState'], 'inactive');
  assert.equal(show('saslauthd')['Result'], 'success');
  assert.equal(machine.run('test', '-e', '/run/saslauthd/mux').status, 1, 'the socket is removed');
  sh('systemctl start saslauthd');
  assert.equal(show('saslauthd')['ActiveState'], 'active');
  assert.equal(testsaslauthd(PASSWORD), OK);
});

test('NODE_OPTIONS in /etc/default/saslauthd never reaches the daemon', { skip }, () => {
  const defaults = join(machine.root, 'etc/default/saslauthd');
  const stock = readFileSync(defaults);
  try {
    sh(`printf 'require("fs").writeFileSync("${PAYLOAD_MARK}", String(process.pid));\\n' >${PAYLOAD}`);
    // The payload works where Node reads NODE_OPTIONS (trixie's own node).
    sh(`NODE_OPTIONS="--require ${PAYLOAD}" node -e 0 && test -e ${PAYLOAD_MARK} && rm ${PAYLOAD_MARK}`);
    // The launcher itself drops it.
    sh(`NODE_OPTIONS="--require ${PAYLOAD}" NODE_PATH=/tmp /usr/sbin/saslauthd -v 2>/dev/null || true`);
    assert.equal(machine.run('test', '-e', PAYLOAD_MARK).status, 1, 'the launcher ran no payload');
    writeFileSync(defaults, Buffer.concat([stock, Buffer.from(`NODE_OPTIONS="--require ${PAYLOAD}"\nexport NODE_OPTIONS\nNODE_DEBUG=net\n`)]));
    sh('systemctl restart saslauthd');
    const state = show('saslauthd');
    assert.equal(state['ActiveState'], 'active');
    assert.equal(testsaslauthd(PASSWORD), OK);
    assert.equal(machine.run('test', '-e', PAYLOAD_MARK).status, 1, 'no process of the service ran the payload');
    const pids = sh('for p in /proc/[0-9]*; do [ "$(readlink $p/exe)" != /usr/sbin/saslauthd ] || echo ${p#/proc/}; done');
    assert.ok(pids.trim().split('\n').length >= 2, `the daemon and its workers: ${pids}`);
    for (const pid of pids.trim().split('\n')) {
      const environ = machine.run('cat', `/proc/${pid}/environ`).stdout.split('\0');
      assert.deepEqual(environ.filter((entry) => entry.startsWith('NODE_')), [], `no NODE_* in process ${pid}`);
    }
  } finally {
    writeFileSync(defaults, stock);
    sh(`rm -f ${PAYLOAD} ${PAYLOAD_MARK}; systemctl restart saslauthd`);
  }
});

test('an instance from /etc/default/saslauthd-NAME starts and stops with saslauthd.service', { skip }, () => {
  writeFileSync(
    join(machine.root, `etc/default/${INSTANCE}`),
    `NAME="sts"\nMECHANISMS="pam"\nTHREADS=1\nOPTIONS="-c -m /var/run/${INSTANCE}"\n`,
  );
  try {
    sh('systemctl daemon-reload && systemctl restart saslauthd');
    const instance = show(`saslauthd@${INSTANCE}`);
    assert.equal(instance['ActiveState'], 'active', 'no START line needed on trixie');
    assert.equal(instance['StatusText'], `listening on socket: /var/run/${INSTANCE}/mux`);
    assert.equal(testsaslauthd(PASSWORD, `/run/${INSTANCE}/mux`), OK);
    sh('systemctl stop saslauthd');
    assert.equal(show(`saslauthd@${INSTANCE}`)['ActiveState'], 'inactive', 'PartOf=');
  } finally {
    rmSync(join(machine.root, `etc/default/${INSTANCE}`), { force: true });
    sh('systemctl daemon-reload && systemctl start saslauthd');
  }
});

/** The seed's sendmail.mc (see test/sendmail-submission.test.ts), in the container's /root/sm. */
const SENDMAIL_DIR = '/root/sm';
const SENDMAIL_MC = sendmailMc({
  directory: SENDMAIL_DIR,
  listeners: [
    { name: 'MTA-v4', port: 25, modifiers: 'A' },
    { name: 'MSP-v4', port: 587, modifiers: 'Ea' },
  ],
  authOptions: 'p y',
  tls: { cert: `${SENDMAIL_DIR}/cert.pem`, key: `${SENDMAIL_DIR}/key.pem` },
});

function swaks(...args: string[]): { status: number | null; output: string } {
  const result = machine.run('swaks', '--server', '127.0.0.1', '--port', '587', '--timeout', '30', ...args);
  return { status: result.status, output: result.stdout + result.stderr };
}

/** Probes the daemon every 50 ms in the background (see stopProbing). */
function startProbing(log: string): void {
  sh(`rm -f /run/sts-stop-probe; (end=$(($(date +%s)+120)); while [ ! -e /run/sts-stop-probe ] && [ $(date +%s) -lt $end ]; do
      testsaslauthd -u ${USER} -p ${PASSWORD} -s smtp >/dev/null 2>&1 && echo ok || echo fail; sleep 0.05; done >${log}) >/dev/null 2>&1 &`);
}

/** What the probes saw: failures, probes, and the longest run of failures in a row (one gap). */
function stopProbing(log: string): { failures: number; probes: number; longestGap: number } {
  sh('sleep 0.5; touch /run/sts-stop-probe; sleep 0.3');
  const lines = sh(`cat ${log}`).trim().split('\n');
  let longestGap = 0;
  let gap = 0;
  for (const line of lines) {
    gap = line === 'fail' ? gap + 1 : 0;
    longestGap = Math.max(longestGap, gap);
  }
  return { failures: lines.filter((line) => line === 'fail').length, probes: lines.length, longestGap };
}

/** A restart (stop, then start up to READY=1) costs a few probes; more in a row is a longer gap. */
const MAX_PROBES_LOST_IN_A_RESTART = 10;

test('sendmail 8.18 (trixie) as a submission agent authenticates through our daemon', { skip }, () => {
  assert.match(sh('dpkg-query -W -f \'${Version}\' sendmail-bin'), /^8\.18\./);
  // The container's own sendmail (started at boot) makes way for the seed's configuration.
  sh('systemctl stop sendmail 2>/dev/null || true');
  mkdirSync(join(machine.root, SENDMAIL_DIR.slice(1), 'mqueue'), { recursive: true, mode: 0o700 });
  writeFileSync(join(machine.root, SENDMAIL_DIR.slice(1), 'sendmail.mc'), SENDMAIL_MC);
  writeFileSync(join(machine.root, SENDMAIL_DIR.slice(1), 'service.switch'), 'passwd files\nhosts files\naliases files\n');
  writeFileSync(join(machine.root, 'usr/lib/sasl2/Sendmail.conf'), 'pwcheck_method: saslauthd\nmech_list: PLAIN LOGIN\nsaslauthd_path: /var/run/saslauthd/mux\n');
  // trixie's sendmail installs its SASL and TLS m4 fragments as examples: the admin puts
  // them in place (as sendmailconfig's update_auth would).
  sh(`cd ${SENDMAIL_DIR} && echo "127.0.0.1 sts.localdomain $(hostname)" >>/etc/hosts &&
    cp -n /usr/share/sendmail/examples/sasl/sasl.m4 /etc/mail/sasl/ && cp -n /usr/share/sendmail/examples/tls/starttls.m4 /etc/mail/tls/ &&
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=sts.localdomain -keyout key.pem -out cert.pem 2>/dev/null &&
    m4 sendmail.mc >sendmail.cf && /usr/sbin/sendmail -bd -C ${SENDMAIL_DIR}/sendmail.cf`);
  try {
    let ehlo = swaks('--quit-after', 'EHLO');
    for (let tries = 0; tries < 50 && ehlo.status !== 0; tries++) {
      spawnSync('sleep', ['0.2']);
      ehlo = swaks('--quit-after', 'EHLO');
    }
    assert.match(ehlo.output, /250-STARTTLS/);
    assert.doesNotMatch(ehlo.output, /250[- ]AUTH.*\b(PLAIN|LOGIN)\b/, 'no plaintext AUTH before STARTTLS');
    for (const mechanism of ['PLAIN', 'LOGIN']) {
      const good = swaks('--tls', '--auth', mechanism, '--auth-user', USER, '--auth-password', PASSWORD, '--quit-after', 'AUTH');
      assert.match(good.output, /^<~ +235 2\.0\.0 OK Authenticated/m, `${mechanism}:\n${good.output}`);
      const bad = swaks('--tls', '--auth', mechanism, '--auth-user', USER, '--auth-password', WRONG, '--quit-after', 'AUTH');
      assert.equal(bad.status, 28, bad.output);
      assert.match(bad.output, /^<~\* +535 5\.7\.0 authentication failed/m);
    }
    const submitted = swaks('--tls', '--auth', 'LOGIN', '--auth-user', USER, '--auth-password', PASSWORD,
      '--from', `${USER}@sts.localdomain`, '--to', 'root@localhost', '--header', 'Subject: saslauthd-ts on trixie');
    assert.match(submitted.output, /^<~ +250 2\.0\.0 \S+ Message accepted for delivery/m, submitted.output);
    const anonymous = swaks('--tls', '--from', `${USER}@sts.localdomain`, '--to', 'someone@example.org', '--quit-after', 'RCPT');
    assert.match(anonymous.output, /^<~\* +5\d\d /m, 'relaying without AUTH is refused');
    assert.match(sh('journalctl -u saslauthd --no-pager -o cat'), new RegExp(`auth failure: \\[user=${USER}\\] \\[service=smtp\\]`), 'our daemon answered');
  } finally {
    sh(`kill $(head -1 ${SENDMAIL_DIR}/sendmail.pid) 2>/dev/null || true`);
  }
});

test('socket activation (optional): saslauthd.socket owns the mux; a restart loses no client', { skip }, (t) => {
  assert.equal(show('saslauthd.socket')['UnitFileState'], 'disabled', 'off by default');
  // systemd starts a socket only while its service is stopped.
  sh('systemctl stop saslauthd && systemctl enable --now saslauthd.socket && systemctl start saslauthd');
  assert.equal(show('saslauthd.socket')['ActiveState'], 'active');
  assert.equal(sh('stat -c "%U:%G %a" /run/saslauthd').trim(), 'root:sasl 710', 'the run directory made before the socket');
  assert.equal(sh('stat -c %a /run/saslauthd/mux').trim(), '777');
  const inode = sh('stat -c %i /run/saslauthd/mux');
  startProbing('/run/sts-socket-probe.log');
  try {
    sh('for i in 1 2 3; do systemctl restart saslauthd; sleep 0.3; done');
  } finally {
    const { failures, probes } = stopProbing('/run/sts-socket-probe.log');
    t.diagnostic(`${failures} of ${probes} probes failed during three restarts`);
    assert.ok(probes >= 3, `probes ran: ${probes}`);
    assert.equal(failures, 0, `${failures} of ${probes} probes failed`);
  }
  assert.equal(sh('stat -c %i /run/saslauthd/mux'), inode, 'the same socket throughout');
  // Stopped, the service is started again by the next client.
  sh('systemctl stop saslauthd');
  assert.equal(testsaslauthd(PASSWORD), OK);
  assert.equal(show('saslauthd')['ActiveState'], 'active', 'started by the socket');
  // Off again: the daemon binds its own socket.
  sh('systemctl stop saslauthd && systemctl disable --now saslauthd.socket && systemctl start saslauthd');
  assert.equal(show('saslauthd.socket')['ActiveState'], 'inactive');
  assert.equal(testsaslauthd(PASSWORD), OK);
  assert.notEqual(sh('stat -c %i /run/saslauthd/mux'), inode);
});

test('apt-get install --reinstall sasl2-bin leaves ours in charge', { skip }, () => {
  // From the root's apt cache: the container has no network but its loopback.
  apt('install', '--reinstall', '--no-download', 'sasl2-bin');
  const state = show('saslauthd');
  assert.equal(state['ActiveState'], 'active');
  assert.equal(state['Type'], 'notify');
  assert.ok(isOurs(state['MainPID']!));
  assert.equal(md5(`${UNIT}.cyrus`), sasl2BinMd5(UNIT), 'sasl2-bin’s new unit went to the diverted name');
  assert.equal(testsaslauthd(PASSWORD), OK);
  verifySasl2Bin();
});

test('an upgrade (here a reinstall) restarts the running daemon: no gap beyond the restart', { skip }, (t) => {
  const before = show('saslauthd')['MainPID'];
  // A client asking every 50 ms through the whole upgrade.
  startProbing('/run/sts-probe.log');
  let failures = 0;
  let probes = 0;
  let longestGap = 0;
  try {
    sh('true');
    const result = machine.run('dpkg', '-i', `/root/${basename(deb)}`);
    assert.equal(result.status, 0, result.stdout + result.stderr);
  } finally {
    ({ failures, probes, longestGap } = stopProbing('/run/sts-probe.log'));
  }
  const after = show('saslauthd');
  assert.equal(after['ActiveState'], 'active');
  assert.notEqual(after['MainPID'], before, 'restarted');
  t.diagnostic(`${failures} of ${probes} probes failed during the upgrade, at most ${longestGap} in a row`);
  assert.ok(probes > 10, `probes ran: ${probes}`);
  // The restart in the postinst is the only gap.
  assert.ok(failures <= MAX_PROBES_LOST_IN_A_RESTART, `${failures} of ${probes} probes failed`);
  verifySasl2Bin();
});

test('removal gives back Cyrus’s daemon and unit, started and answering; purge leaves nothing', { skip }, () => {
  apt('remove', 'saslauthd-ts');
  assert.equal(sh('dpkg-divert --list "*saslauthd*"').trim(), '', 'no diversion left');
  assert.equal(md5(UNIT), sasl2BinMd5(UNIT), 'sasl2-bin’s unit back as shipped');
  assert.equal(md5('/usr/sbin/saslauthd'), sasl2BinMd5('/usr/sbin/saslauthd'));
  verifySasl2Bin();
  const state = show('saslauthd');
  assert.equal(state['Type'], 'forking');
  assert.equal(state['ActiveState'], 'active', 'the postrm started the C daemon');
  assert.equal(state['UnitFileState'], 'enabled', 'still enabled');
  assert.match(machine.sh('/usr/sbin/saslauthd -v 2>&1').stdout, /authentication mechanisms: sasldb/);
  assert.equal(testsaslauthd(PASSWORD), OK);
  assert.equal(testsaslauthd(WRONG), NO);

  apt('purge', 'saslauthd-ts');
  assert.equal(machine.run('dpkg-query', '-W', 'saslauthd-ts').status, 1, 'dpkg forgot the package');
  sh(`rm /root/${basename(deb)}`);
  const leftovers = sh('find / -xdev ! -path /.saslauthd-ts-root \\( -name "*saslauthd-ts*" -o -name "*.cyrus" -o -name "*.cyrus.*" \\) ! -path "/proc/*" -print');
  assert.equal(leftovers, '', 'nothing of ours left');
  verifySasl2Bin();
  assert.equal(show('saslauthd')['ActiveState'], 'active', 'the C daemon runs on');
  sh('systemctl restart saslauthd');
  assert.equal(testsaslauthd(PASSWORD), OK);
});

test('upgrade from 0.1.0 (built on Debian 12, installed on trixie) keeps the service up', { skip }, (t) => {
  const old = releasedDeb('0.1.0');
  copyFileSync(old, join(machine.root, 'root', basename(old)));
  copyFileSync(deb, join(machine.root, 'root', basename(deb)));
  const defaults = join(machine.root, 'etc/default/saslauthd');
  const stock = readFileSync(defaults);
  try {
    // 0.1.0's unit requires START=yes (its ExecCondition=), even on trixie.
    writeFileSync(defaults, Buffer.concat([stock, Buffer.from('START=yes\n')]));
    apt('install', `/root/${basename(old)}`);
    const before = show('saslauthd');
    assert.equal(before['ActiveState'], 'active');
    assert.ok(isOurs(before['MainPID']!));
    assert.notEqual(md5(UNIT), sasl2BinMd5(UNIT), '0.1.0 overwrote sasl2-bin’s unit (merged /usr)');

    startProbing('/run/sts-upgrade-probe.log');
    let upgrade;
    let failures = 0;
    let probes = 0;
    let longestGap = 0;
    try {
      sh('true');
      upgrade = machine.run('dpkg', '-i', `/root/${basename(deb)}`);
    } finally {
      ({ failures, probes, longestGap } = stopProbing('/run/sts-upgrade-probe.log'));
    }
    assert.equal(upgrade.status, 0, upgrade.stdout + upgrade.stderr);
    t.diagnostic(`${failures} of ${probes} probes failed during the upgrade from 0.1.0, at most ${longestGap} in a row`);
    const after = show('saslauthd');
    assert.equal(after['ActiveState'], 'active');
    assert.equal(after['Type'], 'notify');
    assert.ok(isOurs(after['MainPID']!));
    assert.equal(testsaslauthd(PASSWORD), OK);
    // Two restarts, not one gap as long as the unpack (and whatever else apt unpacks in the
    // same run): 0.1.0's prerm stops the daemon, 0.2.0's preinst starts it again at once, and
    // its postinst restarts it into the new version.
    assert.ok(longestGap <= MAX_PROBES_LOST_IN_A_RESTART, `${longestGap} probes in a row failed`);
    assert.ok(failures <= 2 * MAX_PROBES_LOST_IN_A_RESTART, `${failures} of ${probes} probes failed`);
    assert.match(upgrade.stderr, /'apt-get install --reinstall sasl2-bin' restores it/, 'the admin is told');
    apt('install', '--reinstall', '--no-download', 'sasl2-bin');
    assert.equal(md5(`${UNIT}.cyrus`), sasl2BinMd5(UNIT));
    writeFileSync(defaults, stock); // the conffile as shipped again
    verifySasl2Bin();
    assert.equal(show('saslauthd')['Type'], 'notify', 'ours still in charge');
  } finally {
    writeFileSync(defaults, stock);
  }
  apt('purge', 'saslauthd-ts');
  sh(`rm -f /root/${basename(old)} /root/${basename(deb)}`);
  assert.equal(md5(UNIT), sasl2BinMd5(UNIT));
  verifySasl2Bin();
  assert.equal(show('saslauthd')['ActiveState'], 'active');
  assert.equal(show('saslauthd')['Type'], 'forking');
  assert.equal(testsaslauthd(PASSWORD), OK);
});

test('the journal holds no test password', { skip }, () => {
  const journal = sh('journalctl --no-pager -o cat');
  assert.match(journal, new RegExp(`auth failure: \\[user=${USER}\\]`), 'the failures were logged');
  for (const secret of [PASSWORD, WRONG]) assert.ok(!journal.includes(secret), `${secret} is not in the journal`);
  const logs = machine.run('grep', '-rlF', '-e', PASSWORD, '-e', WRONG, '/var/log');
  assert.equal(logs.stdout, '', 'nor in /var/log');
});
