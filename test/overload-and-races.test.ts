/**
 * The primary under pressure, with pam_wrapper: overload refusals cost a bounded number of
 * log lines, a success computed across a SIGHUP does not refill the flushed cache, and many
 * concurrent failure delays make Node print no warning.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { Daemon } from './helpers/daemon.js';
import { PamFixture } from './helpers/pam-fixture.js';
import { PAM_EXEC_MODULE, PAM_FAILDELAY_MODULE } from './helpers/paths.js';
import { ask } from './helpers/raw-client.js';
import { assertNoSecretsLogged } from './helpers/secrets.js';

const PASSWORD = 'Overload-pass-3';
const NEW_PASSWORD = 'Overload-pass-4';
let pam: PamFixture;

before(() => {
  pam = new PamFixture([
    { name: 'good', password: PASSWORD, service: 'imap' },
    { name: 'hup', password: PASSWORD, service: 'imap' },
  ]);
  pam.addService('slow', `auth required ${PAM_EXEC_MODULE} /bin/sleep 0.2\nauth required @MATRIX@\naccount required @PERMIT@\n`);
  pam.addService('slow1', `auth required ${PAM_EXEC_MODULE} /bin/sleep 1\nauth required @MATRIX@\naccount required @PERMIT@\n`);
  pam.addService('delay', `auth optional ${PAM_FAILDELAY_MODULE} delay=800000\nauth required @MATRIX@\naccount required @PERMIT@\n`);
});

after(() => pam?.dispose());

test('-n 1 --max-queue 1, a slow PAM stack, thousands of requests: a bounded number of log lines a second, and it keeps answering', async () => {
  const daemon = await Daemon.start({ env: pam.env, args: ['-n', '1', '--max-queue', '1'] });
  try {
    const total = 3_000;
    const concurrency = 50;
    const replies = new Map<string, number>();
    let next = 0;
    const client = async (): Promise<void> => {
      while (next < total) {
        const index = next++;
        // a mix: the known user, unknown users, the same wrong password again and again
        const login = index % 3 === 0 ? 'good' : `flood${index % 40}`;
        const reply = await ask(daemon.socket, login, index % 3 === 0 ? PASSWORD : 'wrong-pass-9', 'slow', '');
        replies.set(reply, (replies.get(reply) ?? 0) + 1);
      }
    };
    const startedAt = Date.now();
    const linesBefore = daemon.lineTimes.length;
    await Promise.all(Array.from({ length: concurrency }, client));
    const seconds = (Date.now() - startedAt) / 1000;
    const answered = [...replies.values()].reduce((sum, count) => sum + count, 0);
    assert.equal(answered, total, 'every request got a reply');
    assert.ok((replies.get('NO server busy') ?? 0) > total / 2, `most were refused: ${JSON.stringify([...replies])}`);
    // Lines per wall-clock second of the run: without rate limiting, two per refusal (thousands).
    const perSecond = new Map<number, number>();
    for (const at of daemon.lineTimes.slice(linesBefore)) perSecond.set(Math.floor(at / 1000), (perSecond.get(Math.floor(at / 1000)) ?? 0) + 1);
    const busiest = Math.max(...perSecond.values());
    // per second: a few summary lines per kind, plus ~5 real checks (0.2 s each) with their
    // debug, failure and response lines (-d is verbose)
    assert.ok(busiest <= 60, `${busiest} log lines in one second (run of ${seconds.toFixed(1)} s, ${daemon.lineTimes.length - linesBefore} lines)`);
    // the tally of a period is written when the period ends
    await daemon.waitForLog(/job queue full \(1 waiting\): \d{3,} requests refused, the last: auth not checked: \[user=/, 3_000);
    assert.equal(await ask(daemon.socket, 'good', PASSWORD, 'imap', ''), 'OK', 'it still answers');
    assert.doesNotMatch(daemon.logs, /Warning|exited \(|died during/);
  } finally {
    await daemon.dispose();
  }
});

test('SIGHUP during a slow successful check: the flushed cache is not refilled by it', async () => {
  const daemon = await Daemon.start({ env: pam.env, args: ['-n', '2', '-c'] });
  const users = (good: string, hup: string) => [
    { name: 'good', password: good, service: 'imap' },
    { name: 'hup', password: hup, service: 'imap' },
  ];
  try {
    // Control: without a SIGHUP, a slow success is cached and still answers after the
    // password changes behind the daemon's back (this is what must not happen below).
    assert.equal(await ask(daemon.socket, 'good', PASSWORD, 'slow1', ''), 'OK');
    pam.setUsers(users(NEW_PASSWORD, PASSWORD));
    assert.equal(await ask(daemon.socket, 'good', PASSWORD, 'slow1', ''), 'OK', 'control: answered from the cache');
    // Across a SIGHUP: the check started before the flush, its success must not be cached.
    const inFlight = ask(daemon.socket, 'hup', PASSWORD, 'slow1', '');
    await new Promise((resolve) => setTimeout(resolve, 400));
    process.kill(daemon.pid, 'SIGHUP');
    await daemon.waitForLog(/SIGHUP received: credential cache flushed \(1 entries\)/);
    assert.equal(await inFlight, 'OK');
    pam.setUsers(users(NEW_PASSWORD, NEW_PASSWORD));
    assert.equal(await ask(daemon.socket, 'hup', PASSWORD, 'slow1', ''), 'NO PAM auth error', 'the old password went to PAM again');
    assert.equal(await ask(daemon.socket, 'hup', NEW_PASSWORD, 'slow1', ''), 'OK');
  } finally {
    pam.setUsers(users(PASSWORD, PASSWORD));
    await daemon.dispose();
  }
});

test('twenty concurrent failure delays: no Node warning in the daemon output', async () => {
  const daemon = await Daemon.start({ env: pam.env, args: ['-n', '2'] });
  try {
    const replies = await Promise.all(Array.from({ length: 20 }, (_, i) => ask(daemon.socket, `delayed${i}`, 'wrong-pass-9', 'delay', '')));
    assert.deepEqual(new Set(replies), new Set(['NO PAM auth error']));
    assert.doesNotMatch(daemon.logs, /Warning|MaxListeners/);
  } finally {
    await daemon.dispose();
  }
});

test('no password used here appears in any log line', () => {
  assertNoSecretsLogged([PASSWORD, NEW_PASSWORD, 'wrong-pass-9']);
});
