/**
 * The package's units under a real systemd (root; CI has no systemd as PID 1): systemd runs
 * as PID 1 of a private PID and mount namespace, with its own /run, /dev and /proc and a
 * copy of /etc/default, booted to an empty target. There: `systemctl start|status|reload|
 * restart|stop saslauthd` on the installed package, Type=notify readiness, START=yes via
 * ExecCondition=, an /etc/default/saslauthd-NAME instance started and stopped with
 * saslauthd.service, and journald storing the daemon's lines with identifier saslauthd and
 * facility auth — once each — and forwarding them to syslog in the original's text.
 *
 * The units get DefaultDependencies=no (a drop-in under the namespace's /run): the default
 * dependencies would pull sysinit.target, whose units (tmpfiles, udev, …) must not run on a
 * machine that is not theirs. Everything ends with the namespace (SIGKILL to its PID 1);
 * the cgroups that systemd created are removed.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readdirSync, rmSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PRIVATE_DEV_SH } from './helpers/private-dev-log.js';
import { debPackage, PACKAGE } from './helpers/debian-package.js';
import { DatagramListener } from './helpers/dgram-listener.js';
import { addUser, isKnown, removeUser, run, runWithServicesAllowed } from './helpers/installed-daemon.js';
import { childPids, eventually } from './helpers/processes.js';

const isRoot = process.getuid?.() === 0;
const skip = !isRoot && 'needs root (namespaces, installs the package)';
const USER = `stsd${process.pid}`;
const PASSWORD = 'Systemd-Live-Pass-8';
const INSTANCE = 'saslauthd-ststest';
const COLUMN = `${' '.repeat(16)}: `;
const CGROUP_ROOT = '/sys/fs/cgroup';

const BOOT = `
set -e
scratch=$0
mount -t proc proc /proc
mount --bind "$scratch/etc-default" /etc/default
realdev="$scratch/realdev"
${PRIVATE_DEV_SH}mount -t tmpfs -o mode=0755 tmpfs /run
mkdir -p /run/systemd/system/saslauthd.service.d /run/systemd/system/saslauthd@.service.d \\
  /run/systemd/system/saslauthd.socket.d /run/systemd/journald.conf.d /run/systemd/journal
printf '[Unit]\\nDescription=saslauthd-ts test boot\\n' >/run/systemd/system/sts-test.target
printf '[Unit]\\nDefaultDependencies=no\\n' >/run/systemd/system/saslauthd.service.d/test.conf
printf '[Unit]\\nDefaultDependencies=no\\n' >/run/systemd/system/saslauthd@.service.d/test.conf
printf '[Unit]\\nDefaultDependencies=no\\n' >/run/systemd/system/saslauthd.socket.d/test.conf
printf '[Journal]\\nStorage=volatile\\nForwardToSyslog=yes\\n' >/run/systemd/journald.conf.d/test.conf
exec /lib/systemd/systemd --system --unit=sts-test.target --show-status=false
`;

let scratch: string;
let boot: ChildProcess;
let systemdPid: number;
let syslog: DatagramListener;
let cgroupsBefore: Set<string>;

function topCgroups(): string[] {
  const found: string[] = [];
  for (const hierarchy of readdirSync(CGROUP_ROOT)) {
    try {
      for (const entry of readdirSync(join(CGROUP_ROOT, hierarchy), { withFileTypes: true })) {
        if (entry.isDirectory()) found.push(join(CGROUP_ROOT, hierarchy, entry.name));
      }
    } catch {
      // not a hierarchy
    }
  }
  return found;
}

function removeCgroup(path: string): void {
  for (const entry of readdirSync(path, { withFileTypes: true })) if (entry.isDirectory()) removeCgroup(join(path, entry.name));
  rmdirSync(path);
}

/** Runs a command inside the namespace (its mounts and pids). */
function inside(command: string, ...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const result = spawnSync('nsenter', ['-t', String(systemdPid), '-m', '-p', command, ...args], { encoding: 'utf8', timeout: 90_000 });
  return { status: result.status, stdout: result.stdout ?? '', stderr: result.stderr ?? '' };
}

function systemctl(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  return inside('systemctl', '--no-pager', ...args);
}

function show(unit: string): Record<string, string> {
  const out = systemctl('show', unit, '-p', 'ActiveState,SubState,MainPID,StatusText,Result,Type,NotifyAccess').stdout;
  return Object.fromEntries(out.trim().split('\n').map((line) => [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1)]));
}

function defaults(name: string, text: string): void {
  writeFileSync(join(scratch, 'etc-default', name), text);
}

