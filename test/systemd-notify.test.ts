/**
 * sd_notify (Type=notify units): READY=1 with MAINPID and a STATUS only once the socket
 * listens, STOPPING=1 on SIGTERM; nothing happens without $NOTIFY_SOCKET. The test plays
 * systemd: a datagram socket named by $NOTIFY_SOCKET.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { DatagramListener } from './helpers/dgram-listener.js';
import { SASLAUTHD_JS } from './helpers/paths.js';
import { ask } from './helpers/raw-client.js';

let scratch: string;
let systemd: DatagramListener;

before(async () => {
  scratch = mkdtempSync('/tmp/sts-notify-');
  systemd = await DatagramListener.bind(join(scratch, 'notify'));
});

after(() => {
  systemd.close();
  rmSync(scratch, { recursive: true, force: true });
});

/** True when something accepts connections on the Unix socket at `path`. */
function answers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ path });
    socket.on('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.on('error', () => resolve(false));
  });
}

test('READY=1 arrives only once the socket listens; STOPPING=1 on SIGTERM', async () => {
  const directory = mkdtempSync(join(scratch, 'run-'));
  const socket = join(directory, 'mux');
  const daemon = spawn(process.execPath, [SASLAUTHD_JS, '-f', '-a', 'pam', '-m', directory, '-n', '2'], {
    env: { ...process.env, NOTIFY_SOCKET: systemd.path },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  daemon.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const ready = await systemd.waitFor((message) => message.includes('READY=1'), 20_000);
  // At the moment systemd hears READY=1, clients can connect and get answers.
  assert.ok(existsSync(socket), 'the socket exists when READY=1 is sent');
  assert.equal(await answers(socket), true);
  assert.equal(await ask(socket, '', 'x', 'imap', ''), 'NO NULL login received');
  assert.deepEqual(ready.split('\n').sort(), [`MAINPID=${daemon.pid}`, 'READY=1', `STATUS=listening on socket: ${socket}`]);
  assert.ok(stderr.includes('listening on socket'), stderr);
  assert.equal(systemd.messages.length, 1, 'nothing before READY=1');

  daemon.kill('SIGTERM');
  const stopping = await systemd.waitFor((message) => message.includes('STOPPING=1'));
  assert.match(stopping, /^STOPPING=1\nSTATUS=SIGTERM received: shutting down$/);
  const code = await new Promise((resolve) => daemon.on('exit', resolve));
  assert.equal(code, 0);
});

test('a daemon that cannot start never reports READY=1', async () => {
  const before = systemd.messages.length;
  const daemon = spawn(process.execPath, [SASLAUTHD_JS, '-f', '-a', 'pam', '-m', 'relative/dir'], {
    env: { ...process.env, NOTIFY_SOCKET: systemd.path },
    stdio: 'ignore',
  });
  const code = await new Promise((resolve) => daemon.on('exit', resolve));
  assert.notEqual(code, 0);
  await new Promise((resolve) => setTimeout(resolve, 300));
  assert.equal(systemd.messages.length, before);
});
