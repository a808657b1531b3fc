/**
 * Deadlines and bounds: the read and drain deadlines close stuck clients, past the
 * connection or queue bound a client gets an immediate NO (never a silent drop or a hang),
 * workers are recycled after --max-jobs-per-worker, -n 0 runs each request in a fresh
 * worker process, and --idle-workers keeps only that many workers started without work.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { Daemon } from './helpers/daemon.js';
import { PamFixture } from './helpers/pam-fixture.js';
import { PAM_EXEC_MODULE } from './helpers/paths.js';
import { childPids, eventually } from './helpers/processes.js';
import { ask, idleConnection, replyFrame, request } from './helpers/raw-client.js';
import { assertNoSecretsLogged } from './helpers/secrets.js';

const PASSWORD = 'Limits-pass-1';
let pam: PamFixture;
let pidLog: string;

before(() => {
  pam = new PamFixture([
    { name: 'good', password: PASSWORD, service: 'imap' },
    // Distinct logins where a test needs concurrent checks: one login is checked one at a time.
    { name: 'good2', password: PASSWORD, service: 'imap' },
    { name: 'good3', password: PASSWORD, service: 'imap' },
  ]);
  pam.addService('slow', `auth required ${PAM_EXEC_MODULE} /bin/sleep 1\nauth required @MATRIX@\naccount required @PERMIT@\n`);
  // "who" appends the pid of the worker that ran PAM (pam_exec's parent) to a file
  pidLog = join(pam.directory, 'worker-pids');
  const script = join(pam.directory, 'who.sh');
  writeFileSync(script, `#!/bin/sh\necho $PPID >> ${pidLog}\n`);
  chmodSync(script, 0o755);
  pam.addService('who', `auth required ${PAM_EXEC_MODULE} ${script}\nauth required @MATRIX@\naccount required @PERMIT@\n`);
});
after(() => pam?.dispose());

/** Resolves when the server closes the connection. */
function closed(socket: Socket): Promise<Buffer> {
  const chunks: Buffer[] = [];
  socket.on('data', (chunk: Buffer) => chunks.push(chunk));
  return new Promise((resolve) => {
    if (socket.closed) resolve(Buffer.concat(chunks));
    else socket.on('close', () => resolve(Buffer.concat(chunks)));
  });
}

test('read deadline: a client that sends nothing, or half a request, is closed without a reply', async () => {
  const daemon = await Daemon.start({ env: pam.env, args: ['-n', '1', '--read-timeout', '300'] });
  try {
    const idle = await idleConnection(daemon.socket);
    const half = await idleConnection(daemon.socket);
    half.write(request('good', PASSWORD, 'imap', '').subarray(0, 7));
    // Both listeners first: the two deadlines expire together, and a 'close' that fires
    // before its listener is attached would never be seen.
    const [idleBytes, halfBytes] = await Promise.all([closed(idle), closed(half)]);
    assert.equal(idleBytes.length, 0);
    assert.equal(halfBytes.length, 0);
    await daemon.waitForLog(/no complete request within 300 ms: connection closed/);
    assert.equal(await ask(daemon.socket, 'good', PASSWORD, 'imap', ''), 'OK');
  } finally {
    await daemon.dispose();
  }
});

test('a client that sent just its request and keeps its end open gets the reply, then EOF at once', async () => {
  const daemon = await Daemon.start({ env: pam.env, args: ['-n', '1', '--drain-timeout', '60000'] });
  try {
    const socket = connect({ path: daemon.socket });
    socket.write(request('good', PASSWORD, 'imap', ''));
    const received = await closed(socket); // we never end our side; a 60 s drain would time the test out
    assert.deepEqual(received, replyFrame('OK'));
  } finally {
    await daemon.dispose();
  }
});

test('drain deadline: a client that sends more after its request and never closes is closed by the deadline', async () => {
  const daemon = await Daemon.start({ env: pam.env, args: ['-n', '1', '--drain-timeout', '400'] });
  try {
    // allowHalfOpen: the daemon's EOF after the reply must not make this client close too
    const socket = connect({ path: daemon.socket, allowHalfOpen: true });
    socket.on('error', () => {}); // our writes after the daemon's close fail; expected
    socket.write(Buffer.concat([request('good', PASSWORD, 'imap', ''), Buffer.from('trailing bytes')]));
    const trickle = setInterval(() => socket.writable && socket.write('x'), 50);
    const done = closed(socket);
    try {
      // Still draining (open) well before the deadline; closed after it.
      await new Promise((resolve) => setTimeout(resolve, 200));
      assert.equal(socket.closed, false, 'closed before the drain deadline');
      const notClosed = new Promise<never>((_, reject) => setTimeout(() => reject(new Error('not closed within 5 s')), 5_000).unref());
      assert.deepEqual(await Promise.race([done, notClosed]), replyFrame('OK'));
    } finally {
      clearInterval(trickle);
    }
  } finally {
    await daemon.dispose();
  }
});

