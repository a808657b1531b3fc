/**
 * The daemon under hostile and faulty conditions, all against the real daemon with PAM
 * through pam_wrapper + pam_matrix:
 *   - a live fuzz: thousands of random and mutated requests; it never crashes, never
 *     answers OK to wrong credentials, keeps serving;
 *   - "nothing lost": thousands of mixed requests while workers are SIGKILLed at random;
 *     every request gets exactly one reply and every OK is for right credentials;
 *   - abuse: 1,000 idle connections and 1,000 byte-at-a-time senders while a normal client
 *     keeps authenticating.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Socket } from 'node:net';
import { cString } from '../src/protocol/codec.js';
import { Daemon } from './helpers/daemon.js';
import { replyFrames, runConcurrently, seededRandom } from './helpers/load.js';
import { PamFixture } from './helpers/pam-fixture.js';
import { PAM_EXEC_MODULE } from './helpers/paths.js';
import { childPids, isAlive } from './helpers/processes.js';
import { ask, droppedByKill, exchange, idleConnection, request } from './helpers/raw-client.js';
import { assertNoSecretsLogged } from './helpers/secrets.js';

const USERS: [string, string][] = [
  ['alice', 'Fuzz-alice-pw-1'],
  ['bob', 'Fuzz-bob-pw-22'],
  ['carol', 'Fuzz-carol-pw-333'],
];
const SEED = Number(process.env.FUZZ_SEED ?? 20261124);

let pam: PamFixture;
before(() => {
  pam = new PamFixture(USERS.map(([name, password]) => ({ name, password, service: 'imap' })));
  // "slowish": 20 ms in PAM, so random kills land in the middle of jobs
  pam.addService('slowish', `auth required ${PAM_EXEC_MODULE} /bin/sleep 0.02\nauth required @MATRIX@\naccount required @PERMIT@\n`);
});
after(() => pam?.dispose());

/** Would PAM (pam_matrix, service imap or slowish) accept these bytes? The C-string view decides. */
function rightCredentials(login: Buffer, password: Buffer, service: Buffer): boolean {
  const user = cString(login).toString('latin1');
  const secret = cString(password).toString('latin1');
  const svc = cString(service).toString('latin1');
  return (svc === 'imap' || svc === 'slowish') && USERS.some(([name, pw]) => name === user && pw === secret);
}

