/**
 * The Node runtime's own doors stay shut in every process of the daemon: SIGUSR1 never
 * opens the inspector (launcher, primary in start-up and running, resident worker, -n 0
 * worker), signals in the start-up window do not stop the daemon, NODE_OPTIONS and the
 * other NODE_* variables never reach the processes the daemon starts, and diagnostic
 * listeners that NODE_OPTIONS can install (--heapsnapshot-signal, --report-on-signal) are gone.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Daemon } from './helpers/daemon.js';
import { PamFixture } from './helpers/pam-fixture.js';
import { PAM_EXEC_MODULE, SASLAUTHD_JS } from './helpers/paths.js';
import { childPids, eventually, isAlive } from './helpers/processes.js';
import { ask } from './helpers/raw-client.js';
import { inspectorPortOpen, tcpListenersOf } from './helpers/tcp-listeners.js';
import { slowWorkerStartLibrary } from './helpers/slow-worker-start.js';

const PASSWORD = 'Runtime-doors-7';
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
let pam: PamFixture;
let scratch: string;

before(() => {
  pam = new PamFixture([{ name: 'door', password: PASSWORD, service: 'imap' }]);
  // "slow" holds the worker in pam_exec for a second: time to signal a -n 0 worker mid-request.
  pam.addService('slow', `auth required ${PAM_EXEC_MODULE} /bin/sleep 1\nauth required @MATRIX@\naccount required @PERMIT@\n`);
  scratch = mkdtempSync(join(tmpdir(), 'sts-doors-'));
});

after(() => {
  pam?.dispose();
  rmSync(scratch, { recursive: true, force: true });
});

/** No process in `pids` listens on TCP, and nothing listens on the inspector's port. */
function assertNoTcpListener(pids: readonly number[], what: string): void {
  for (const pid of pids) assert.deepEqual(tcpListenersOf(pid), [], `${what}: process ${pid} listens on TCP`);
  assert.equal(inspectorPortOpen(), false, `${what}: something listens on port 9229`);
}

