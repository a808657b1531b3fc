/**
 * Syslog as the original logs (root: private mount namespace): ident saslauthd with the pid,
 * facility auth, the empty 16-column function field, and `auth failure:` lines where
 * fail2ban reads them — in daemon mode and with -d (which logs to stderr too). Under systemd
 * (stderr is the journal, $JOURNAL_STREAM) text lines go to stderr only, once; JSON lines go
 * to stderr with their priority, and the text to syslog as well.
 * The failures come from the real PAM stack: an unknown user falls to pam_unix via "other".
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, fstatSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { DatagramListener } from './helpers/dgram-listener.js';
import { SASLAUTHD_JS } from './helpers/paths.js';
import { privateDevLog } from './helpers/private-dev-log.js';
import { childPids, eventually, isAlive } from './helpers/processes.js';
import { ask } from './helpers/raw-client.js';

const isRoot = process.getuid?.() === 0;
const skip = !isRoot && 'needs root (mount namespace)';
const PASSWORD = 'Syslog-Secret-Pass-7';
const USER = `nosuchuser${process.pid}`;

let scratch: string;
let listener: DatagramListener;
const started: ChildProcess[] = [];

before(async () => {
  if (!isRoot) return;
  scratch = mkdtempSync('/tmp/sts-syslog-');
  listener = await DatagramListener.bind(join(scratch, 'log'));
});

after(async () => {
  if (!isRoot) return;
  for (const child of started) if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
  listener?.close();
  await new Promise((resolve) => setTimeout(resolve, 200));
  rmSync(scratch, { recursive: true, force: true });
});

/** Spawns `node saslauthd.js ARGS` with a private /dev/log; resolves when the command exits or the socket listens. */
function run(args: string[], options: { stderr?: number; env?: Record<string, string> } = {}): ChildProcess {
  const wrap = privateDevLog(listener.path, mkdtempSync(join(scratch, 'ns-')));
  const [command, ...prefix] = wrap.prefix;
  const child = spawn(command!, [...prefix, process.execPath, SASLAUTHD_JS, ...args], {
    env: { ...process.env, ...wrap.env, ...options.env },
    stdio: ['ignore', 'ignore', options.stderr ?? 'pipe'],
  });
  started.push(child);
  return child;
}

function exitOf(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolve) => child.on('exit', (code) => resolve(code)));
}

/** A syslog datagram as glibc sends it: <PRI>Mmm dd hh:mm:ss saslauthd[PID]: TEXT */
const SYSLOG_LINE = /^<(\d+)>\w{3} [ \d]\d \d\d:\d\d:\d\d saslauthd\[(\d+)\]: (.*)$/s;
/** The original's text column: `%-16s: %s` with an empty name. */
const COLUMN = `${' '.repeat(16)}: `;

function parse(message: string): { priority: number; pid: number; text: string } | undefined {
  const match = SYSLOG_LINE.exec(message);
  if (!match) return undefined;
  return { priority: Number(match[1]), pid: Number(match[2]), text: match[3]! };
}

function linesOf(pids: readonly number[]): { priority: number; pid: number; text: string }[] {
  return listener.messages.map(parse).filter((line) => line !== undefined && pids.includes(line.pid)) as {
    priority: number;
    pid: number;
    text: string;
  }[];
}

test('daemon mode: lines reach syslog as ident saslauthd[pid], facility auth, the original text column', { skip }, async () => {
  const directory = mkdtempSync(join(scratch, 'run-'));
  const launcher = run(['-a', 'pam', '-m', directory, '-n', '1']);
  assert.equal(await exitOf(launcher), 0, 'the launcher exits 0 once the daemon listens');
  const pid = Number(readFileSync(join(directory, 'saslauthd.pid'), 'latin1'));
  const workers = childPids(pid);
  assert.ok(workers.length >= 1);

  const listening = await listener.waitFor((message) => parse(message)?.pid === pid && message.includes('listening on socket'));
  assert.deepEqual(parse(listening), { priority: 4 * 8 + 6, pid, text: `${COLUMN}listening on socket: ${directory}/mux` });

  assert.equal(await ask(join(directory, 'mux'), USER, PASSWORD, 'sts-syslog', ''), 'NO PAM auth error');
  const failure = await listener.waitFor((message) => message.includes(`auth failure: [user=${USER}]`));
  const line = parse(failure);
  assert.ok(line, `not a syslog line from saslauthd: ${JSON.stringify(failure)}`);
  assert.equal(line.priority, 38, 'auth.info: facility auth (4) * 8 + info (6)');
  assert.ok([pid, ...workers].includes(line.pid), `pid ${line.pid} is the daemon's`);
  assert.equal(
    line.text,
    `${COLUMN}auth failure: [user=${USER}] [service=sts-syslog] [realm=] [mech=pam] [reason=PAM auth error]`,
  );
  // Without -d/-V, as the original: auth_pam's DEBUG line still reaches syslog, at auth.debug,
  // from the worker that ran PAM; no other debug line does.
  const pamDebug = parse(await listener.waitFor((message) => message.includes('DEBUG: auth_pam: pam_authenticate failed')));
  assert.deepEqual(pamDebug, {
    priority: 4 * 8 + 7,
    pid: pamDebug!.pid,
    text: `${COLUMN}DEBUG: auth_pam: pam_authenticate failed: Authentication failure`,
  });
  assert.ok(workers.includes(pamDebug!.pid), 'written by a worker');
  assert.equal(linesOf([pid, ...workers]).filter((entry) => entry.priority === 4 * 8 + 7 && !entry.text.includes('DEBUG: auth_pam')).length, 0);

  process.kill(pid, 'SIGTERM');
  await eventually(() => !isAlive(pid), 'the daemon exits on SIGTERM');
  await listener.waitFor((message) => parse(message)?.pid === pid && message.endsWith('master exited: 0'));
  // fail2ban's saslauthd filter: "[aA]uthentication failure|auth failure: ... [user=<F-USER>...]"
  assert.match(failure, /saslauthd\[\d+\]: {17}: auth failure: \[user=\S+\] \[service=\S+\] \[realm=\S*\]/);
});

