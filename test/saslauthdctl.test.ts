/**
 * saslauthdctl against a running daemon (PAM through pam_wrapper + pam_matrix): each
 * subcommand's output and exit status, the control socket's root-only rule enforced by the
 * daemon itself (SO_PEERCRED) even with the file mode opened up, `test` with the password on
 * stdin, `flush --user` shown by changing pam_matrix's password file behind the daemon's
 * back, and the messages when no daemon runs.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { Daemon } from './helpers/daemon.js';
import { PamFixture, type PamUser } from './helpers/pam-fixture.js';
import { ask } from './helpers/raw-client.js';
import { SASLAUTHDCTL_JS } from './helpers/paths.js';
import { saslauthdctl } from './helpers/saslauthdctl.js';
import { assertNoSecretsLogged } from './helpers/secrets.js';

const ALICE_OLD = 'Ctl-alice-old-1';
const ALICE_NEW = 'Ctl-alice-new-2';
const BOB_OLD = 'Ctl-bob-old-3';
const BOB_NEW = 'Ctl-bob-new-4';
const WRONG = 'Ctl-wrong-pass-5';
/** `nobody`/`nogroup` on Debian: a caller that is not root. */
const NOBODY = { uid: 65_534, gid: 65_534 };
/** The exit statuses saslauthdctl documents (src/cli/saslauthdctl.ts). */
const EXIT = { ok: 0, refused: 1, usage: 2, noDaemon: 3, denied: 4, failed: 5 };

const isRoot = process.getuid?.() === 0;

function users(...list: [string, string][]): PamUser[] {
  return list.map(([name, password]) => ({ name, password, service: 'imap' }));
}

/**
 * Runs saslauthdctl on a pseudo-terminal (python's pty: Node has none), types `keys` once
 * the prompt is there, and returns everything the terminal showed and the exit status.
 */
function inTerminal(args: readonly string[], keys: string): Promise<{ status: number; output: string }> {
  const script = `
import json, os, pty, sys, time
pid, fd = pty.fork()
if pid == 0:
    os.execv(sys.argv[1], sys.argv[1:])
out = b''
deadline = time.time() + 20
while b': ' not in out and time.time() < deadline:
    out += os.read(fd, 1024)
os.write(fd, sys.stdin.buffer.read())
while time.time() < deadline:
    try:
        chunk = os.read(fd, 1024)
    except OSError:
        break
    if not chunk:
        break
    out += chunk
_, status = os.waitpid(pid, 0)
print(json.dumps({"status": os.waitstatus_to_exitcode(status), "output": out.decode("utf-8", "replace")}))
`;
  return new Promise((resolve, reject) => {
    const child = spawn('/usr/bin/python3', ['-c', script, process.execPath, SASLAUTHDCTL_JS, ...args], { stdio: ['pipe', 'pipe', 'inherit'] });
    let stdout = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString('utf8')));
    child.on('error', reject);
    child.on('close', () => {
      try {
        resolve(JSON.parse(stdout) as { status: number; output: string });
      } catch {
        reject(new Error(`no result from the terminal helper: ${stdout}`));
      }
    });
    child.stdin.end(keys);
  });
}