/** Asks for status lines (SIGUSR1) until one reports `count` open connections. */
async function openConnectionsReported(daemon: Daemon, count: number): Promise<void> {
  const pattern = new RegExp(`status: .*connections=${count} `);
  await eventually(
    () => {
      if (pattern.test(daemon.logs.split('\n').filter((line) => line.includes('status:')).at(-1) ?? '')) return true;
      process.kill(daemon.pid, 'SIGUSR1');
      return false;
    },
    `${count} open connections reported`,
  );
}

test('past --max-connections a new client is answered NO at once, with a log line', async () => {
  const daemon = await Daemon.start({ env: pam.env, args: ['-n', '1', '--max-connections', '5', '--read-timeout', '60000'] });
  const idle: Socket[] = [];
  try {
    for (let i = 0; i < 5; i++) idle.push(await idleConnection(daemon.socket));
    await openConnectionsReported(daemon, 5);
    assert.equal(await ask(daemon.socket, 'good', PASSWORD, 'imap', ''), 'NO server busy');
    await daemon.waitForLog(/too many open connections \(5\): 1 client\(s\) answered NO server busy/);
    idle.pop()!.destroy();
    await openConnectionsReported(daemon, 4);
    assert.equal(await ask(daemon.socket, 'good', PASSWORD, 'imap', ''), 'OK');
  } finally {
    for (const socket of idle) socket.destroy();
    await daemon.dispose();
  }
});

test('a flood of refused clients costs one log line per second, not one per client', async () => {
  const daemon = await Daemon.start({ env: pam.env, args: ['-n', '1', '--max-connections', '2', '--read-timeout', '60000'] });
  const idle: Socket[] = [];
  try {
    for (let i = 0; i < 2; i++) idle.push(await idleConnection(daemon.socket));
    await openConnectionsReported(daemon, 2);
    const refused = await Promise.all(Array.from({ length: 50 }, () => ask(daemon.socket, 'good', PASSWORD, 'imap', '').catch(() => 'closed')));
    assert.ok(refused.every((reply) => reply === 'NO server busy' || reply === 'closed'), refused.join(','));
    assert.ok(refused.includes('NO server busy'));
    const lines = daemon.logs.split('\n').filter((line) => line.includes('too many open connections'));
    assert.ok(lines.length <= 3, `${lines.length} log lines for 50 refusals`);
  } finally {
    for (const socket of idle) socket.destroy();
    await daemon.dispose();
  }
});

test('past --max-queue a request is answered NO at once; the queued ones are answered', async () => {
  const daemon = await Daemon.start({ env: pam.env, args: ['-n', '1', '--max-queue', '2'] });
  try {
    const running = ask(daemon.socket, 'good', PASSWORD, 'slow', '');
    await new Promise((resolve) => setTimeout(resolve, 200)); // the worker is busy now
    const queued = [ask(daemon.socket, 'good', PASSWORD, 'slow', ''), ask(daemon.socket, 'good', PASSWORD, 'slow', '')];
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.equal(await ask(daemon.socket, 'good', PASSWORD, 'imap', ''), 'NO server busy');
    await daemon.waitForLog(/job queue full \(2 waiting\): request refused/);
    assert.deepEqual(await Promise.all([running, ...queued]), ['OK', 'OK', 'OK']);
  } finally {
    await daemon.dispose();
  }
});

test('--max-jobs-per-worker recycles a worker after that many requests', async () => {
  writeFileSync(pidLog, '');
  const daemon = await Daemon.start({ env: pam.env, args: ['-n', '1', '--max-jobs-per-worker', '3'] });
  try {
    for (let i = 0; i < 7; i++) assert.equal(await ask(daemon.socket, 'good', PASSWORD, 'who', ''), 'OK');
    const pids = readFileSync(pidLog, 'utf8').trim().split('\n');
    assert.equal(pids.length, 7);
    assert.equal(new Set(pids.slice(0, 3)).size, 1);
    assert.equal(new Set(pids.slice(3, 6)).size, 1);
    assert.equal(new Set(pids).size, 3, `three workers served 7 requests: ${pids.join(',')}`);
    assert.ok(!/crashes=[1-9]/.test(daemon.logs));
  } finally {
    await daemon.dispose();
  }
});