test('live fuzz: random and mutated requests never crash it and never get a wrong OK', async () => {
  const daemon = await Daemon.start({ env: pam.env, args: ['-n', '3', '--read-timeout', '500'] });
  const random = seededRandom(SEED);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
  const bytes = (length: number): Buffer => Buffer.from(Array.from({ length }, () => Math.floor(random() * 256)));
  try {
    const results = await runConcurrently(3000, 16, async (index) => {
      const [name, password] = pick(USERS);
      const fields: Buffer[] = [Buffer.from(name), Buffer.from(random() < 0.5 ? password : `${password}x`), Buffer.from('imap'), Buffer.alloc(0)];
      let wire: Buffer = request(...fields);
      switch (Math.floor(random() * 8)) {
        case 0: // flip a byte
          wire = Buffer.from(wire);
          wire[Math.floor(random() * wire.length)]! ^= 1 + Math.floor(random() * 255);
          break;
        case 1: // cut short
          wire = wire.subarray(0, Math.floor(random() * wire.length));
          break;
        case 2: // garbage after the request
          wire = Buffer.concat([wire, bytes(Math.floor(random() * 40))]);
          break;
        case 3: // pure garbage
          wire = bytes(Math.floor(random() * 600));
          break;
        case 4: // a length prefix rewritten
          wire = Buffer.from(wire);
          wire.writeUInt16BE(Math.floor(random() * 0x10000), 0);
          break;
        case 5: // a NUL inside the password
          fields[1] = Buffer.concat([fields[1]!.subarray(0, 3), Buffer.from([0]), fields[1]!.subarray(3)]);
          wire = request(...fields);
          break;
        case 6: // a random field replaced by random bytes of random length
          fields[Math.floor(random() * 4)] = bytes(Math.floor(random() * 300));
          wire = request(...fields);
          break;
        default: // unchanged
          break;
      }
      const halfClose = random() < 0.9; // the rest stall until the read deadline
      const received = await exchange(daemon.socket, wire, { endAfterSend: halfClose, deadlineMs: 15_000 });
      const frames = replyFrames(received);
      assert.ok(frames.length <= 1, `one reply at most (#${index})`);
      const reply = frames[0];
      if (reply !== undefined) assert.match(reply, /^(OK|NO)/);
      if (reply !== undefined && reply.startsWith('OK')) {
        // decode what was really sent: the 4 fields as the daemon reads them
        const sent: Buffer[] = [];
        let offset = 0;
        for (let i = 0; i < 4; i++) {
          const length = wire.readUInt16BE(offset);
          sent.push(wire.subarray(offset + 2, offset + 2 + length));
          offset += 2 + length;
        }
        assert.ok(rightCredentials(sent[0]!, sent[1]!, sent[2]!), `OK for wrong credentials (#${index}, seed ${SEED})`);
      }
      return reply;
    });
    const answered = results.filter((reply) => reply !== undefined);
    assert.ok(answered.length > 2000, `most requests were answered: ${answered.length}`);
    assert.ok(answered.some((reply) => reply === 'OK') && answered.some((reply) => reply?.startsWith('NO')));
    assert.ok(isAlive(daemon.pid), 'the daemon is alive');
    assert.equal(childPids(daemon.pid).length, 3, 'no worker was lost');
    assert.equal(await ask(daemon.socket, 'alice', 'Fuzz-alice-pw-1', 'imap', ''), 'OK');
    assert.doesNotMatch(daemon.logs, /died|exited \(/);
  } finally {
    await daemon.dispose();
  }
});

// A request the killed worker was answering itself (the fast path) dies with it: its client
// sees the connection closed, as with the original (issue 13 allows "NO or a clean close"; why
// no copy of each client is kept for this: workers/fast-path-hub.ts). Every other request in
// flight — in the primary, queued, or handed over — still gets exactly one reply.
test('nothing lost: mixed requests while workers are killed at random — one reply each (or a close for a killed worker\'s own client), no wrong OK', async () => {
  const daemon = await Daemon.start({ env: pam.env, args: ['-n', '4'] });
  const random = seededRandom(SEED + 1);
  let killing = true;
  let kills = 0;
  const killer = (async () => {
    while (killing) {
      await new Promise((resolve) => setTimeout(resolve, 100 + random() * 150));
      const workers = childPids(daemon.pid);
      if (workers.length > 0 && killing) {
        try {
          process.kill(workers[Math.floor(random() * workers.length)]!, 'SIGKILL');
          kills++;
        } catch {
          // it exited meanwhile
        }
      }
    }
  })();
  try {
    const replies = await runConcurrently(3000, 16, async (index) => {
      const [name, password] = USERS[index % USERS.length]!;
      const right = index % 4 !== 0;
      const service = index % 2 === 0 ? 'slowish' : 'imap';
      const sentPassword = right ? password : `${password}-wrong`;
      const received = await exchange(daemon.socket, request(name, sentPassword, service, ''), { deadlineMs: 40_000 }).catch(droppedByKill);
      if (received.length === 0) return 'closed';
      const frames = replyFrames(received);
      assert.equal(frames.length, 1, `exactly one reply (#${index})`);
      const reply = frames[0]!;
      if (reply === 'OK') assert.ok(right, `OK for a wrong password (#${index})`);
      else assert.match(reply, /^NO (PAM auth error|authentication worker failed)$/);
      return reply;
    });
    killing = false;
    await killer;
    assert.ok(kills >= 5, `workers were killed during the run: ${kills}`);
    const ok = replies.filter((reply) => reply === 'OK').length;
    const lost = replies.filter((reply) => reply === 'NO authentication worker failed' || reply === 'closed').length;
    assert.ok(ok > 2000, `right passwords mostly succeeded: ${ok} OK, ${lost} lost to kills`);
    assert.ok(lost <= kills, `at most one request lost per kill (${lost} NO or closed, ${kills} kills)`);
    const deadline = Date.now() + 10_000;
    while (childPids(daemon.pid).length !== 4 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal(childPids(daemon.pid).length, 4, 'the pool refilled');
    assert.equal(await ask(daemon.socket, 'bob', 'Fuzz-bob-pw-22', 'imap', ''), 'OK');
  } finally {
    killing = false;
    await daemon.dispose();
  }
});

test('abuse: 1,000 idle connections and 1,000 byte-at-a-time senders do not stop a normal client', async () => {
  const daemon = await Daemon.start({ env: pam.env, args: ['-n', '2', '--read-timeout', '60000'] });
  const idle: Socket[] = [];
  let trickling = true;
  try {
    for (let i = 0; i < 1000; i++) idle.push(await idleConnection(daemon.socket));
    const slowRequest = request('alice', 'Fuzz-alice-pw-1', 'imap', '');
    const tricklers: Socket[] = [];
    for (let i = 0; i < 1000; i++) tricklers.push(await idleConnection(daemon.socket));
    // every trickler sends one byte every 50 ms: a whole request takes over a second
    const trickle = (async () => {
      for (let offset = 0; offset < slowRequest.length && trickling; offset++) {
        for (const socket of tricklers) if (!socket.destroyed) socket.write(slowRequest.subarray(offset, offset + 1));
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    })();
    const trickleReplies = tricklers.map(
      (socket) =>
        new Promise<string>((resolve) => {
          const chunks: Buffer[] = [];
          socket.on('data', (chunk: Buffer) => chunks.push(chunk));
          socket.on('close', () => resolve(Buffer.concat(chunks).subarray(2).toString('latin1')));
          socket.on('error', () => {});
        }),
    );
    const latencies: number[] = [];
    for (let i = 0; i < 20; i++) {
      const started = process.hrtime.bigint();
      assert.equal(await ask(daemon.socket, 'bob', 'Fuzz-bob-pw-22', 'imap', ''), 'OK');
      latencies.push(Number(process.hrtime.bigint() - started) / 1e6);
    }
    await trickle;
    for (const socket of tricklers) socket.end();
    const trickled = await Promise.all(trickleReplies);
    assert.equal(trickled.filter((reply) => reply === 'OK').length, 1000, 'every byte-at-a-time client was answered');
    // Not a speed assertion: with workers pinned by clients (the C daemon's behaviour) these
    // requests would wait for the 60 s read deadline. They must not wait for the abusers.
    assert.ok(Math.max(...latencies) < 5_000, `normal requests wait for nobody: ${latencies.map((l) => l.toFixed(1)).join(' ')} ms`);
    assert.ok(isAlive(daemon.pid));
  } finally {
    trickling = false;
    for (const socket of idle) socket.destroy();
    await daemon.dispose();
  }
});

test('no password used here appears in any log line', () => {
  assertNoSecretsLogged(USERS.map(([, password]) => password));
});
