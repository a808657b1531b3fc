/**
 * The fast path with real processes: workers answer whole requests themselves and hand the
 * unusual ones to the primary (which process answered is read from the verbose log line's
 * pid); a worker that dies or hangs during its own check leaves its client a NO; the shared
 * cache under every worker at once; SIGHUP during a worker's check; exact status counters.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { Daemon } from './helpers/daemon.js';
import { PamFixture } from './helpers/pam-fixture.js';
import { PAM_EXEC_MODULE } from './helpers/paths.js';
import { childPids, eventually, isAlive } from './helpers/processes.js';
import { ask, exchange, replyFrame, request } from './helpers/raw-client.js';
import { saslauthdctl } from './helpers/saslauthdctl.js';
import { assertNoSecretsLogged } from './helpers/secrets.js';

const PASSWORD = 'Fast-path-pass-1';
const USERS = ['good', 'good2', 'good3', 'good4', 'good5'];
let pam: PamFixture;

before(() => {
  pam = new PamFixture(USERS.map((name) => ({ name, password: PASSWORD, service: 'imap' })));
  pam.addService('slow', `auth required ${PAM_EXEC_MODULE} /bin/sleep 0.4\nauth required @MATRIX@\naccount required @PERMIT@\n`);
  pam.addService('long', `auth required ${PAM_EXEC_MODULE} /bin/sleep 3\nauth required @MATRIX@\naccount required @PERMIT@\n`);
  pam.addService('hang', `auth required ${PAM_EXEC_MODULE} /bin/sleep 30\nauth required @MATRIX@\naccount required @PERMIT@\n`);
});

after(() => pam?.dispose());

/** The pid of the process that wrote the `auth success` line for `user` (saslauthd[PID] :…). */
function answeredBy(daemon: Daemon, user: string): number | undefined {
  const line = daemon.logs.split('\n').find((candidate) => candidate.includes(`auth success: [user=${user}]`));
  const pid = line && /saslauthd\[(\d+)\]/.exec(line)?.[1];
  return pid ? Number(pid) : undefined;
}

const pause = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

test('a whole request is answered by a worker; a slow, idle or over-long one is handed to the primary with its bytes', async () => {
  const daemon = await Daemon.start({ env: pam.env, args: ['-n', '2', '-d'] });
  try {
    await eventually(() => childPids(daemon.pid).length === 2, 'two workers');
    await pause(200); // both workers wait on the socket (ahead of the primary)
    const workers = childPids(daemon.pid);
    assert.deepEqual(await exchange(daemon.socket, request('good', PASSWORD, 'imap', '')), replyFrame('OK'));
    await daemon.waitForLog(/auth success: \[user=good\]/);
    assert.ok(workers.includes(answeredBy(daemon, 'good')!), 'a worker answered the whole request itself');

    // one byte per write: not whole within the worker's window
    assert.deepEqual(await exchange(daemon.socket, request('good2', PASSWORD, 'imap', ''), { pieceSize: 1 }), replyFrame('OK'));
    await daemon.waitForLog(/auth success: \[user=good2\]/);
    assert.equal(answeredBy(daemon, 'good2'), daemon.pid, 'the primary answered the byte-at-a-time request');

    // connected, silent for a while, then the request
    const late = await new Promise<Buffer>((resolve, reject) => {
      const socket = connect({ path: daemon.socket });
      const chunks: Buffer[] = [];
      socket.on('connect', () => setTimeout(() => socket.end(request('good3', PASSWORD, 'imap', '')), 150));
      socket.on('data', (chunk: Buffer) => chunks.push(chunk));
      socket.on('end', () => resolve(Buffer.concat(chunks)));
      socket.on('error', reject);
    });
    assert.deepEqual(late, replyFrame('OK'));
    await daemon.waitForLog(/auth success: \[user=good3\]/);
    assert.equal(answeredBy(daemon, 'good3'), daemon.pid, 'the primary answered the idle client');

    // more bytes after the request: the primary answers and drains them
    const trailing = Buffer.concat([request('good4', PASSWORD, 'imap', ''), Buffer.from('more bytes after the request')]);
    assert.deepEqual(await exchange(daemon.socket, trailing), replyFrame('OK'));
    await daemon.waitForLog(/auth success: \[user=good4\]/);
    assert.equal(answeredBy(daemon, 'good4'), daemon.pid, 'the primary answered the request with trailing bytes');
  } finally {
    await daemon.dispose();
  }
});

test('a worker killed during its own check: its client gets NO authentication worker failed, and a replacement serves', async () => {
  const daemon = await Daemon.start({ env: pam.env, args: ['-n', '1'] });
  try {
    await eventually(() => childPids(daemon.pid).length === 1, 'one worker');
    await pause(100);
    const [worker] = childPids(daemon.pid);
    const reply = ask(daemon.socket, 'good', PASSWORD, 'long', '');
    await pause(500); // the worker is in pam_exec's sleep, checking on its fast path
    process.kill(worker!, 'SIGKILL');
    assert.equal(await reply, 'NO authentication worker failed');
    await daemon.waitForLog(new RegExp(`worker ${worker} died during a request \\(SIGKILL\\); the client gets NO`));
    await daemon.waitForLog(/auth not checked: \[user=good\] \[service=long\] \[realm=\] \[mech=pam\] \[reason=authentication worker failed\]/);
    await eventually(() => childPids(daemon.pid).some((pid) => pid !== worker), 'a replacement worker runs');
    assert.equal(await ask(daemon.socket, 'good', PASSWORD, 'imap', ''), 'OK');
  } finally {
    await daemon.dispose();
  }
});