describe('SIGUSR1 never opens the inspector', () => {
  test('running primary and resident worker: status line, no listener, still answers', async () => {
    const daemon = await Daemon.start({ env: pam.env, args: ['-n', '1'] });
    try {
      const [worker] = childPids(daemon.pid);
      assert.ok(worker);
      process.kill(daemon.pid, 'SIGUSR1');
      process.kill(worker, 'SIGUSR1');
      await daemon.waitForLog(/status: workers=1/);
      assert.equal(await ask(daemon.socket, 'door', PASSWORD, 'imap', ''), 'OK');
      await sleep(300); // an inspector starts within milliseconds of the signal
      assertNoTcpListener([daemon.pid, worker], 'after SIGUSR1');
      assert.ok(isAlive(worker), 'the worker survived SIGUSR1');
      assert.equal(await ask(daemon.socket, 'door', 'wrong-password', 'imap', ''), 'NO PAM auth error');
    } finally {
      await daemon.dispose();
    }
  });

  test('-n 0: the per-request worker, signalled mid-request, answers and never listens', async () => {
    const daemon = await Daemon.start({ env: pam.env, args: ['-n', '0'] });
    try {
      const reply = ask(daemon.socket, 'door', PASSWORD, 'slow', '');
      let worker: number | undefined;
      await eventually(() => (worker = childPids(daemon.pid)[0]) !== undefined, 'a per-request worker runs');
      await sleep(200); // past its start-up: it is in the PAM transaction now
      process.kill(worker!, 'SIGUSR1');
      await sleep(300);
      assertNoTcpListener([daemon.pid, worker!], '-n 0 worker after SIGUSR1');
      assert.equal(await reply, 'OK');
    } finally {
      await daemon.dispose();
    }
  });

  test('primary in its start-up window (first worker slow to start): SIGUSR1 and SIGHUP do not stop or open it', async () => {
    const env = { ...pam.env, LD_PRELOAD: slowWorkerStartLibrary(), STS_SLOW_WORKER_START_MS: '2000' };
    const daemon = Daemon.launch({ env, args: ['-n', '1'] });
    try {
      await daemon.waitForLog(/auth_mech  : pam/);
      await sleep(300); // the primary is waiting for its first worker now
      assert.doesNotMatch(daemon.logs, /listening on socket/, 'still starting');
      process.kill(daemon.pid, 'SIGUSR1');
      process.kill(daemon.pid, 'SIGHUP');
      await sleep(300);
      assertNoTcpListener([daemon.pid], 'primary during start-up');
      assert.ok(isAlive(daemon.pid), 'SIGHUP during start-up did not kill the primary');
      await daemon.waitForLog(/listening on socket/, 15_000);
      assert.equal(await ask(daemon.socket, 'door', PASSWORD, 'imap', ''), 'OK');
      assertNoTcpListener([daemon.pid, ...childPids(daemon.pid)], 'after start-up');
    } finally {
      await daemon.dispose();
    }
  });

  test('SIGTERM in the start-up window stops the daemon cleanly once it has started', async () => {
    const env = { ...pam.env, LD_PRELOAD: slowWorkerStartLibrary(), STS_SLOW_WORKER_START_MS: '1500' };
    const daemon = Daemon.launch({ env, args: ['-n', '1'] });
    try {
      await daemon.waitForLog(/auth_mech  : pam/);
      process.kill(daemon.pid, 'SIGTERM');
      const exit = await daemon.waitForExit(15_000);
      assert.deepEqual(exit, { code: 0, signal: null }, daemon.logs);
      assert.match(daemon.logs, /master exited: 0/);
      assert.deepEqual(readdirSync(daemon.runDirectory), [], 'run directory emptied');
    } finally {
      await daemon.dispose();
    }
  });

  test('the launcher (no -d), signalled while it waits for the daemon, neither listens nor dies', async () => {
    const runDirectory = mkdtempSync('/tmp/sts-');
    const env = { ...pam.env, LD_PRELOAD: slowWorkerStartLibrary(), STS_SLOW_WORKER_START_MS: '1500' };
    const launcher = spawn(process.execPath, [SASLAUTHD_JS, '-a', 'pam', '-n', '1', '-m', runDirectory], { env, stdio: 'ignore' });
    const exited = new Promise<number | null>((resolve) => launcher.on('exit', (code) => resolve(code)));
    try {
      await sleep(400); // Node is up in the launcher; it waits for the daemon's verdict
      process.kill(launcher.pid!, 'SIGUSR1');
      process.kill(launcher.pid!, 'SIGHUP');
      await sleep(300);
      assertNoTcpListener([launcher.pid!], 'launcher');
      assert.equal(await exited, 0, 'the launcher reported the daemon ready');
      const primary = Number(readFileSync(join(runDirectory, 'saslauthd.pid'), 'utf8'));
      assert.equal(await ask(join(runDirectory, 'mux'), 'door', PASSWORD, 'imap', ''), 'OK');
      process.kill(primary, 'SIGTERM');
      await eventually(() => !isAlive(primary), 'the daemon stopped');
    } finally {
      launcher.kill('SIGKILL');
      rmSync(runDirectory, { recursive: true, force: true });
    }
  });
});

