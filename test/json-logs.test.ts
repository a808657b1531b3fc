/**
 * `--log-format json`: every line the daemon writes (primary and workers) is one JSON object
 * from pino, the auth lines carry their fields as keys (event, user, service, realm,
 * mechanism, remote, reason) beside the original's text in `msg`, and no password appears.
 * PAM through pam_wrapper + pam_matrix.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { Daemon } from './helpers/daemon.js';
import { PamFixture } from './helpers/pam-fixture.js';
import { ask } from './helpers/raw-client.js';
import { assertNoDigestsLogged, assertNoSecretsLogged } from './helpers/secrets.js';
import type { LogFields } from '../src/log/logger.js';

const GOOD = 'Json-good-pass-1';
const WRONG = 'Json-wrong-pass-2';

interface JsonLine extends LogFields {
  readonly level: number;
  readonly time: number;
  readonly pid: number;
  readonly hostname: string;
  readonly name: string;
  readonly msg: string;
}

let pam: PamFixture;
let daemon: Daemon;
let lines: JsonLine[];

before(async () => {
  pam = new PamFixture([{ name: 'alice', password: GOOD, service: 'imap' }]);
  daemon = await Daemon.start({ env: pam.env, args: ['-n', '1', '-c', '--log-format', 'json'] });
  assert.equal(await ask(daemon.socket, 'alice', GOOD, 'imap', 'example.org'), 'OK');
  assert.equal(await ask(daemon.socket, 'alice', GOOD, 'imap', 'example.org'), 'OK'); // cached
  assert.equal(await ask(daemon.socket, 'alice', WRONG, 'imap', 'example.org', '192.0.2.9;41000'), 'NO PAM auth error');
  assert.equal(await ask(daemon.socket, 'evil] [remote=198.51.100.1', WRONG, 'imap', ''), 'NO PAM auth error');
  assert.equal(await ask(daemon.socket, '', WRONG, 'imap', ''), 'NO NULL login received');
  await daemon.stop();
  lines = daemon.logs
    .split('\n')
    .filter((line) => line.length > 0)
    .map((line) => {
      try {
        return JSON.parse(line) as JsonLine;
      } catch {
        throw new Error(`not a JSON line: ${line}`);
      }
    });
});
after(async () => {
  await daemon?.dispose();
  pam?.dispose();
});

test('every line is one JSON object with pino\'s keys, from the primary and from the workers', () => {
  assert.ok(lines.length >= 10, `${lines.length} lines`);
  for (const line of lines) {
    assert.equal(typeof line.level, 'number');
    assert.equal(typeof line.time, 'number');
    assert.equal(typeof line.msg, 'string');
    assert.equal(typeof line.hostname, 'string');
    assert.equal(line.name, 'saslauthd');
  }
  const pids = new Set(lines.map((line) => line.pid));
  assert.ok(pids.has(daemon.pid));
  assert.ok(pids.size >= 2, 'a worker logged too (auth_pam DEBUG line)');
  assert.ok(lines.some((line) => line.msg === `listening on socket: ${daemon.socket}`));
  assert.ok(lines.some((line) => line.msg === 'master exited: 0'));
});

test('an auth failure carries its fields, and the original text in msg', () => {
  const failure = lines.find((line) => line.event === 'auth failure' && line.user === 'alice');
  assert.ok(failure, 'auth failure line');
  assert.equal(failure.level, 30);
  assert.deepEqual(
    { user: failure.user, service: failure.service, realm: failure.realm, mechanism: failure.mechanism, remote: failure.remote, reason: failure.reason },
    { user: 'alice', service: 'imap', realm: 'example.org', mechanism: 'pam', remote: '192.0.2.9', reason: 'PAM auth error' },
  );
  assert.equal(failure.msg, 'auth failure: [user=alice] [service=imap] [realm=example.org] [remote=192.0.2.9] [mech=pam] [reason=PAM auth error]');
});

test('successes (-d) carry their fields too; the cached one has no mechanism, as its text', () => {
  const success = lines.find((line) => line.event === 'auth success');
  assert.ok(success);
  assert.equal(success.level, 20);
  assert.equal(success.mechanism, 'pam');
  assert.equal(success.reason, undefined);
  assert.equal(success.remote, undefined, 'no address was sent');
  const cached = lines.find((line) => line.event === 'auth success (cached)');
  assert.ok(cached);
  assert.equal(cached.user, 'alice');
  assert.equal(cached.mechanism, undefined);
});

test('a login cannot forge a field: brackets are escaped in the field and the text alike', () => {
  const forged = lines.find((line) => line.event === 'auth failure' && line.user?.startsWith('evil'));
  assert.ok(forged);
  assert.equal(forged.user, 'evil\\x5d \\x5bremote=198.51.100.1');
  assert.equal(forged.remote, undefined);
  assert.match(forged.msg, /^auth failure: \[user=evil\\x5d \\x5bremote=198\.51\.100\.1\] \[service=imap\] \[realm=\] \[mech=pam\]/);
});

test('other lines stay messages (the NULL login refusal)', () => {
  assert.ok(lines.some((line) => line.msg === 'NULL login received' && line.level === 50));
});

test('no password, digest or key in any line', () => {
  assertNoSecretsLogged([GOOD, WRONG]);
  assertNoDigestsLogged();
});
