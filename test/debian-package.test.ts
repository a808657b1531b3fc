/**
 * The Debian package, end to end on this machine (root; CI is root on Debian 12 without
 * systemd as PID 1): build it, lint it, install it over sasl2-bin while the C daemon runs,
 * drive it with sasl2-bin's own /etc/init.d/saslauthd and /etc/default/saslauthd, check the
 * systemd side (units, generator, ExecStart helper with sd_notify), then remove it and see
 * the C daemon back and answering. Everything changed is put back in after().
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { debPackage, PACKAGE } from './helpers/debian-package.js';
import { DatagramListener } from './helpers/dgram-listener.js';
import {
  DEFAULTS,
  INIT_SCRIPT,
  SBIN_SASLAUTHD,
  addUser,
  daemonProcesses,
  exeOf,
  isKnown,
  isRunning,
  readPid,
  removeUser,
  run,
  runWithServicesAllowed,
  testsaslauthd,
} from './helpers/installed-daemon.js';
import { eventually } from './helpers/processes.js';
import { tcpListenersOf } from './helpers/tcp-listeners.js';

const isRoot = process.getuid?.() === 0;
const skip = !isRoot && 'needs root (installs the package)';
const USER = `stdeb${process.pid}`;
const PASSWORD = 'Deb-Package-Pass-5';
const RUN_DIR = '/var/run/saslauthd';
const PID_FILE = `${RUN_DIR}/saslauthd.pid`;
const INSTANCE = `saslauthd-sts${process.pid}`;
const HELPER = '/usr/lib/saslauthd-ts/saslauthd-service';

let deb: string;
let scratch: string;
let savedDefaults: Buffer | undefined;
let chrootRunDir: string;

function gid(group: string): number {
  const line = readFileSync('/etc/group', 'latin1').split('\n').find((entry) => entry.startsWith(`${group}:`));
  return Number(line!.split(':')[2]);
}

function writeDefaults(extra = ''): void {
  writeFileSync(
    DEFAULTS,
    `DESC="SASL Authentication Daemon"\nNAME="saslauthd"\nSTART=yes\nMECHANISMS="pam"\nMECH_OPTIONS=""\nTHREADS=2\nOPTIONS="-c -m ${RUN_DIR}"\n${extra}`,
  );
}

function install(): void {
  const result = runWithServicesAllowed(scratch, 'apt-get', ['install', '-y', '--no-install-recommends', deb]);
  assert.equal(result.status, 0, `apt-get install failed:\n${result.stdout}\n${result.stderr}`);
}

function purge(): void {
  const result = runWithServicesAllowed(scratch, 'apt-get', ['purge', '-y', PACKAGE]);
  assert.equal(result.status, 0, `apt-get purge failed:\n${result.stdout}\n${result.stderr}`);
}

function init(...args: string[]): { status: number | null; output: string } {
  const result = run(INIT_SCRIPT, args);
  return { status: result.status, output: result.stdout + result.stderr };
}

function isOurs(binary: string): boolean {
  return run(binary, ['-v']).stderr.includes('saslauthd-ts');
}

before(() => {
  if (!isRoot) return;
  deb = debPackage();
  scratch = mkdtempSync('/tmp/sts-deb-');
  chrootRunDir = join(scratch, 'postfix/var/run/saslauthd');
  savedDefaults = existsSync(DEFAULTS) ? readFileSync(DEFAULTS) : undefined;
  if (isKnown(PACKAGE)) purge(); // a run that was cut short
  init('stop');
  addUser(USER, PASSWORD);
});

after(() => {
  if (!isRoot) return;
  init('stop');
  if (isKnown(PACKAGE)) purge();
  init('stop');
  if (savedDefaults) writeFileSync(DEFAULTS, savedDefaults);
  rmSync(`/etc/default/${INSTANCE}`, { force: true });
  run('dpkg-statoverride', ['--remove', chrootRunDir]);
  removeUser(USER);
  rmSync(scratch, { recursive: true, force: true });
});

test('the package builds without network and lintian reports no error', { skip }, (t) => {
  assert.match(deb, /saslauthd-ts_[\d.]+_amd64\.deb$/);
  const lintian = run('lintian', ['--tag-display-limit', '0', deb]);
  t.diagnostic(`lintian:\n${lintian.stdout}${lintian.stderr}`);
  assert.ok(lintian.status === 0 || lintian.status === 2, `lintian did not run: ${lintian.status}\n${lintian.stderr}`);
  const lines = (lintian.stdout + lintian.stderr).split('\n');
  assert.deepEqual(lines.filter((line) => /^E: /.test(line)), [], 'no error');
  // Warnings are fixed or overridden with a reason (debian/saslauthd-ts.lintian-overrides).
  assert.deepEqual(lines.filter((line) => /^W: /.test(line)), [], 'no warning either');
  assert.equal(lintian.status, 0, 'lintian exit status');
});

test('contents: the executable, production modules for this architecture only, units, no conffiles', { skip }, () => {
  const list = run('dpkg-deb', ['--contents', deb]).stdout;
  const paths = list.split('\n').map((line) => line.split(/\s+/)[5] ?? '').filter((path) => path !== '');
  for (const path of [
    './usr/sbin/saslauthd',
    './usr/sbin/saslauthdctl',
    './usr/share/man/man8/saslauthd.8.gz',
    './usr/share/man/man8/saslauthdctl.8.gz',
    './etc/fail2ban/filter.d/saslauthd-ts.conf',
    './usr/lib/saslauthd-ts/dist/src/cli/saslauthd.js',
    './usr/lib/saslauthd-ts/dist/src/workers/worker-main.js',
    './usr/lib/saslauthd-ts/node_modules/pino/package.json',
    './usr/lib/saslauthd-ts/node_modules/koffi/build/koffi/linux_x64/koffi.node',
    './usr/lib/saslauthd-ts/saslauthd-service',
    './lib/systemd/system/saslauthd.service',
    './lib/systemd/system/saslauthd@.service',
    './lib/systemd/system/saslauthd.socket',
    './lib/systemd/system-generators/saslauthd-ts-generator',
  ]) {
    assert.ok(paths.includes(path), `${path} is in the package`);
  }
  const koffiBuilds = paths.filter((path) => /node_modules\/koffi\/build\/koffi\/[^/]+\/$/.test(path));
  assert.deepEqual(koffiBuilds, ['./usr/lib/saslauthd-ts/node_modules/koffi/build/koffi/linux_x64/']);
  for (const dev of ['typescript', 'postject', '@types/node', 'fast-check']) {
    assert.ok(!paths.some((path) => path.includes(`/node_modules/${dev}/`)), `dev dependency ${dev} is not shipped`);
  }
  // The one conffile is the fail2ban filter: /etc/default and /etc/init.d stay sasl2-bin's.
  assert.deepEqual(
    paths.filter((path) => path.startsWith('./etc/') && !path.endsWith('/')),
    ['./etc/fail2ban/filter.d/saslauthd-ts.conf'],
    'no conffile but the fail2ban filter',
  );
  assert.ok(!paths.some((path) => path.includes('/dist/test/')), 'no tests');
  const fields = run('dpkg-deb', ['--field', deb, 'Depends', 'Architecture']).stdout;
  assert.match(fields, /Depends: .*\bsasl2-bin\b/);
});

test('installing over a running C daemon takes the daemon over and keeps the sasl2-bin tools', { skip }, async () => {
  writeDefaults();
  const cStart = init('start');
  assert.equal(cStart.status, 0, cStart.output);
  const cPid = readPid(PID_FILE)!;
  assert.ok(!isOurs(SBIN_SASLAUTHD), 'the C daemon runs before the install');
  assert.equal(exeOf(cPid), SBIN_SASLAUTHD);
  assert.equal(testsaslauthd(USER, PASSWORD, 'imap').stdout.trim(), '0: OK "Success."');

  install();
  await eventually(() => !isRunning(cPid), 'the C daemon was stopped by the preinst');
  const pid = readPid(PID_FILE);
  assert.ok(pid !== undefined && pid !== cPid, 'a new daemon was started by the postinst');
  assert.equal(exeOf(pid), SBIN_SASLAUTHD, '/proc/PID/exe is /usr/sbin/saslauthd (start-stop-daemon --exec matches)');
  assert.equal(readFileSync(`/proc/${pid}/comm`, 'latin1').trim(), 'saslauthd');
  assert.ok(isOurs(SBIN_SASLAUTHD), '/usr/sbin/saslauthd -v names saslauthd-ts');
  assert.ok(existsSync('/usr/sbin/saslauthd.cyrus') && !isOurs('/usr/sbin/saslauthd.cyrus'), 'the original is kept as saslauthd.cyrus');
  assert.ok(existsSync('/usr/share/man/man8/saslauthd.cyrus.8.gz'));
  const diversions = run('dpkg-divert', ['--list', '*saslauthd*']).stdout;
  assert.match(diversions, /diversion of \/usr\/sbin\/saslauthd to \/usr\/sbin\/saslauthd\.cyrus by saslauthd-ts/);
  assert.match(diversions, /diversion of \/usr\/share\/man\/man8\/saslauthd\.8\.gz to \/usr\/share\/man\/man8\/saslauthd\.cyrus\.8\.gz by saslauthd-ts/);
  for (const tool of ['/usr/sbin/saslpasswd2', '/usr/sbin/sasldblistusers2', '/usr/sbin/testsaslauthd']) {
    assert.ok(existsSync(tool), `${tool} (sasl2-bin) is still installed`);
  }
  // Debian's C testsaslauthd against our daemon, real PAM (pam_unix through "other")
  assert.equal(testsaslauthd(USER, PASSWORD, 'imap').stdout.trim(), '0: OK "Success."');
  const wrong = testsaslauthd(USER, 'Not-The-Password', 'imap');
  assert.equal(wrong.stdout.trim(), '0: NO "authentication failed"');
  // /usr/sbin/saslauthdctl: the same executable with its saslauthdctl entry, over the control socket
  const status = run('/usr/sbin/saslauthdctl', ['-m', RUN_DIR, 'status', '--json']);
  assert.equal(status.status, 0, status.stderr);
  assert.equal((JSON.parse(status.stdout) as { pid: number }).pid, pid);
  const ctlTest = spawnSync('/usr/sbin/saslauthdctl', ['-m', RUN_DIR, 'test', '-u', USER], { input: `${PASSWORD}\n`, encoding: 'utf8', timeout: 30_000 });
  assert.equal(ctlTest.status, 0, ctlTest.stderr);
  assert.match(ctlTest.stdout, /^OK \(\d+\.\d ms\)\n$/);
  assert.equal(wrong.status, 255);
  const processes = daemonProcesses();
  assert.deepEqual(processes.primaries, [pid]);
  assert.equal(processes.all.length, 3, 'the primary and THREADS=2 workers, all /usr/sbin/saslauthd');
});

test('/etc/init.d/saslauthd: status, a second start, reload, restart, stop, status, stop again, start', { skip }, async () => {
  const pid = readPid(PID_FILE)!;
  let result = init('status');
  assert.equal(result.status, 0, result.output);
  assert.match(result.output, /\(running\)/);

  result = init('start');
  assert.equal(result.status, 0, result.output);
  assert.match(result.output, /already running/);
  assert.equal(readPid(PID_FILE), pid);
  assert.deepEqual(daemonProcesses().primaries, [pid], 'a second start does not start a second daemon');

  result = init('reload');
  assert.equal(result.status, 0, result.output);
  await new Promise((resolve) => setTimeout(resolve, 300));
  assert.ok(isRunning(pid), 'reload (SIGHUP) is harmless');
  assert.equal(testsaslauthd(USER, PASSWORD, 'smtp').stdout.trim(), '0: OK "Success."');

  result = init('restart');
  assert.equal(result.status, 0, result.output);
  const restarted = readPid(PID_FILE)!;
  assert.notEqual(restarted, pid);
  assert.ok(!isRunning(pid), 'restart stopped the old daemon');
  assert.deepEqual(daemonProcesses().primaries, [restarted]);
  assert.equal(testsaslauthd(USER, PASSWORD, 'smtp').stdout.trim(), '0: OK "Success."');

  result = init('stop');
  assert.equal(result.status, 0, result.output);
  await eventually(() => !isRunning(restarted), 'stop really stops the daemon');
  assert.deepEqual(daemonProcesses().all, [], 'no primary or worker left');
  assert.ok(!existsSync(`${RUN_DIR}/mux`), 'the socket is gone');
  assert.ok(!existsSync(PID_FILE));

  result = init('status');
  assert.equal(result.status, 3, result.output);
  assert.match(result.output, /not running/);
  result = init('stop');
  assert.equal(result.status, 0, result.output);

  result = init('start');
  assert.equal(result.status, 0, result.output);
  const started = readPid(PID_FILE)!;
  assert.equal(exeOf(started), SBIN_SASLAUTHD);
  const stat = statSync(RUN_DIR);
  assert.equal(stat.mode & 0o7777, 0o710);
  assert.equal(stat.uid, 0);
  assert.equal(stat.gid, gid('sasl'));
  assert.equal(testsaslauthd(USER, PASSWORD, 'imap').stdout.trim(), '0: OK "Success."');
});

test("the init script run from a shell that exported NODE_OPTIONS: no process of the daemon runs it, listens or keeps it", { skip }, async () => {
  const marker = join(scratch, 'node-options-ran');
  const script = join(scratch, 'node-options.cjs');
  writeFileSync(script, `require('fs').appendFileSync(${JSON.stringify(marker)}, process.pid + '\\n');\n`);
  assert.equal(init('stop').status, 0);
  await eventually(() => daemonProcesses().all.length === 0, 'the daemon stopped');
  const env = { ...process.env, NODE_OPTIONS: `--require ${script} --inspect=127.0.0.1:0`, NODE_DEBUG: 'net' };
  const started = run(INIT_SCRIPT, ['start'], env);
  assert.equal(started.status, 0, started.stdout + started.stderr);
  const pid = readPid(PID_FILE)!;
  assert.equal(testsaslauthd(USER, PASSWORD, 'imap').stdout.trim(), '0: OK "Success."');
  assert.ok(!existsSync(marker), `NODE_OPTIONS code ran in: ${existsSync(marker) ? readFileSync(marker, 'utf8') : ''}`);
  for (const process of daemonProcesses().all) {
    const environ = readFileSync(`/proc/${process}/environ`, 'latin1').split('\0');
    assert.deepEqual(environ.filter((entry) => entry.startsWith('NODE_')), [], `process ${process} environment`);
    assert.deepEqual(tcpListenersOf(process), [], `process ${process} listens on TCP`);
  }
  assert.ok(daemonProcesses().all.includes(pid));
});

test('an upgrade (here a reinstall) stops the daemon before its binary is replaced and starts the new one', { skip }, async () => {
  const old = readPid(PID_FILE)!;
  assert.ok(isRunning(old));
  const result = runWithServicesAllowed(scratch, 'dpkg', ['-i', deb]);
  assert.equal(result.status, 0, result.stdout + result.stderr);
  await eventually(() => !isRunning(old), 'the old daemon was stopped by the prerm');
  const pid = readPid(PID_FILE);
  assert.ok(pid !== undefined && pid !== old && isRunning(pid), 'the postinst started the new one');
  assert.equal(exeOf(pid), SBIN_SASLAUTHD, 'running the new binary, not a deleted one');
  assert.deepEqual(daemonProcesses().primaries, [pid]);
  const diversions = run('dpkg-divert', ['--list', '*saslauthd*']).stdout.trim().split('\n');
  assert.equal(diversions.length, 2, diversions.join('\n'));
  assert.equal(testsaslauthd(USER, PASSWORD, 'imap').stdout.trim(), '0: OK "Success."');
  assert.equal(init('status').status, 0);
});

test('instances and dpkg-statoverride: /etc/default/saslauthd-NAME with a Postfix-chroot run directory', { skip }, async () => {
  mkdirSync(join(scratch, 'postfix/var/run'), { recursive: true });
  const override = run('dpkg-statoverride', ['--add', 'root', 'sasl', '750', chrootRunDir]);
  assert.equal(override.status, 0, override.stderr);
  writeFileSync(
    `/etc/default/${INSTANCE}`,
    `NAME="sts"\nSTART=yes\nMECHANISMS="pam"\nTHREADS=1\nOPTIONS="-c -m ${chrootRunDir}"\n`,
  );
  let result = init('start-instance', INSTANCE);
  assert.equal(result.status, 0, result.output);
  const pid = readPid(join(chrootRunDir, 'saslauthd.pid'))!;
  assert.equal(exeOf(pid), SBIN_SASLAUTHD);
  const stat = statSync(chrootRunDir);
  assert.equal(stat.mode & 0o7777, 0o750, 'the statoverride mode, not 0710');
  assert.equal(stat.gid, gid('sasl'));
  assert.equal(testsaslauthd(USER, PASSWORD, 'smtp', join(chrootRunDir, 'mux')).stdout.trim(), '0: OK "Success."');
  assert.equal(daemonProcesses().primaries.length, 2, 'the default daemon and this instance');
  result = init('stop-instance', INSTANCE);
  assert.equal(result.status, 0, result.output);
  await eventually(() => !isRunning(pid), 'the instance stops');
  assert.ok(isRunning(readPid(PID_FILE)!), 'the default instance still runs');
  rmSync(`/etc/default/${INSTANCE}`);
});

test('systemd ExecStart helper: reads the defaults file like the init script, honours the statoverride, READY=1 once listening', { skip }, async () => {
  // The arguments, from the same variables the init script uses.
  const defaults = join(scratch, 'defaults');
  mkdirSync(defaults);
  writeFileSync(join(defaults, 'saslauthd'), 'MECHANISMS="pam"\nMECH_OPTIONS="opt"\nTHREADS=3\nOPTIONS="-c -m /var/run/x -r"\n');
  const env = { ...process.env, SASLAUTHD_DEFAULTS_DIR: defaults };
  let result = run(HELPER, ['print', 'saslauthd'], env);
  assert.equal(result.stdout, ['-f', '-a', 'pam', '-O', 'opt', '-c', '-m', '/var/run/x', '-r', '-n', '3', ''].join('\n'));
  result = run(HELPER, ['check', 'saslauthd'], env);
  assert.equal(result.status, 1, 'START is not yes: the unit is skipped (ExecCondition)');
  assert.match(result.stderr, /set START=yes/);
  writeFileSync(join(defaults, 'saslauthd-bad'), 'START=yes\nMECHANISMS="pam"\nOPTIONS="-c"\n');
  assert.equal(run(HELPER, ['check', 'saslauthd-bad'], env).status, 0);
  result = run(HELPER, ['run', 'saslauthd-bad'], env);
  assert.equal(result.status, 1);
  assert.match(result.stderr, /No run directory defined/);
  writeFileSync(join(defaults, 'saslauthd-debug'), 'START=yes\nMECHANISMS="pam"\nOPTIONS="-d -m /tmp/x"\n');
  assert.match(run(HELPER, ['run', 'saslauthd-debug'], env).stderr, /debug option/);
  assert.equal(run(HELPER, ['check', '../passwd'], env).status, 1);

  // Run the instance as systemd would: foreground, NOTIFY_SOCKET, stderr lines with <N>.
  writeFileSync(join(defaults, INSTANCE), `START=yes\nMECHANISMS="pam"\nTHREADS=1\nOPTIONS="-m ${chrootRunDir}"\n`);
  rmSync(chrootRunDir, { recursive: true, force: true });
  const systemd = await DatagramListener.bind(join(scratch, 'notify'));
  try {
    const service = spawn(HELPER, ['run', INSTANCE], {
      env: { ...env, NOTIFY_SOCKET: systemd.path },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    service.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const ready = await systemd.waitFor((message) => message.includes('READY=1'), 20_000);
    assert.ok(ready.includes(`MAINPID=${service.pid}`), 'the helper execs the daemon: MAINPID is the unit main process');
    assert.equal(exeOf(service.pid!), SBIN_SASLAUTHD);
    assert.ok(existsSync(join(chrootRunDir, 'mux')), 'the socket listens when READY=1 arrives');
    assert.equal(statSync(chrootRunDir).mode & 0o7777, 0o750, 'the statoverride mode');
    assert.equal(testsaslauthd(USER, 'Wrong-Deb-Pass', 'smtp', join(chrootRunDir, 'mux')).stdout.trim(), '0: NO "authentication failed"');
    await eventually(() => stderr.includes(`<6>auth failure: [user=${USER}]`), 'the failure on stderr with its priority (for journald)');
    service.kill('SIGTERM');
    await systemd.waitFor((message) => message.includes('STOPPING=1'));
    const code = await new Promise((resolve) => service.on('exit', resolve));
    assert.equal(code, 0);
  } finally {
    systemd.close();
  }
});

test('systemd units pass systemd-analyze verify; the generator makes each instance file part of saslauthd.service', { skip }, () => {
  const units = join(scratch, 'units');
  mkdirSync(units);
  copyFileSync('/lib/systemd/system/saslauthd@.service', join(units, `saslauthd@${INSTANCE}.service`));
  for (const unit of ['/lib/systemd/system/saslauthd.service', '/lib/systemd/system/saslauthd.socket', join(units, `saslauthd@${INSTANCE}.service`)]) {
    const result = run('systemd-analyze', ['verify', unit]);
    assert.equal(result.status, 0, `${unit}: ${result.stderr}`);
    assert.equal(result.stderr.trim(), '', `${unit}: no warnings`);
  }
  const unit = readFileSync('/lib/systemd/system/saslauthd.service', 'latin1');
  for (const line of ['Type=notify', 'SyslogIdentifier=saslauthd', 'SyslogFacility=auth', 'KillMode=mixed', 'ExecStart=/usr/lib/saslauthd-ts/saslauthd-service run saslauthd']) {
    assert.ok(unit.split('\n').includes(line), `saslauthd.service has ${line}`);
  }

  const defaults = join(scratch, 'generator-defaults');
  mkdirSync(defaults);
  for (const name of ['saslauthd', 'saslauthd-postfix', 'saslauthd_other', 'saslauthd.dpkg-old', 'saslauthd-x~']) writeFileSync(join(defaults, name), '');
  const out = join(scratch, 'generator-out');
  mkdirSync(out);
  const result = run('/lib/systemd/system-generators/saslauthd-ts-generator', [out, out, out], { ...process.env, SASLAUTHD_DEFAULTS_DIR: defaults });
  assert.equal(result.status, 0, result.stderr);
  const wants = join(out, 'saslauthd.service.wants');
  assert.deepEqual(readdirSync(wants).sort(), ['saslauthd@saslauthd-postfix.service', 'saslauthd@saslauthd_other.service']);
  assert.equal(readlinkSync(join(wants, 'saslauthd@saslauthd-postfix.service')), '/lib/systemd/system/saslauthd@.service');
});

test('removing the package gives the C daemon back, running and answering', { skip }, async () => {
  const ours = readPid(PID_FILE)!;
  assert.ok(isRunning(ours));
  purge();
  await eventually(() => !isRunning(ours), 'our daemon was stopped by the prerm');
  assert.equal(run('dpkg-divert', ['--list', '*saslauthd*']).stdout.trim(), '', 'no diversion left');
  assert.ok(!existsSync('/usr/sbin/saslauthd.cyrus'));
  assert.ok(!isOurs(SBIN_SASLAUTHD), '/usr/sbin/saslauthd is the C daemon again');
  assert.match(run(SBIN_SASLAUTHD, ['-v']).stderr, /authentication mechanisms: sasldb getpwent/);
  assert.ok(existsSync('/usr/share/man/man8/saslauthd.8.gz') && !existsSync('/usr/share/man/man8/saslauthd.cyrus.8.gz'));
  assert.ok(!existsSync('/lib/systemd/system/saslauthd.service'));
  const cPid = readPid(PID_FILE);
  assert.ok(cPid !== undefined && cPid !== ours, 'the postrm started the C daemon');
  assert.equal(exeOf(cPid), SBIN_SASLAUTHD);
  assert.equal(testsaslauthd(USER, PASSWORD, 'imap').stdout.trim(), '0: OK "Success."');
  const status = init('status');
  assert.equal(status.status, 0, status.output);
  const stop = init('stop');
  assert.equal(stop.status, 0, stop.output);
  await eventually(() => !isRunning(cPid), 'the init script stops the C daemon');
});
