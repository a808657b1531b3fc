/**
 * The process model with real processes: idle clients cannot starve the pool, a killed
 * worker is replaced and its client answered, deadlines, one instance per run directory,
 * clean shutdown, and the detaching launcher's exit status.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import type { Socket } from 'node:net';
import { Daemon } from './helpers/daemon.js';
import { PamFixture } from './helpers/pam-fixture.js';
import { PAM_EXEC_MODULE, PAM_FAILDELAY_MODULE, SASLAUTHD_JS } from './helpers/paths.js';
import { childPids, eventually, isAlive } from './helpers/processes.js';
import { ask, droppedByKill, exchange, idleConnection, replyFrame, request } from './helpers/raw-client.js';
import { assertNoSecretsLogged } from './helpers/secrets.js';

const PASSWORD = 'Process-model-1';
let pam: PamFixture;

before(() => {
  pam = new PamFixture([
    { name: 'good', password: PASSWORD, service: 'imap' },
    // one login per loaded client: a login that just failed is checked one request at a
    // time (login-scheduler.ts), so one login alone would keep only one worker busy
    { name: 'good2', password: PASSWORD, service: 'imap' },
    { name: 'good3', password: PASSWORD, service: 'imap' },
    { name: 'good4', password: PASSWORD, service: 'imap' },
  ]);
  // "slow" holds a worker for 300 ms per request; "hang" for 30 s
  pam.addService('slow', `auth required ${PAM_EXEC_MODULE} /bin/sleep 0.3\nauth required @MATRIX@\naccount required @PERMIT@\n`);
  pam.addService('hang', `auth required ${PAM_EXEC_MODULE} /bin/sleep 30\nauth required @MATRIX@\naccount required @PERMIT@\n`);
});

after(() => pam?.dispose());

describe('with -n 2', () => {
  let daemon: Daemon;
  before(async () => {
    daemon = await Daemon.start({ env: pam.env, args: ['-n', '2', '--read-timeout', '60000'] });
  });
  after(async () => daemon?.dispose());

  test('twenty clients that connect and send nothing do not delay a real request', async () => {
    const idle: Socket[] = [];
    for (let i = 0; i < 20; i++) idle.push(await idleConnection(daemon.socket));
    try {
      for (let i = 0; i < 5; i++) assert.equal(await ask(daemon.socket, 'good', PASSWORD, 'imap', ''), 'OK');
    } finally {
      for (const socket of idle) socket.destroy();
    }
  });

  test('SIGKILL of a worker under load: every client gets a reply, the pool is back to 2', async () => {
    const workersBefore = childPids(daemon.pid);
    assert.equal(workersBefore.length, 2);
    const total = 40;
    const replies: string[] = [];
    let next = 0;
    const client = async (login: string): Promise<void> => {
      while (next < total) {
        const index = next++;
        const right = index % 3 !== 0;
        // A request the killed worker answered itself (the fast path) dies with it: closed.
        const received = await exchange(daemon.socket, request(login, right ? PASSWORD : 'wrong-password', 'slow', '')).catch(droppedByKill);
        const reply = received.length === 0 ? 'closed' : received.subarray(2).toString('latin1');
        replies.push(reply);
        if (reply === 'OK') assert.ok(right, 'OK for a wrong password');
      }
    };
    const load = Promise.all(['good', 'good2', 'good3', 'good4'].map(client));
    await new Promise((resolve) => setTimeout(resolve, 500));
    process.kill(workersBefore[0]!, 'SIGKILL');
    await load;
    assert.equal(replies.length, total, 'every request got exactly one reply');
    const lost = replies.filter((reply) => reply === 'NO authentication worker failed' || reply === 'closed');
    assert.equal(lost.length, 1, `the killed worker's client got NO, or its connection closed: ${replies.join(',')}`);
    assert.ok(replies.filter((reply) => reply === 'OK').length >= total / 2, `right passwords got OK: ${replies.join(',')}`);
    await eventually(() => childPids(daemon.pid).length === 2, 'the pool is back to 2 workers');
    assert.ok(!childPids(daemon.pid).includes(workersBefore[0]!));
    assert.equal(await ask(daemon.socket, 'good', PASSWORD, 'imap', ''), 'OK');
    await daemon.waitForLog(
      lost[0] === 'closed'
        ? /worker \d+ died during a request it answered itself \(SIGKILL\); that client's connection is closed/
        : /worker \d+ died during a request \(SIGKILL\); the client gets NO/,
    );
  });

  test('SIGHUP recycles every worker without failing the request in flight', async () => {
    await eventually(() => childPids(daemon.pid).length === 2, 'two workers');
    const before = childPids(daemon.pid);
    const logsBefore = daemon.logs.length;
    const inFlight = ask(daemon.socket, 'good', PASSWORD, 'slow', '');
    await new Promise((resolve) => setTimeout(resolve, 100));
    process.kill(daemon.pid, 'SIGHUP');
    await daemon.waitForLog(/SIGHUP received: 2 workers recycled/);
    assert.equal(await inFlight, 'OK');
    await eventually(() => {
      const now = childPids(daemon.pid);
      return now.length === 2 && now.every((pid) => !before.includes(pid));
    }, 'two fresh workers');
    assert.equal(await ask(daemon.socket, 'good', PASSWORD, 'imap', ''), 'OK');
    assert.doesNotMatch(daemon.logs.slice(logsBefore), /died|exited \(/);
  });

  test('a second daemon on the same -m exits 2 with the original message, and the first keeps serving', async () => {
    const second = await Daemon.startFailing({ env: pam.env, runDirectory: daemon.runDirectory });
    assert.equal(second.code, 2);
    assert.match(second.output, /Another instance of saslauthd is currently running/);
    assert.equal(await ask(daemon.socket, 'good', PASSWORD, 'imap', ''), 'OK');
    // and through the detaching launcher
    const launcher = spawnSync(process.execPath, [SASLAUTHD_JS, '-a', 'pam', '-m', daemon.runDirectory], {
      env: pam.env,
      encoding: 'utf8',
      timeout: 20_000,
    });
    assert.equal(launcher.status, 2);
    assert.equal(launcher.stderr, 'Cannot start saslauthd\nAnother instance of saslauthd is currently running\n');
  });
});

test('a job past its deadline is answered NO and its worker replaced', async () => {
  const daemon = await Daemon.start({ env: pam.env, args: ['-n', '1', '--job-timeout', '700'] });
  try {
    const [worker] = childPids(daemon.pid);
    assert.equal(await ask(daemon.socket, 'good', PASSWORD, 'hang', ''), 'NO authentication timed out');
    await eventually(() => !isAlive(worker!), 'the hung worker is gone');
    await eventually(() => childPids(daemon.pid).some((pid) => pid !== worker), 'a replacement worker runs');
    assert.equal(await ask(daemon.socket, 'good', PASSWORD, 'imap', ''), 'OK');
    // the daemon's own trouble is not an auth failure: fail2ban must not count it
    await daemon.waitForLog(/auth not checked: .*\[reason=authentication timed out\]/);
    assert.doesNotMatch(daemon.logs, /auth failure: .*\[reason=authentication timed out\]/);
  } finally {
    await daemon.dispose();
  }
});

test('SIGTERM: exit 0, socket and pid file removed, workers gone', async () => {
  const daemon = await Daemon.start({ env: pam.env, args: ['-n', '2'] });
  const pidFile = `${daemon.runDirectory}/saslauthd.pid`;
  assert.equal(readFileSync(pidFile, 'utf8'), `${daemon.pid}\n`);
  assert.equal(statSync(daemon.socket).mode & 0o777, 0o777);
  const workers = childPids(daemon.pid);
  const exit = await daemon.stop();
  assert.deepEqual(exit, { code: 0, signal: null });
  assert.equal(existsSync(daemon.socket), false);
  assert.equal(existsSync(pidFile), false);
  await eventually(() => workers.every((pid) => !isAlive(pid)), 'workers exited');
  assert.match(daemon.logs, /master exited: 0/);
  await daemon.dispose();
});

test('SIGTERM while a client waits out a PAM failure delay: it gets its NO, nothing is cut off', async () => {
  // pam_faildelay asks for 5 s after a failure; the primary serves that delay itself
  pam.addService('delayed', `auth optional ${PAM_FAILDELAY_MODULE} delay=5000000\nauth required @MATRIX@\naccount required @PERMIT@\n`);
  const daemon = await Daemon.start({ env: pam.env, args: ['-n', '1'] });
  try {
    const exchangeDone = exchange(daemon.socket, request('good', 'wrong-password', 'delayed', ''));
    await daemon.waitForLog(/auth failure: \[user=good\] \[service=delayed\]/);
    daemon.child.kill('SIGTERM');
    assert.deepEqual(await exchangeDone, replyFrame('NO PAM auth error'));
    assert.deepEqual(await daemon.waitForExit(3_000), { code: 0, signal: null });
  } finally {
    await daemon.dispose();
  }
});

test('after a crash (SIGKILL of the primary) a new daemon starts at once on the same -m', async () => {
  const first = await Daemon.start({ env: pam.env, args: ['-n', '1'] });
  const workers = childPids(first.pid);
  first.child.kill('SIGKILL');
  await first.waitForExit();
  await eventually(() => workers.every((pid) => !isAlive(pid)), 'orphaned workers exit by themselves');
  assert.ok(existsSync(first.socket), 'the crash left the socket file behind');
  const second = await Daemon.start({ env: pam.env, args: ['-n', '1'], runDirectory: first.runDirectory });
  try {
    assert.equal(await ask(second.socket, 'good', PASSWORD, 'imap', ''), 'OK');
  } finally {
    await second.dispose();
  }
});

describe('the detaching launcher (no -d)', () => {
  test('exits 0 only once the socket listens; the daemon serves and stops on SIGTERM', async () => {
    const runDirectory = mkdtempSync('/tmp/sts-');
    try {
      const launcher = spawnSync(process.execPath, [SASLAUTHD_JS, '-a', 'pam', '-n', '1', '-m', runDirectory], {
        env: pam.env,
        encoding: 'utf8',
        timeout: 20_000,
      });
      assert.equal(launcher.status, 0, launcher.stderr);
      assert.ok(existsSync(`${runDirectory}/mux`), 'socket exists when the launcher returns');
      const pid = Number(readFileSync(`${runDirectory}/saslauthd.pid`, 'utf8'));
      assert.ok(isAlive(pid));
      assert.equal(await ask(`${runDirectory}/mux`, 'good', PASSWORD, 'imap', ''), 'OK');
      process.kill(pid, 'SIGTERM');
      await eventually(() => !isAlive(pid), 'the daemon stopped');
      assert.equal(existsSync(`${runDirectory}/mux`), false);
    } finally {
      rmSync(runDirectory, { recursive: true, force: true });
    }
  });

  test('exits non-zero, with the reason, when the socket cannot be created', () => {
    const runDirectory = mkdtempSync('/tmp/sts-');
    try {
      mkdirSync(`${runDirectory}/mux`); // a directory where the socket should go
      const launcher = spawnSync(process.execPath, [SASLAUTHD_JS, '-a', 'pam', '-n', '1', '-m', runDirectory], {
        env: pam.env,
        encoding: 'utf8',
        timeout: 20_000,
      });
      assert.equal(launcher.status, 1);
      assert.match(launcher.stderr, /could not bind to socket/);
      assert.equal(existsSync(`${runDirectory}/saslauthd.pid`), false, 'no stale pid file');
    } finally {
      rmSync(runDirectory, { recursive: true, force: true });
    }
  });

  test('exits non-zero when the run directory cannot be made', () => {
    const launcher = spawnSync(process.execPath, [SASLAUTHD_JS, '-a', 'pam', '-m', '/nonexistent-parent/run'], {
      env: pam.env,
      encoding: 'utf8',
      timeout: 20_000,
    });
    assert.equal(launcher.status, 1);
    assert.match(launcher.stderr, /can not mkdir: \/nonexistent-parent\/run/);
  });
});

test('no password used here appears in any log line', () => {
  assertNoSecretsLogged([PASSWORD, 'wrong-password']);
});