test('-d: lines go to stderr as saslauthd[PID] :msg and to syslog too (as the original)', { skip }, async () => {
  const directory = mkdtempSync(join(scratch, 'run-'));
  const daemon = run(['-d', '-a', 'pam', '-m', directory, '-n', '1']);
  let stderr = '';
  daemon.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString('latin1')));
  await eventually(() => stderr.includes('listening on socket'), 'the daemon listens', 15_000);
  const pid = Number(readFileSync(join(directory, 'saslauthd.pid'), 'latin1'));
  const user = `${USER}d`;
  assert.equal(await ask(join(directory, 'mux'), user, PASSWORD, 'sts-syslog', ''), 'NO PAM auth error');
  await eventually(() => stderr.includes(`auth failure: [user=${user}]`), 'the failure on stderr');
  assert.match(stderr, new RegExp(`saslauthd\\[${pid}\\] :auth failure: \\[user=${user}\\]`));
  const failure = parse(await listener.waitFor((message) => message.includes(`auth failure: [user=${user}]`)))!;
  assert.equal(failure.priority, 38);
  assert.equal(failure.pid, pid);
  // -d is verbose: debug lines reach syslog as auth.debug
  const debug = linesOf([pid]).find((line) => line.text.startsWith(`${COLUMN}run_path`));
  assert.equal(debug?.priority, 4 * 8 + 7, 'auth.debug');
  daemon.kill('SIGTERM');
  assert.equal(await exitOf(daemon), 0);
});

test('stderr is the journal ($JOURNAL_STREAM): the <N> lines on stderr only, no second copy in syslog', { skip }, async () => {
  const directory = mkdtempSync(join(scratch, 'run-'));
  const errorFile = join(scratch, 'journal-stream');
  const fd = openSync(errorFile, 'w');
  const stat = fstatSync(fd);
  const daemon = run(['-f', '-a', 'pam', '-m', directory, '-n', '1'], {
    stderr: fd,
    env: { JOURNAL_STREAM: `${stat.dev}:${stat.ino}` },
  });
  closeSync(fd);
  const stderr = (): string => readFileSync(errorFile, 'latin1');
  await eventually(() => stderr().includes('listening on socket'), 'the daemon listens', 15_000);
  const pid = Number(readFileSync(join(directory, 'saslauthd.pid'), 'latin1'));
  const user = `${USER}j`;
  assert.equal(await ask(join(directory, 'mux'), user, PASSWORD, 'sts-syslog', ''), 'NO PAM auth error');
  await eventually(
    () => stderr().includes(`<6>${COLUMN}auth failure: [user=${user}]`),
    'the failure on stderr with its priority and the syslog text column (journald stores it as the syslog line)',
  );
  await new Promise((resolve) => setTimeout(resolve, 500)); // a syslog copy would have been sent with the stderr line
  const ours = [pid, ...childPids(pid)];
  assert.deepEqual(
    linesOf(ours).filter((line) => line.text.startsWith(COLUMN)),
    [],
    'no saslauthd line went to /dev/log',
  );
  assert.equal(listener.messages.filter((message) => message.includes(user)).length, 0);
  daemon.kill('SIGTERM');
  assert.equal(await exitOf(daemon), 0);
});

test('no password reached syslog', { skip }, () => {
  assert.ok(listener.messages.length > 0);
  for (const message of listener.messages) assert.ok(!message.includes(PASSWORD), `password in ${JSON.stringify(message)}`);
});

test('--log-format json under the journal: <N>-prefixed JSON on stderr, and the original text still in syslog (fail2ban)', { skip }, async () => {
  const directory = mkdtempSync(join(scratch, 'run-'));
  const errorFile = join(scratch, 'journal-stream-json');
  const fd = openSync(errorFile, 'w');
  const stat = fstatSync(fd);
  const daemon = run(['-f', '-a', 'pam', '-m', directory, '-n', '1', '--log-format', 'json'], {
    stderr: fd,
    env: { JOURNAL_STREAM: `${stat.dev}:${stat.ino}` },
  });
  closeSync(fd);
  const stderr = (): string => readFileSync(errorFile, 'latin1');
  await eventually(() => stderr().includes('listening on socket'), 'the daemon listens', 15_000);
  const user = `${USER}k`;
  assert.equal(await ask(join(directory, 'mux'), user, PASSWORD, 'sts-syslog', ''), 'NO PAM auth error');
  await eventually(() => stderr().includes(`"user":"${user}"`), 'the JSON failure line on stderr');
  const jsonLine = stderr().split('\n').find((line) => line.includes(`"user":"${user}"`) && line.includes('auth failure'))!;
  assert.match(jsonLine, /^<6>\{/, 'journald gets the priority');
  assert.equal((JSON.parse(jsonLine.slice(3)) as { event: string }).event, 'auth failure');
  const text = parse(await listener.waitFor((message) => message.includes(`auth failure: [user=${user}]`)))!;
  assert.equal(text.priority, 38);
  assert.equal(text.text, `${COLUMN}auth failure: [user=${user}] [service=sts-syslog] [realm=] [mech=pam] [reason=PAM auth error]`);
  daemon.kill('SIGTERM');
  assert.equal(await exitOf(daemon), 0);
});