describe('saslauthdctl with a running daemon (-c)', () => {
  let pam: PamFixture;
  let daemon: Daemon;
  let ctl: (...args: string[]) => ReturnType<typeof saslauthdctl>;
  before(async () => {
    pam = new PamFixture(users(['alice', ALICE_OLD], ['bob', BOB_OLD]));
    daemon = await Daemon.start({ env: pam.env, args: ['-n', '2', '-c'] });
    ctl = (...args) => saslauthdctl(['-m', daemon.runDirectory, ...args]);
  });
  after(async () => {
    await daemon?.dispose();
    pam?.dispose();
  });

  test('the control socket is in the run directory, mode 0600', () => {
    assert.ok(readdirSync(daemon.runDirectory).includes('control'));
  });

  test('status: the SIGUSR1 line and one line per worker, exit 0', async () => {
    const result = await ctl('status');
    assert.equal(result.status, EXIT.ok, result.stderr);
    assert.match(result.stdout, new RegExp(`^saslauthd-ts \\S+, pid ${daemon.pid}, mechanism pam, up \\d+ s$`, 'm'));
    assert.match(result.stdout, /^status: workers=2 busy=0 queued=0 connections=0 ok=\d+ no=\d+ cache=on entries=\d+ hits=\d+ misses=\d+ hit_rate=\d+\.\d% respawns=0 timeouts=0 crashes=0 uptime=\d+s$/m);
    assert.match(result.stdout, /^workers \(2\):$/m);
    assert.equal(result.stdout.match(/^ {2}pid \d+ {2}(idle|starting) +jobs \d+ {2}up \d+ s$/gm)?.length, 2, result.stdout);
  });

  test('status --json: the same, as JSON', async () => {
    const result = await ctl('status', '--json');
    assert.equal(result.status, EXIT.ok, result.stderr);
    const status = JSON.parse(result.stdout) as { pid: number; mechanism: string; pool: { workers: number }; workerStates: { pid: number }[]; cache: { capacity: number } };
    assert.equal(status.pid, daemon.pid);
    assert.equal(status.mechanism, 'pam');
    assert.equal(status.pool.workers, 2);
    assert.equal(status.workerStates.length, 2);
    assert.ok(status.workerStates.every((worker) => worker.pid > 0));
    assert.ok(status.cache.capacity > 0);
  });

  test('test: the password from stdin, the reply and the time it took; exit 0 for OK, 1 for NO', async () => {
    const ok = await saslauthdctl(['-m', daemon.runDirectory, 'test', '-u', 'alice'], { input: `${ALICE_OLD}\n` });
    assert.equal(ok.status, EXIT.ok, ok.stderr);
    assert.match(ok.stdout, /^OK \(\d+\.\d ms\)\n$/);
    const no = await saslauthdctl(['-m', daemon.runDirectory, 'test', '-u', 'alice', '-s', 'imap'], { input: `${WRONG}\n` });
    assert.equal(no.status, EXIT.refused, no.stderr);
    assert.match(no.stdout, /^NO PAM auth error \(\d+\.\d ms\)\n$/);
    const empty = await saslauthdctl(['-m', daemon.runDirectory, 'test', '-u', 'alice'], { input: '' });
    assert.equal(empty.status, EXIT.usage);
    assert.match(empty.stderr, /^saslauthdctl: no password on standard input$/m);
  });

  test('test from a terminal: a prompt on the terminal, the password never echoed', async () => {
    const typed = await inTerminal(['-m', daemon.runDirectory, 'test', '-u', 'alice'], `${ALICE_OLD}\r`);
    assert.equal(typed.status, EXIT.ok, typed.output);
    assert.match(typed.output, /^Password for alice: \r\nOK \(\d+\.\d ms\)\r\n$/);
    assert.ok(!typed.output.includes(ALICE_OLD), 'the password was echoed');
  });

  test('flush --user removes only that user\'s entries: the next request reaches PAM again', async () => {
    pam.setUsers(users(['alice', ALICE_OLD], ['bob', BOB_OLD]));
    assert.equal((await ctl('flush')).status, EXIT.ok);
    assert.equal(await ask(daemon.socket, 'alice', ALICE_OLD, 'imap', ''), 'OK');
    assert.equal(await ask(daemon.socket, 'alice', ALICE_OLD, 'imap', '', '192.0.2.1;4000'), 'OK'); // a second entry (another client host)
    assert.equal(await ask(daemon.socket, 'bob', BOB_OLD, 'imap', ''), 'OK');
    // Behind the daemon's back: both passwords change. Cached entries still answer OK.
    pam.setUsers(users(['alice', ALICE_NEW], ['bob', BOB_NEW]));
    assert.equal(await ask(daemon.socket, 'alice', ALICE_OLD, 'imap', ''), 'OK');

    const flushed = await ctl('flush', '--user', 'alice');
    assert.equal(flushed.status, EXIT.ok, flushed.stderr);
    assert.equal(flushed.stdout, '2 entries removed for alice\n');
    assert.equal(await ask(daemon.socket, 'alice', ALICE_OLD, 'imap', ''), 'NO PAM auth error', 'alice reached PAM again');
    assert.equal(await ask(daemon.socket, 'bob', BOB_OLD, 'imap', ''), 'OK', "bob's entry is still cached");
    await daemon.waitForLog(/credential cache flush requested by saslauthdctl for user alice: 2 entries removed/);

    const none = await ctl('flush', '--user', 'alice', '--realm', 'example.org', '--service', 'imap');
    assert.equal(none.status, EXIT.ok);
    assert.equal(none.stdout, '0 entries removed for alice\n');
    const all = await ctl('flush');
    assert.equal(all.status, EXIT.ok);
    assert.equal(all.stdout, '1 entry removed\n');
    assert.equal(await ask(daemon.socket, 'bob', BOB_OLD, 'imap', ''), 'NO PAM auth error');
    const usage = await ctl('flush', '--realm', 'example.org');
    assert.equal(usage.status, EXIT.usage);
    assert.match(usage.stderr, /--realm and --service need --user/);
  });

  test('metrics: the OpenMetrics text, exit 0', async () => {
    const result = await ctl('metrics');
    assert.equal(result.status, EXIT.ok, result.stderr);
    assert.match(result.stdout, /^# HELP saslauthd_build /);
    assert.match(result.stdout, /^saslauthd_workers\{state="idle"\} \d+$/m);
    assert.ok(result.stdout.endsWith('# EOF\n'));
  });

  test('reload: what SIGHUP does, with its result; exit 0', async () => {
    pam.setUsers(users(['alice', ALICE_NEW], ['bob', BOB_NEW]));
    assert.equal(await ask(daemon.socket, 'alice', ALICE_NEW, 'imap', ''), 'OK');
    const result = await ctl('reload');
    assert.equal(result.status, EXIT.ok, result.stderr);
    assert.equal(result.stdout, 'credential cache flushed (1 entries), 2 workers recycled\n');
    await daemon.waitForLog(/reload requested by saslauthdctl: credential cache flushed \(1 entries\), 2 workers recycled/);
    const status = JSON.parse((await ctl('status', '--json')).stdout) as { pool: { respawns: number } };
    assert.equal(status.pool.respawns, 2);
  });

  test('a non-root caller is refused by the daemon, even with the socket mode opened up', { skip: !isRoot && 'needs root (setpriv)' }, async () => {
    chmodSync(daemon.runDirectory, 0o755);
    chmodSync(join(daemon.runDirectory, 'control'), 0o666);
    try {
      const result = await saslauthdctl(['-m', daemon.runDirectory, 'status'], { asUser: NOBODY });
      assert.equal(result.status, EXIT.denied, `${result.stdout}${result.stderr}`);
      assert.equal(result.stdout, '');
      assert.equal(result.stderr, 'saslauthdctl: permission denied: only root may control saslauthd\n');
      await daemon.waitForLog(new RegExp(`control socket: refused uid ${NOBODY.uid} \\(pid \\d+\\)`));
      const flush = await saslauthdctl(['-m', daemon.runDirectory, 'flush'], { asUser: NOBODY });
      assert.equal(flush.status, EXIT.denied);
    } finally {
      chmodSync(join(daemon.runDirectory, 'control'), 0o600);
      chmodSync(daemon.runDirectory, 0o700);
    }
    // With the file's own mode (0600), the kernel refuses first: same exit status.
    chmodSync(daemon.runDirectory, 0o755);
    try {
      const result = await saslauthdctl(['-m', daemon.runDirectory, 'status'], { asUser: NOBODY });
      assert.equal(result.status, EXIT.denied);
      assert.match(result.stderr, /^saslauthdctl: permission denied: only root may use .*\/control\n$/);
    } finally {
      chmodSync(daemon.runDirectory, 0o700);
    }
  });

  test('without -c, flush says the cache is off (exit 5)', async () => {
    const plain = await Daemon.start({ env: pam.env, args: ['-n', '1'] });
    try {
      const result = await saslauthdctl(['-m', plain.runDirectory, 'flush']);
      assert.equal(result.status, EXIT.failed);
      assert.equal(result.stderr, 'saslauthdctl: the credential cache is off (saslauthd runs without -c)\n');
      const reload = await saslauthdctl(['-m', plain.runDirectory, 'reload']);
      assert.equal(reload.stdout, '1 workers recycled\n');
    } finally {
      await plain.dispose();
    }
  });

  test('after SIGTERM the control socket is gone with the rest of the run directory', async () => {
    const stopping = await Daemon.start({ env: pam.env, args: ['-n', '1'] });
    try {
      assert.ok(readdirSync(stopping.runDirectory).includes('control'));
      await stopping.stop();
      assert.deepEqual(readdirSync(stopping.runDirectory), []);
      const result = await saslauthdctl(['-m', stopping.runDirectory, 'status']);
      assert.equal(result.status, EXIT.noDaemon);
    } finally {
      await stopping.dispose();
    }
  });

  test('no password used here appears in any log line', () => {
    assertNoSecretsLogged([ALICE_OLD, ALICE_NEW, BOB_OLD, BOB_NEW, WRONG]);
  });
});

describe('saslauthdctl without a daemon', () => {
  let empty: string;
  before(() => {
    empty = mkdtempSync('/tmp/sts-ctl-');
  });
  after(() => rmSync(empty, { recursive: true, force: true }));

  for (const command of [['status'], ['status', '--json'], ['flush'], ['flush', '--user', 'alice'], ['metrics'], ['reload']]) {
    test(`${command.join(' ')}: a clear message and exit 3`, async () => {
      const result = await saslauthdctl(['-m', empty, ...command]);
      assert.equal(result.status, EXIT.noDaemon);
      assert.equal(result.stdout, '');
      assert.equal(result.stderr, `saslauthdctl: no saslauthd running (${empty}/control: No such file or directory)\n`);
    });
  }

  test('test: a clear message and exit 3, the password read but never sent anywhere', async () => {
    const result = await saslauthdctl(['-m', empty, 'test', '-u', 'alice'], { input: `${WRONG}\n` });
    assert.equal(result.status, EXIT.noDaemon);
    assert.equal(result.stderr, `saslauthdctl: no saslauthd running (${empty}/mux: No such file or directory)\n`);
  });

  test('usage errors exit 2: no command, an unknown one, test without -u, a relative -m', async () => {
    assert.equal((await saslauthdctl([])).status, EXIT.usage);
    assert.equal((await saslauthdctl(['bogus'])).status, EXIT.usage);
    assert.equal((await saslauthdctl(['-m', empty, 'test'])).status, EXIT.usage);
    const relative = await saslauthdctl(['-m', 'run', 'status']);
    assert.equal(relative.status, EXIT.usage);
    assert.match(relative.stderr, /-m requires an absolute pathname/);
  });
});