before(async () => {
  if (!isRoot) return;
  scratch = mkdtempSync('/tmp/sts-systemd-'); // not under /run: the namespace mounts its own
  if (isKnown(PACKAGE)) runWithServicesAllowed(scratch, 'apt-get', ['purge', '-y', PACKAGE]);
  const install = run('apt-get', ['install', '-y', '--no-install-recommends', debPackage()]);
  assert.equal(install.status, 0, install.stdout + install.stderr);
  addUser(USER, PASSWORD);
  cpSync('/etc/default', join(scratch, 'etc-default'), { recursive: true });
  defaults('saslauthd', 'NAME="saslauthd"\nSTART=yes\nMECHANISMS="pam"\nTHREADS=2\nOPTIONS="-c -m /var/run/saslauthd"\n');
  rmSync(join(scratch, 'etc-default', INSTANCE), { force: true });

  cgroupsBefore = new Set(topCgroups());
  boot = spawn('unshare', ['--pid', '--fork', '--mount', '--propagation', 'private', 'sh', '-c', BOOT, scratch], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let bootErrors = '';
  boot.stderr!.on('data', (chunk: Buffer) => (bootErrors += chunk.toString()));
  await eventually(() => childPids(boot.pid!).length > 0 || boot.exitCode !== null, 'unshare forks systemd');
  assert.equal(boot.exitCode, null, bootErrors);
  systemdPid = childPids(boot.pid!)[0]!;
  await eventually(() => /^(running|degraded)$/m.test(systemctl('is-system-running').stdout), `systemd boots: ${bootErrors}`, 60_000);

  // journald, forwarding to a syslog socket this test listens on
  syslog = await DatagramListener.bind('/run/systemd/journal/syslog', ['nsenter', '-t', String(systemdPid), '-m']);
  const journald = systemctl('start', 'systemd-journald.socket', 'systemd-journald.service');
  assert.equal(journald.status, 0, journald.stderr);
});

after(() => {
  if (!isRoot) return;
  syslog?.close();
  if (systemdPid) {
    try {
      process.kill(systemdPid, 'SIGKILL'); // PID 1 of the namespace: everything in it ends
    } catch {
      // gone
    }
  }
  spawnSync('sh', ['-c', 'sleep 1']);
  for (const path of topCgroups()) {
    if (cgroupsBefore?.has(path)) continue;
    try {
      removeCgroup(path);
    } catch {
      // still in use by something that is not ours: leave it
    }
  }
  if (isKnown(PACKAGE)) runWithServicesAllowed(scratch, 'apt-get', ['purge', '-y', PACKAGE]);
  removeUser(USER);
  rmSync(scratch, { recursive: true, force: true });
});

test('systemctl start: active (Type=notify) only with the socket listening; status; the daemon answers', { skip }, () => {
  const started = systemctl('start', 'saslauthd');
  assert.equal(started.status, 0, started.stderr);
  const state = show('saslauthd');
  assert.equal(state['Type'], 'notify');
  assert.equal(state['ActiveState'], 'active');
  assert.equal(state['SubState'], 'running');
  assert.equal(state['StatusText'], 'listening on socket: /var/run/saslauthd/mux', 'the STATUS= sent with READY=1');
  const mainPid = state['MainPID']!;
  assert.equal(inside('readlink', `/proc/${mainPid}/exe`).stdout.trim(), '/usr/sbin/saslauthd');
  assert.equal(inside('cat', '/var/run/saslauthd/saslauthd.pid').stdout, `${mainPid}\n`);
  assert.equal(inside('stat', '-c', '%U:%G %a', '/var/run/saslauthd').stdout.trim(), 'root:sasl 710');
  const status = systemctl('status', 'saslauthd');
  assert.equal(status.status, 0, status.stdout);
  assert.match(status.stdout, /Active: active \(running\)/);
  assert.equal(inside('testsaslauthd', '-u', USER, '-p', PASSWORD, '-s', 'smtp').stdout.trim(), '0: OK "Success."');
});

test('journald stores each line once as saslauthd, facility auth, in the original text; syslog gets the same', { skip }, async () => {
  assert.equal(inside('testsaslauthd', '-u', USER, '-p', 'Wrong-Live-Pass', '-s', 'smtp').stdout.trim(), '0: NO "authentication failed"');
  const expected = `auth failure: [user=${USER}] [service=smtp] [realm=] [mech=pam] [reason=PAM auth error]`;
  let entries: Record<string, string>[] = [];
  await eventually(() => {
    const out = inside('journalctl', '-u', 'saslauthd', '-o', 'json', '--no-pager').stdout;
    entries = out.trim().split('\n').filter((line) => line !== '').map((line) => JSON.parse(line) as Record<string, string>);
    return entries.some((entry) => entry['MESSAGE']?.includes(expected));
  }, 'the auth failure line in the journal');
  const failures = entries.filter((entry) => entry['MESSAGE']?.includes(expected));
  assert.equal(failures.length, 1, 'once: not a second copy through /dev/log');
  assert.equal(failures[0]!['MESSAGE'], `${COLUMN}${expected}`);
  assert.equal(failures[0]!['SYSLOG_IDENTIFIER'], 'saslauthd');
  assert.equal(failures[0]!['SYSLOG_FACILITY'], '4', 'auth');
  assert.equal(failures[0]!['PRIORITY'], '6', 'info');
  const forwarded = await syslog.waitFor((message) => message.includes(expected));
  assert.match(forwarded, new RegExp(`^<38>\\w{3} [ \\d]\\d \\d\\d:\\d\\d:\\d\\d saslauthd\\[\\d+\\]: ${COLUMN}auth failure: \\[user=${USER}\\]`));
  assert.equal(syslog.messages.filter((message) => message.includes(expected)).length, 1);
  for (const message of syslog.messages) assert.ok(!message.includes(PASSWORD) && !message.includes('Wrong-Live-Pass'));
});

test('systemctl reload keeps the daemon (SIGHUP); restart replaces it; stop stops it and cleans up', { skip }, () => {
  const before = show('saslauthd')['MainPID'];
  assert.equal(systemctl('reload', 'saslauthd').status, 0);
  assert.equal(show('saslauthd')['MainPID'], before);
  assert.equal(show('saslauthd')['ActiveState'], 'active');

  assert.equal(systemctl('restart', 'saslauthd').status, 0);
  const restarted = show('saslauthd');
  assert.notEqual(restarted['MainPID'], before);
  assert.equal(restarted['ActiveState'], 'active');
  assert.equal(inside('testsaslauthd', '-u', USER, '-p', PASSWORD, '-s', 'imap').stdout.trim(), '0: OK "Success."');

  assert.equal(systemctl('stop', 'saslauthd').status, 0);
  const stopped = show('saslauthd');
  assert.equal(stopped['ActiveState'], 'inactive');
  assert.equal(stopped['Result'], 'success', 'SIGTERM: clean exit 0');
  assert.equal(inside('test', '-e', '/var/run/saslauthd/mux').status, 1, 'the socket is removed');
  assert.equal(inside('test', '-e', '/var/run/saslauthd/saslauthd.pid').status, 1);
  assert.equal(systemctl('status', 'saslauthd').status, 3);
  assert.equal(inside('pgrep', '-c', '-x', 'saslauthd').stdout.trim(), '0', 'no primary or worker left');
});

test('START=yes is required (ExecCondition=); instances start and stop with saslauthd.service', { skip }, async () => {
  defaults('saslauthd', 'NAME="saslauthd"\nMECHANISMS="pam"\nOPTIONS="-c -m /var/run/saslauthd"\n');
  defaults(INSTANCE, `NAME="ststest"\nSTART=yes\nMECHANISMS="pam"\nTHREADS=1\nOPTIONS="-m /var/run/${INSTANCE}"\n`);
  assert.equal(systemctl('daemon-reload').status, 0); // runs the generator
  assert.match(inside('ls', '/run/systemd/generator/saslauthd.service.wants').stdout, new RegExp(`saslauthd@${INSTANCE}\\.service`));

  assert.equal(systemctl('start', 'saslauthd').status, 0);
  assert.equal(show('saslauthd')['ActiveState'], 'inactive', 'skipped: START is not yes');
  assert.equal(show('saslauthd')['MainPID'], '0');
  // systemctl waits for saslauthd.service's job; the instance it pulls in comes up on its own.
  await eventually(() => show(`saslauthd@${INSTANCE}`)['ActiveState'] !== 'activating', 'the instance finishes starting', 20_000);
  const instance = show(`saslauthd@${INSTANCE}`);
  assert.equal(instance['ActiveState'], 'active', 'the instance was started with saslauthd.service');
  assert.equal(instance['StatusText'], `listening on socket: /var/run/${INSTANCE}/mux`);
  assert.equal(
    inside('testsaslauthd', '-u', USER, '-p', PASSWORD, '-s', 'smtp', '-f', `/var/run/${INSTANCE}/mux`).stdout.trim(),
    '0: OK "Success."',
  );

  assert.equal(systemctl('stop', 'saslauthd').status, 0);
  // As with start, systemctl waits for saslauthd.service's job only.
  await eventually(() => show(`saslauthd@${INSTANCE}`)['ActiveState'] === 'inactive', 'PartOf=: the instance stops with saslauthd.service', 20_000);
  assert.equal(show(`saslauthd@${INSTANCE}`)['Result'], 'success');
});

test('NODE_OPTIONS in /etc/default/saslauthd (even exported) never reaches the daemon', { skip }, async () => {
  const payload = join(scratch, 'node-options.js');
  const mark = join(scratch, 'node-options-ran');
  writeFileSync(payload, `require('fs').writeFileSync(${JSON.stringify(mark)}, String(process.pid));\n`);
  // Control: the payload runs where Node reads NODE_OPTIONS (plain node)…
  const control = spawnSync(process.execPath, ['-e', '0'], { env: { ...process.env, NODE_OPTIONS: `--require ${payload}` } });
  assert.equal(control.error, undefined);
  assert.ok(existsSync(mark), 'the payload runs in a node started with NODE_OPTIONS');
  rmSync(mark);
  // …but not in the single executable, which drops NODE_* before Node reads them
  // (debian/node-env-scrub.c): whoever starts it, with whatever environment.
  const direct = spawnSync('/usr/sbin/saslauthd', ['-v'], { env: { ...process.env, NODE_OPTIONS: `--require ${payload}` } });
  assert.equal(direct.error, undefined);
  assert.ok(!existsSync(mark), 'the payload did not run in /usr/sbin/saslauthd');
  defaults(
    'saslauthd',
    `NAME="saslauthd"\nSTART=yes\nMECHANISMS="pam"\nTHREADS=1\nOPTIONS="-c -m /var/run/saslauthd"\nexport NODE_OPTIONS="--require ${payload}"\nNODE_DEBUG=net\n`,
  );
  assert.equal(systemctl('restart', 'saslauthd').status, 0);
  assert.equal(show('saslauthd')['ActiveState'], 'active');
  assert.equal(inside('testsaslauthd', '-u', USER, '-p', PASSWORD, '-s', 'smtp').stdout.trim(), '0: OK "Success."');
  assert.ok(!existsSync(mark), 'no process of the service ran the payload');
  const pids = inside('pgrep', '-x', 'saslauthd').stdout.trim().split('\n');
  assert.ok(pids.length >= 2, 'the daemon and its worker');
  for (const pid of pids) {
    const environ = inside('cat', `/proc/${pid}/environ`).stdout.split('\0');
    assert.deepEqual(environ.filter((entry) => entry.startsWith('NODE_')), [], `no NODE_* in process ${pid}`);
  }
  assert.equal(systemctl('stop', 'saslauthd').status, 0);
});

test('saslauthd.socket (Debian 12 too): the first client starts the daemon; restarts lose no client', { skip }, async () => {
  defaults('saslauthd', 'NAME="saslauthd"\nSTART=yes\nMECHANISMS="pam"\nTHREADS=1\nOPTIONS="-c -m /var/run/saslauthd"\n');
  assert.equal(systemctl('daemon-reload').status, 0);
  assert.equal(systemctl('stop', 'saslauthd').status, 0);
  const started = systemctl('start', 'saslauthd.socket');
  assert.equal(started.status, 0, started.stderr);
  assert.equal(show('saslauthd')['ActiveState'], 'inactive', 'nothing started the daemon yet');
  assert.equal(inside('stat', '-c', '%U:%G %a', '/var/run/saslauthd').stdout.trim(), 'root:sasl 710');
  assert.equal(inside('testsaslauthd', '-u', USER, '-p', PASSWORD, '-s', 'smtp').stdout.trim(), '0: OK "Success."', 'the first client waits for the daemon');
  assert.equal(show('saslauthd')['ActiveState'], 'active');
  const inode = inside('stat', '-c', '%i', '/var/run/saslauthd/mux').stdout;
  // Clients during restarts wait in the socket's backlog.
  const clients = inside('sh', '-c', `
    for i in 1 2 3 4 5 6 7 8 9 10; do testsaslauthd -u ${USER} -p ${PASSWORD} -s smtp; sleep 0.1; done >/run/sts-clients.log 2>&1 &
    for i in 1 2 3; do systemctl restart saslauthd; sleep 0.2; done; wait; cat /run/sts-clients.log`);
  const replies = clients.stdout.trim().split('\n');
  assert.equal(replies.length, 10, clients.stdout + clients.stderr);
  assert.deepEqual(replies.filter((line) => line !== '0: OK "Success."'), [], 'every client answered');
  assert.equal(inside('stat', '-c', '%i', '/var/run/saslauthd/mux').stdout, inode, 'one socket throughout');
  assert.equal(systemctl('stop', 'saslauthd').status, 0);
  assert.equal(inside('test', '-S', '/var/run/saslauthd/mux').status, 0, 'the daemon leaves systemd’s socket');
  assert.equal(systemctl('stop', 'saslauthd.socket').status, 0);
  assert.equal(inside('test', '-e', '/var/run/saslauthd/mux').status, 1, 'RemoveOnStop=');
});
