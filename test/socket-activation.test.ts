/**
 * systemd socket activation (src/server/socket-activation.ts): which inherited descriptor the
 * daemon takes (the logic, on a fake /proc), and the daemon started the way systemd starts it
 * — by systemd's own systemd-socket-activate, which listens, waits for the first client and
 * execs the daemon with LISTEN_FDS/LISTEN_PID — answering on the socket it did not bind, and
 * leaving that socket's file in place when it stops.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { SASLAUTHD_JS } from './helpers/paths.js';
import { ask } from './helpers/raw-client.js';
import { eventually } from './helpers/processes.js';
import { InheritedSocketError, SD_LISTEN_FDS_START, inheritedListener, unixSocketEntry, type ActivationEnvironment } from '../src/server/socket-activation.js';

const ACTIVATE = '/usr/bin/systemd-socket-activate';
const skip = !existsSync(ACTIVATE) && 'needs systemd-socket-activate (package systemd)';
const TABLE = `Num       RefCount Protocol Flags    Type St Inode Path
0000000000000000: 00000002 00000000 00010000 0001 01 4242 /run/saslauthd/mux
0000000000000000: 00000002 00000000 00000000 0001 03 4343 /run/saslauthd/mux
0000000000000000: 00000002 00000000 00010000 0002 01 4444 /run/saslauthd/dgram
0000000000000000: 00000002 00000000 00010000 0001 01 4545 /var/spool/postfix/var/run/saslauthd/mux
`;

function environment(env: NodeJS.ProcessEnv, inode: number | undefined): ActivationEnvironment {
  return {
    env,
    pid: 1234,
    socketInode: (fd) => (fd === SD_LISTEN_FDS_START ? inode : undefined),
    unixSockets: () => TABLE,
    sameFile: (a, b) => a.replace(/^\/var\/run\//, '/run/') === b.replace(/^\/var\/run\//, '/run/'),
  };
}

test('the inherited socket is taken only when LISTEN_PID is this process and it listens on the mux', () => {
  const mux = '/run/saslauthd/mux';
  assert.deepEqual(inheritedListener(mux, environment({ LISTEN_PID: '1234', LISTEN_FDS: '1' }, 4242)), { fd: 3 });
  assert.deepEqual(inheritedListener('/var/run/saslauthd/mux', environment({ LISTEN_PID: '1234', LISTEN_FDS: '1' }, 4242)), { fd: 3 }, 'the same file');
  assert.equal(inheritedListener(mux, environment({}, 4242)), undefined, 'not socket-activated');
  assert.equal(inheritedListener(mux, environment({ LISTEN_PID: '99', LISTEN_FDS: '1' }, 4242)), undefined, 'meant for another process');
  assert.equal(inheritedListener(mux, environment({ LISTEN_PID: '1234', LISTEN_FDS: '0' }, 4242)), undefined);
  const refusals: [NodeJS.ProcessEnv, number | undefined, RegExp][] = [
    [{ LISTEN_PID: '1234', LISTEN_FDS: '2' }, 4242, /passed 2 sockets/],
    [{ LISTEN_PID: '1234', LISTEN_FDS: '1' }, undefined, /is not a socket/],
    [{ LISTEN_PID: '1234', LISTEN_FDS: '1' }, 9999, /not a Unix socket/],
    [{ LISTEN_PID: '1234', LISTEN_FDS: '1' }, 4343, /not a listening stream socket/],
    [{ LISTEN_PID: '1234', LISTEN_FDS: '1' }, 4444, /not a listening stream socket/],
    [{ LISTEN_PID: '1234', LISTEN_FDS: '1' }, 4545, /is \/var\/spool\/postfix\/var\/run\/saslauthd\/mux, not \/run\/saslauthd\/mux/],
  ];
  for (const [env, inode, reason] of refusals) {
    assert.throws(() => inheritedListener(mux, environment(env, inode)), (error: unknown) => error instanceof InheritedSocketError && reason.test(error.message));
  }
});

test('the activation variables are removed: the workers must not take them for theirs', () => {
  const env: NodeJS.ProcessEnv = { LISTEN_PID: '1234', LISTEN_FDS: '1', LISTEN_FDNAMES: 'saslauthd.socket', PATH: '/bin' };
  inheritedListener('/run/saslauthd/mux', environment(env, 4242));
  assert.deepEqual(env, { PATH: '/bin' });
  const other: NodeJS.ProcessEnv = { LISTEN_PID: '99', LISTEN_FDS: '1' };
  inheritedListener('/run/saslauthd/mux', environment(other, 4242));
  assert.deepEqual(other, {});
});

test('unixSocketEntry reads /proc/net/unix lines (flags and type in hex, the path last)', () => {
  assert.deepEqual(unixSocketEntry(TABLE, 4545), { flags: 0x10000, type: 1, path: '/var/spool/postfix/var/run/saslauthd/mux' });
  assert.equal(unixSocketEntry(TABLE, 1), undefined);
});

let scratch: string;
before(() => {
  scratch = mkdtempSync('/tmp/sts-activate-');
});
after(() => rmSync(scratch, { recursive: true, force: true }));

test('started by systemd-socket-activate: answers on the socket it was given, leaves its file when stopping', { skip }, async () => {
  const directory = mkdtempSync(join(scratch, 'run-'));
  const socket = join(directory, 'mux');
  const daemon = spawn(ACTIVATE, ['-l', socket, process.execPath, SASLAUTHD_JS, '-f', '-a', 'pam', '-m', directory, '-n', '1'], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  daemon.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  try {
    await eventually(() => existsSync(socket), 'systemd-socket-activate listens');
    const inode = statSync(socket).ino;
    // The first client starts the daemon and waits in the backlog meanwhile.
    assert.equal(await ask(socket, '', 'x', 'imap', ''), 'NO NULL login received', stderr);
    assert.equal(await ask(socket, '', 'y', 'imap', ''), 'NO NULL login received');
    assert.equal(statSync(socket).ino, inode, 'the daemon did not bind a socket of its own');
    assert.match(stderr, /listening on socket: /);
    daemon.kill('SIGTERM');
    const code = await new Promise((resolve) => (daemon.exitCode !== null ? resolve(daemon.exitCode) : daemon.on('exit', resolve)));
    assert.equal(code, 0, stderr);
    assert.ok(existsSync(socket), 'the socket file is systemd’s: it stays');
    assert.ok(!existsSync(join(directory, 'saslauthd.pid')), 'the pid file goes as usual');
  } finally {
    if (daemon.exitCode === null) daemon.kill('SIGKILL');
  }
});

test('a socket from systemd on another path than -m’s mux is refused with the reason', { skip }, async () => {
  const directory = mkdtempSync(join(scratch, 'run-'));
  const elsewhere = join(scratch, 'elsewhere.sock');
  const daemon = spawn(ACTIVATE, ['-l', elsewhere, process.execPath, SASLAUTHD_JS, '-f', '-a', 'pam', '-m', directory, '-n', '1'], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  daemon.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  try {
    await eventually(() => existsSync(elsewhere), 'systemd-socket-activate listens');
    await ask(elsewhere, '', 'x', 'imap', '').catch(() => undefined); // starts the daemon
    const code = await new Promise((resolve) => (daemon.exitCode !== null ? resolve(daemon.exitCode) : daemon.on('exit', resolve)));
    assert.equal(code, 1);
    assert.match(stderr, new RegExp(`could not use the socket from systemd: ${join(directory, 'mux')}`));
    assert.match(stderr, /saslauthd\.socket's ListenStream= and -m must agree/);
    assert.ok(!existsSync(join(directory, 'mux')), 'no socket of its own either');
  } finally {
    if (daemon.exitCode === null) daemon.kill('SIGKILL');
  }
});
