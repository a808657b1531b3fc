/**
 * One daemon per run directory, with a lock the kernel holds for the daemon's life
 * (flock on saslauthd.pid.lock): an old lock mtime, a crash, ten starts at once, and a
 * clean stop. The daemons here use the real libpam; a refusal for an unknown user is
 * enough to show which one answers.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { writeFileSync } from 'node:fs';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, utimesSync } from 'node:fs';
import { join } from 'node:path';
import { Daemon } from './helpers/daemon.js';
import { SASLAUTHD_JS } from './helpers/paths.js';
import { eventually, isAlive } from './helpers/processes.js';
import { ask } from './helpers/raw-client.js';

const USER = `nolockuser${process.pid}`;
const answers = async (socket: string): Promise<boolean> =>
  (await ask(socket, USER, 'Lock-test-pass-1', 'sts-lock', '').catch(() => '')) === 'NO PAM auth error';

test('a lock file an hour old (clock step, stalled loop) does not make a second start take over or delete anything', async () => {
  const first = await Daemon.start({ args: ['-n', '1'] });
  try {
    const lock = join(first.runDirectory, 'saslauthd.pid.lock');
    const pidFile = join(first.runDirectory, 'saslauthd.pid');
    const anHourAgo = new Date(Date.now() - 3_600_000);
    utimesSync(lock, anHourAgo, anHourAgo);
    const second = await Daemon.startFailing({ args: ['-n', '1'], runDirectory: first.runDirectory });
    assert.equal(second.code, 2, second.output);
    assert.match(second.output, /Cannot start saslauthd\n.*Another instance of saslauthd is currently running/);
    assert.equal(readFileSync(pidFile, 'utf8'), `${first.pid}\n`, 'the pid file still names the running daemon');
    assert.equal(statSync(pidFile).mode & 0o777, 0o600);
    assert.ok(existsSync(lock), 'the lock file is still there');
    assert.ok(await answers(first.socket), 'the first daemon still serves');
  } finally {
    await first.dispose();
  }
});

test('daemon mode: a second start exits 2 and leaves the first one in charge', async () => {
  const runDirectory = mkdtempSync('/tmp/sts-');
  const launch = (): Promise<{ code: number | null; stderr: string }> =>
    new Promise((resolve) => {
      const child = spawn(process.execPath, [SASLAUTHD_JS, '-a', 'pam', '-n', '1', '-m', runDirectory], { stdio: ['ignore', 'ignore', 'pipe'] });
      let stderr = '';
      child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
      child.on('exit', (code) => resolve({ code, stderr }));
    });
  try {
    assert.equal((await launch()).code, 0);
    const pid = Number(readFileSync(join(runDirectory, 'saslauthd.pid'), 'utf8'));
    const second = await launch();
    assert.equal(second.code, 2);
    assert.equal(second.stderr, 'Cannot start saslauthd\nAnother instance of saslauthd is currently running\n');
    assert.equal(Number(readFileSync(join(runDirectory, 'saslauthd.pid'), 'utf8')), pid);
    assert.ok(await answers(join(runDirectory, 'mux')));
    process.kill(pid, 'SIGTERM');
    await eventually(() => !isAlive(pid), 'the daemon stopped');
    assert.deepEqual(readdirSync(runDirectory), [], 'a clean stop empties the run directory, lock included');
  } finally {
    rmSync(runDirectory, { recursive: true, force: true });
  }
});

test('ten daemons started at the same instant: exactly one serves, the others exit 2, the pid file names the one', async () => {
  const runDirectory = mkdtempSync('/tmp/sts-');
  const daemons = Array.from({ length: 10 }, () => Daemon.launch({ args: ['-n', '1'], runDirectory }));
  try {
    const outcomes = await Promise.all(
      daemons.map((daemon) =>
        Promise.race([
          daemon.waitForLog(/listening on socket/, 20_000).then(() => 'serving'),
          daemon.waitForExit(20_000).then((exit) => `exit ${exit.code}`),
        ]).catch(() => daemon.exited ? 'exited' : 'serving'),
      ),
    );
    const serving = daemons.filter((_, index) => outcomes[index] === 'serving');
    assert.equal(serving.length, 1, outcomes.join(','));
    assert.equal(outcomes.filter((outcome) => outcome === 'exit 2').length, 9, outcomes.join(','));
    assert.equal(readFileSync(join(runDirectory, 'saslauthd.pid'), 'utf8'), `${serving[0]!.pid}\n`);
    assert.ok(await answers(join(runDirectory, 'mux')));
    await serving[0]!.stop();
    assert.deepEqual(readdirSync(runDirectory), [], 'the run directory is empty after SIGTERM');
  } finally {
    for (const daemon of daemons) await daemon.dispose().catch(() => {});
    rmSync(runDirectory, { recursive: true, force: true });
  }
});

test('SIGKILL of the primary frees the lock at once: the next start serves, no stale-lock guessing', async () => {
  const first = await Daemon.start({ args: ['-n', '1'] });
  first.child.kill('SIGKILL');
  await first.waitForExit();
  const second = await Daemon.start({ args: ['-n', '1'], runDirectory: first.runDirectory });
  try {
    assert.doesNotMatch(second.logs, /stale/);
    assert.equal(readFileSync(join(first.runDirectory, 'saslauthd.pid'), 'utf8'), `${second.pid}\n`);
    assert.ok(await answers(second.socket));
  } finally {
    await second.dispose();
  }
});

test("the lock directory left by saslauthd-ts 0.1.0 (proper-lockfile) is replaced by the lock file", async () => {
  const runDirectory = mkdtempSync('/tmp/sts-');
  mkdirSync(join(runDirectory, 'saslauthd.pid.lock'));
  const daemon = await Daemon.start({ args: ['-n', '1'], runDirectory });
  try {
    assert.ok(statSync(join(runDirectory, 'saslauthd.pid.lock')).isFile());
    assert.ok(await answers(daemon.socket));
  } finally {
    await daemon.dispose();
  }
});

test('another daemon answering on the socket (the C one locks other files): exit 2, its pid file and socket untouched', async () => {
  const runDirectory = mkdtempSync('/tmp/sts-');
  const foreign = createServer((socket) => socket.end());
  await new Promise<void>((resolve) => foreign.listen(join(runDirectory, 'mux'), resolve));
  writeFileSync(join(runDirectory, 'saslauthd.pid'), '4242\n');
  try {
    const started = await Daemon.startFailing({ args: ['-n', '1'], runDirectory });
    assert.equal(started.code, 2, started.output);
    assert.match(started.output, /Another instance of saslauthd is currently running/);
    assert.equal(readFileSync(join(runDirectory, 'saslauthd.pid'), 'utf8'), '4242\n', 'the other daemon\'s pid file');
    assert.deepEqual(readdirSync(runDirectory).sort(), ['mux', 'saslauthd.pid'], 'nothing of ours left, nothing of theirs removed');
  } finally {
    await new Promise((resolve) => foreign.close(resolve));
    rmSync(runDirectory, { recursive: true, force: true });
  }
});