test('-n 0: every request runs in a fresh worker process; none stays resident', async () => {
  writeFileSync(pidLog, '');
  const daemon = await Daemon.start({ env: pam.env, args: ['-n', '0', '-c'] });
  try {
    assert.equal(childPids(daemon.pid).length, 0, 'no resident workers');
    for (let i = 0; i < 4; i++) assert.equal(await ask(daemon.socket, 'good', PASSWORD, 'who', `r${i}`), 'OK');
    const pids = readFileSync(pidLog, 'utf8').trim().split('\n');
    assert.equal(new Set(pids).size, 4, `4 requests, 4 workers: ${pids.join(',')}`);
    assert.equal(await ask(daemon.socket, 'good', 'wrong-password', 'imap', ''), 'NO PAM auth error');
    // concurrent requests in -n 0 are all answered (three logins: each login is checked one at a time)
    const logins = ['good', 'good2', 'good3'];
    const replies = await Promise.all(Array.from({ length: 10 }, (_, i) => ask(daemon.socket, logins[i % 3]!, PASSWORD, 'imap', '')));
    // On failure, say which replies and what the daemon logged about them.
    const errors = () => daemon.logs.split('\n').filter((line) => /error|fail|died|exited/.test(line)).slice(-8).join('\n');
    assert.ok(replies.every((reply) => reply === 'OK'), `${replies.join(',')}\n${errors()}`);
    // the cache lives in the primary, so it works across one-shot workers
    assert.equal(await ask(daemon.socket, 'good', PASSWORD, 'who', 'r0'), 'OK');
    assert.equal(readFileSync(pidLog, 'utf8').trim().split('\n').length, 4, 'served from the cache');
    await eventually(() => childPids(daemon.pid).length === 0, 'one-shot workers exited');
  } finally {
    await daemon.dispose();
  }
});

test('--idle-workers: the other -n workers start when requests wait and stop after --worker-idle-timeout', async () => {
  const daemon = await Daemon.start({
    env: pam.env,
    args: ['-n', '3', '--idle-workers', '1', '--worker-idle-timeout', '800'],
  });
  try {
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.equal(childPids(daemon.pid).length, 1, 'one worker while there is no work');
    // Three slow requests at once (three logins: one login is checked one at a time): two
    // of them wait, so two more workers start.
    const slow = ['good', 'good2', 'good3'].map((login) => ask(daemon.socket, login, PASSWORD, 'slow', ''));
    await eventually(() => childPids(daemon.pid).length === 3, 'three workers while requests wait');
    assert.deepEqual(await Promise.all(slow), ['OK', 'OK', 'OK']);
    await eventually(() => childPids(daemon.pid).length === 1, 'back to one worker once idle', 5_000);
    await daemon.waitForLog(/worker \d+ idle for \d+ s: stopped/);
    assert.equal(await ask(daemon.socket, 'good', PASSWORD, 'imap', ''), 'OK');
    assert.doesNotMatch(daemon.logs, /exited \(|died during/, 'stopping idle workers is not a crash');
  } finally {
    await daemon.dispose();
  }
});

test('out of descriptors: accepting pauses with a rate-limited log line, and resumes when descriptors free up', async () => {
  // A hard limit the daemon cannot raise: a few dozen descriptors beyond its own.
  const daemon = await Daemon.start({ env: pam.env, args: ['-n', '1', '--read-timeout', '60000'], wrap: ['prlimit', '--nofile=64:64', '--'] });
  const idle: Socket[] = [];
  try {
    for (let i = 0; i < 100; i++) idle.push(await idleConnection(daemon.socket));
    await daemon.waitForLog(/socket accept failure: EMFILE/);
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    const lines = daemon.logs.split('\n').filter((line) => line.includes('socket accept failure'));
    assert.ok(lines.length <= 3, `${lines.length} accept failure lines in ~1.5 s`);
    for (const socket of idle.splice(0)) socket.destroy();
    assert.equal(await ask(daemon.socket, 'good', PASSWORD, 'imap', ''), 'OK');
  } finally {
    for (const socket of idle) socket.destroy();
    await daemon.dispose();
  }
});

test('no password used here appears in any log line', () => {
  assertNoSecretsLogged([PASSWORD, 'wrong-password']);
});