describe('NODE_OPTIONS and NODE_* never reach the processes the daemon starts', () => {
  test('-d: the primary closes an inspector it was started with; workers run no injected code and see no NODE_*', async () => {
    const marker = join(scratch, 'injected');
    const script = join(scratch, 'inject.cjs');
    writeFileSync(script, `require('fs').writeFileSync(${JSON.stringify(marker)} + '-' + process.pid, '');\n`);
    const env = {
      ...pam.env,
      NODE_OPTIONS: `--inspect=127.0.0.1:0 --require ${script}`,
      NODE_TLS_REJECT_UNAUTHORIZED: '0',
      NODE_DEBUG: 'net',
    };
    const daemon = await Daemon.start({ env, args: ['-n', '2'] });
    try {
      assert.equal(await ask(daemon.socket, 'door', PASSWORD, 'imap', ''), 'OK');
      const workers = childPids(daemon.pid);
      assert.equal(workers.length, 2);
      const ran = readdirSync(scratch).filter((name) => name.startsWith('injected-'));
      // The primary itself was started with NODE_OPTIONS by whoever ran it (that is their
      // choice); nothing it starts may be.
      assert.deepEqual(ran, [`injected-${daemon.pid}`], 'only the process started with NODE_OPTIONS ran the code');
      assertNoTcpListener([daemon.pid, ...workers], 'with --inspect in NODE_OPTIONS');
      for (const pid of [daemon.pid, ...workers]) {
        const environ = readFileSync(`/proc/${pid}/environ`, 'latin1').split('\0');
        if (pid === daemon.pid) continue; // the kernel keeps a process's initial environment
        assert.deepEqual(environ.filter((entry) => entry.startsWith('NODE_')), [], `worker ${pid} environment`);
      }
    } finally {
      await daemon.dispose();
      for (const name of readdirSync(scratch)) if (name.startsWith('injected-')) rmSync(join(scratch, name));
    }
  });

  test('daemon mode: neither the detached primary nor its workers run NODE_OPTIONS code', async () => {
    const marker = join(scratch, 'detached');
    const script = join(scratch, 'inject-detached.cjs');
    writeFileSync(script, `require('fs').writeFileSync(${JSON.stringify(marker)} + '-' + process.pid, '');\n`);
    const runDirectory = mkdtempSync('/tmp/sts-');
    const env = { ...pam.env, NODE_OPTIONS: `--require ${script}` };
    const launcher = spawn(process.execPath, [SASLAUTHD_JS, '-a', 'pam', '-n', '1', '-m', runDirectory], { env, stdio: 'ignore' });
    const code = await new Promise<number | null>((resolve) => launcher.on('exit', (exitCode) => resolve(exitCode)));
    try {
      assert.equal(code, 0);
      const primary = Number(readFileSync(join(runDirectory, 'saslauthd.pid'), 'utf8'));
      assert.equal(await ask(join(runDirectory, 'mux'), 'door', PASSWORD, 'imap', ''), 'OK');
      const ran = readdirSync(scratch).filter((name) => name.startsWith('detached-'));
      assert.deepEqual(ran, [`detached-${launcher.pid}`], 'only the launcher, started with NODE_OPTIONS, ran it');
      for (const pid of [primary, ...childPids(primary)]) {
        const environ = readFileSync(`/proc/${pid}/environ`, 'latin1').split('\0');
        assert.deepEqual(environ.filter((entry) => entry.startsWith('NODE_')), [], `process ${pid} environment`);
      }
      process.kill(primary, 'SIGTERM');
      await eventually(() => !isAlive(primary), 'the daemon stopped');
    } finally {
      rmSync(runDirectory, { recursive: true, force: true });
    }
  });

  test('--heapsnapshot-signal and --report-on-signal from NODE_OPTIONS: SIGUSR2 writes nothing and kills nothing', async () => {
    const env = { ...pam.env, NODE_OPTIONS: '--heapsnapshot-signal=SIGUSR2 --report-on-signal --report-signal=SIGUSR2' };
    const daemon = await Daemon.start({ env, args: ['-n', '1'] });
    try {
      process.kill(daemon.pid, 'SIGUSR2');
      await sleep(1_000); // a heap snapshot of a process this size takes well under a second to start
      const written = readdirSync(daemon.runDirectory).filter((name) => /heapsnapshot|report/.test(name));
      assert.deepEqual(written, [], 'no heap snapshot or report in the run directory (the cwd)');
      assert.ok(isAlive(daemon.pid));
      assert.equal(await ask(daemon.socket, 'door', PASSWORD, 'imap', ''), 'OK');
    } finally {
      await daemon.dispose();
    }
  });
});

test('process.binding is shut in the daemon', () => {
  const result = spawn(process.execPath, [
    '--input-type=module',
    '-e',
    `await import(${JSON.stringify(new URL('../src/runtime/harden-process.js', import.meta.url).href)});
     try { process.binding('fs'); console.log('open'); } catch (e) { console.log('shut: ' + e.message); }`,
  ]);
  return new Promise<void>((resolve, reject) => {
    let out = '';
    result.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    result.on('exit', () => {
      try {
        assert.match(out, /^shut: process.binding is disabled/);
        resolve();
      } catch (error) {
        reject(error as Error);
      }
    });
  });
});

