/**
 * A backend that cannot be asked (its server down) gives the client the mechanism's own NO,
 * but for the daemon it is its trouble, not a wrong password: an `auth not checked:` line,
 * never `auth failure:` (fail2ban would ban the user for the server's outage), and nothing
 * counted against the login (retries are not pushed into the guessing bounds).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Daemon } from './helpers/daemon.js';
import { ask } from './helpers/raw-client.js';

/** A loopback port with nothing listening on it (bound, then closed). */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

test('rimap, server down: the original reply, an "auth not checked" line, no "auth failure"', async () => {
  const port = await closedPort();
  const daemon = await Daemon.start({ mechanism: 'rimap', args: ['-O', `127.0.0.1/${port}`, '-n', '1'] });
  try {
    for (let i = 0; i < 3; i++) {
      assert.equal(await ask(daemon.socket, 'outage', `Right-pass-${i}`, 'imap', ''), "NO [ALERT] Couldn't contact remote authentication server");
    }
    await daemon.waitForLog(/auth not checked: \[user=outage\] .*\[mech=rimap\] \[reason=\[ALERT\] Couldn't contact remote authentication server\]/);
    assert.doesNotMatch(daemon.logs, /auth failure:/);
  } finally {
    await daemon.dispose();
  }
});

test('httpform, server down: the same', async () => {
  const port = await closedPort();
  const directory = mkdtempSync(join(tmpdir(), 'sts-unavail-'));
  const config = join(directory, 'saslauthd.conf');
  writeFileSync(config, `httpform_host: 127.0.0.1\nhttpform_port: ${port}\nhttpform_uri: /auth\nhttpform_data: user=%u&pass=%p\n`);
  const daemon = await Daemon.start({ mechanism: 'httpform', args: ['-O', config, '-n', '1'] });
  try {
    const reply = await ask(daemon.socket, 'outage', 'Right-pass-9', 'imap', '');
    assert.match(reply, /^NO \[ALERT\] /);
    await daemon.waitForLog(/auth not checked: \[user=outage\] .*\[mech=httpform\]/);
    assert.doesNotMatch(daemon.logs, /auth failure:/);
  } finally {
    await daemon.dispose();
    rmSync(directory, { recursive: true, force: true });
  }
});