test('a worker hung past the deadline in its own check: its client gets NO authentication timed out, the worker is replaced', async () => {
  const daemon = await Daemon.start({ env: pam.env, args: ['-n', '1', '--job-timeout', '800'] });
  try {
    await eventually(() => childPids(daemon.pid).length === 1, 'one worker');
    await pause(100);
    const [worker] = childPids(daemon.pid);
    const started = Date.now();
    assert.equal(await ask(daemon.socket, 'good', PASSWORD, 'hang', ''), 'NO authentication timed out');
    assert.ok(Date.now() - started < 5_000, 'answered near the deadline, not after the module');
    await daemon.waitForLog(new RegExp(`did not answer within 800 ms: worker ${worker} killed and replaced \\(a client it answered itself\\)`));
    await daemon.waitForLog(/auth not checked: \[user=good\] \[service=hang\].*\[reason=authentication timed out\]/);
    await eventually(() => !isAlive(worker!), 'the hung worker is gone');
    await eventually(() => childPids(daemon.pid).length === 1 && childPids(daemon.pid)[0] !== worker, 'a replacement worker');
    assert.equal(await ask(daemon.socket, 'good', PASSWORD, 'imap', ''), 'OK');
  } finally {
    await daemon.dispose();
  }
});

test('the shared cache under every worker at once: no wrong OK, hits from every worker, SIGHUP flushes in between', async () => {
  const daemon = await Daemon.start({ env: pam.env, args: ['-n', '4', '-c'] });
  try {
    await eventually(() => childPids(daemon.pid).length === 4, 'four workers');
    const until = Date.now() + 3_000;
    const wrongOk: string[] = [];
    const failures: string[] = [];
    let rights = 0;
    let wrongs = 0;
    const client = async (index: number): Promise<void> => {
      for (let round = 0; Date.now() < until; round++) {
        const user = USERS[(index + round) % 4]!; // good..good4 share the cache; good5 is only guessed
        const reply = await ask(daemon.socket, user, PASSWORD, 'imap', '');
        rights++;
        if (reply !== 'OK') failures.push(`${user}: ${reply}`);
        if (round % 5 === 0) {
          // a wrong password for another account: never OK, whatever the cache holds
          const wrong = await ask(daemon.socket, 'good5', `${PASSWORD}-wrong-${index}-${round}`, 'imap', '');
          wrongs++;
          if (wrong === 'OK') wrongOk.push(`good5 round ${round}`);
        }
      }
    };
    const flusher = (async () => {
      while (Date.now() < until) {
        await pause(700);
        process.kill(daemon.pid, 'SIGHUP');
      }
    })();
    await Promise.all([...Array.from({ length: 8 }, (_, index) => client(index)), flusher]);
    assert.deepEqual(wrongOk, [], 'a wrong password got OK');
    assert.deepEqual(failures, [], 'a right password got NO');
    assert.ok(rights > 50 && wrongs > 10, `${rights} right and ${wrongs} wrong requests`);
    const status = JSON.parse((await saslauthdctl(['-m', daemon.runDirectory, 'status', '--json'])).stdout) as {
      cache: { hits: number; misses: number };
      requests: { ok: number; no: number };
    };
    assert.ok(status.cache.hits > 0, 'workers answered from the shared cache');
    assert.equal(status.requests.ok, rights, 'every OK counted once, whoever answered it');
    assert.equal(status.requests.no, wrongs, 'every NO counted once');
  } finally {
    await daemon.dispose();
  }
});

test('SIGHUP during a check on the fast path: the client gets its OK, the flushed cache is not refilled by it', async () => {
  const daemon = await Daemon.start({ env: pam.env, args: ['-n', '1', '-c'] });
  try {
    await eventually(() => childPids(daemon.pid).length === 1, 'one worker');
    await pause(100);
    const [worker] = childPids(daemon.pid);
    const inFlight = ask(daemon.socket, 'good', PASSWORD, 'slow', '');
    await pause(150);
    process.kill(daemon.pid, 'SIGHUP');
    await daemon.waitForLog(/SIGHUP received: .*1 workers recycled/);
    assert.equal(await inFlight, 'OK');
    await eventually(() => !isAlive(worker!), 'the worker is recycled after its check');
    // the check began before the flush: its success must not be in the cache
    pam.setUsers(USERS.filter((name) => name !== 'good').map((name) => ({ name, password: PASSWORD, service: 'imap' })));
    assert.equal(await ask(daemon.socket, 'good', PASSWORD, 'slow', ''), 'NO PAM auth error');
  } finally {
    pam.setUsers(USERS.map((name) => ({ name, password: PASSWORD, service: 'imap' })));
    await daemon.dispose();
  }
});

test('no password used here appears in any log line', () => {
  assertNoSecretsLogged([PASSWORD]);
});
