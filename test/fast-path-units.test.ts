/**
 * The fast path's pieces without worker processes: a worker's decisions (FastPath with its
 * parts injected, a socket pair standing in for the client), the activity record, and the
 * fast path's channel frames.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { encodeRequest, encodeReply } from '../src/protocol/codec.js';
import { createLogger } from '../src/log/logger.js';
import { closeFd, readInto, sendSome, setNonBlocking, socketPair } from '../src/native/posix-sockets.js';
import { KeyedDigest } from '../src/server/keyed-digest.js';
import type { AuthResult, Mechanism } from '../src/mechanisms/types.js';
import { ActivityState, WorkerActivity } from '../src/shared/worker-activity.js';
import { FastPath, type FastPathParts } from '../src/workers/fast-path/fast-path.js';
import { decodeFill, decodeHandoff, encodeFill, encodeHandoff, type CacheFill, type Handoff } from '../src/workers/fast-path-frames.js';

const log = createLogger({ format: 'foreground', verbose: false });

/** A connected client: `client` is the test's end, `server` the worker's (non-blocking). */
function connection(): { client: number; server: number } {
  const [client, server] = socketPair();
  setNonBlocking(server);
  setNonBlocking(client);
  return { client, server };
}

function readAll(fd: number): Buffer {
  const chunk = Buffer.alloc(4096);
  const count = readInto(fd, chunk);
  return count > 0 ? Buffer.from(chunk.subarray(0, count)) : Buffer.alloc(0);
}

interface Recorded {
  events: string[];
  handoffs: Handoff[];
  fills: CacheFill[];
  counted: string[];
}

function fastPath(overrides: Partial<FastPathParts> & { reply?: AuthResult; suspect?: boolean; hit?: boolean }): { path: FastPath; seen: Recorded } {
  const seen: Recorded = { events: [], handoffs: [], fills: [], counted: [] };
  const mechanism: Mechanism = {
    blocking: true,
    authenticate: () => {
      seen.events.push('mechanism');
      return overrides.reply ?? { reply: 'OK' };
    },
  } as unknown as Mechanism;
  const parts: FastPathParts = {
    mechanism,
    mechanismName: 'pam',
    appendRealm: false,
    cache: {
      lookup: () => (overrides.hit ? 'hit' : 'miss'),
      generation: 7,
      keyDigestOf: () => Buffer.alloc(32, 1),
      macOf: () => Buffer.alloc(32, 2),
    },
    suspects: { maybeAny: () => overrides.suspect === true, isSuspect: () => overrides.suspect === true },
    digest: new KeyedDigest(Buffer.alloc(32, 9)),
    counters: { record: (result) => void seen.counted.push(result) },
    roomForClients: () => true,
    activity: {
      reading: () => void seen.events.push('reading'),
      job: () => void seen.events.push('job'),
      begin: () => void seen.events.push('begin'),
      replying: () => void seen.events.push('replying'),
      end: (checked) => void seen.events.push(`end:${checked}`),
    },
    log,
    handOff: (fd, handoff) => {
      seen.events.push('handoff');
      seen.handoffs.push({ ...handoff, received: Buffer.from(handoff.received) });
      closeFd(fd);
    },
    fill: (fill) => {
      seen.events.push('fill');
      seen.fills.push(fill);
    },
    ...overrides,
  };
  return { path: new FastPath(parts), seen };
}

const REQUEST = encodeRequest([Buffer.from('bob'), Buffer.from('secret-pw'), Buffer.from('imap'), Buffer.from('')]);

test('a whole request, mechanism OK: the cache entry is stored before the reply', () => {
  const { client, server } = connection();
  sendSome(client, REQUEST);
  const { path, seen } = fastPath({});
  const check = path.take(server);
  assert.ok(check, 'the worker checks it itself');
  path.checkNow(check);
  assert.deepEqual(readAll(client), encodeReply('OK'));
  assert.deepEqual(seen.events, ['reading', 'begin', 'mechanism', 'fill', 'replying', 'end:true']);
  assert.equal(seen.fills[0]!.generation, 7);
  assert.deepEqual(seen.fills[0]!.user, Buffer.from('bob'));
  assert.deepEqual(seen.counted, ['ok']);
  assert.equal(check.request.password.every((byte) => byte === 0), true, 'the password is wiped');
  closeFd(client);
});

test('a NO goes to the primary with the request, the reply and the delay; nothing is written to the client', () => {
  const { client, server } = connection();
  sendSome(client, REQUEST);
  const { path, seen } = fastPath({ reply: { reply: 'NO PAM auth error', failDelayMs: 2000 } });
  path.checkNow(path.take(server)!);
  assert.deepEqual(seen.handoffs[0]!.answer, { reply: 'NO PAM auth error', failDelayMs: 2000, unavailable: false });
  assert.deepEqual(seen.handoffs[0]!.received, REQUEST);
  assert.deepEqual(seen.events.slice(-2), ['handoff', 'end:true'], 'handed over, then the record says idle');
  assert.deepEqual(seen.counted, [], 'the primary counts it');
  assert.equal(readAll(client).length, 0);
  closeFd(client);
});

test('a cache hit is answered without the mechanism; a suspect login goes to the primary unchecked', () => {
  {
    const { client, server } = connection();
    sendSome(client, REQUEST);
    const { path, seen } = fastPath({ hit: true });
    assert.equal(path.take(server), undefined);
    assert.deepEqual(readAll(client), encodeReply('OK'));
    assert.ok(!seen.events.includes('mechanism'));
    assert.deepEqual(seen.counted, ['ok']);
    closeFd(client);
  }
  {
    const { client, server } = connection();
    sendSome(client, REQUEST);
    const { path, seen } = fastPath({ suspect: true });
    assert.equal(path.take(server), undefined);
    assert.ok(!seen.events.includes('mechanism'));
    assert.deepEqual(seen.handoffs[0]!.received, REQUEST);
    assert.equal(seen.handoffs[0]!.answer, undefined);
    closeFd(client);
  }
});

test('half a request, or one with more bytes after it, goes to the primary with exactly the bytes read', () => {
  {
    const { client, server } = connection();
    sendSome(client, REQUEST.subarray(0, 7));
    const { path, seen } = fastPath({});
    assert.equal(path.take(server), undefined);
    assert.deepEqual(seen.handoffs[0]!.received, REQUEST.subarray(0, 7));
    closeFd(client);
  }
  {
    const { client, server } = connection();
    const trailing = Buffer.concat([REQUEST, Buffer.from('xyz')]);
    sendSome(client, trailing);
    const { path, seen } = fastPath({});
    assert.equal(path.take(server), undefined);
    assert.deepEqual(seen.handoffs[0]!.received, trailing);
    closeFd(client);
  }
  {
    const { client, server } = connection();
    sendSome(client, REQUEST);
    const { path, seen } = fastPath({ roomForClients: () => false });
    assert.equal(path.take(server), undefined, 'the primary holds --max-connections: its to refuse');
    assert.equal(seen.handoffs[0]!.received.length, 0);
    closeFd(client);
  }
});

test('activity record: states, the login tag, and who a check is for', () => {
  const activity = new WorkerActivity(new ArrayBuffer(WorkerActivity.bytesFor(2)), 0, 2, () => 1000);
  activity.reset(1);
  activity.reading(1, 42);
  assert.equal(activity.read(1).state, ActivityState.reading);
  const login = Buffer.alloc(32, 5);
  activity.begin(1, 42, { user: Buffer.from('bob'), service: Buffer.from('imap'), realm: Buffer.from('r'), remote: Buffer.alloc(0) }, login);
  assert.equal(activity.read(1).state, ActivityState.checking);
  assert.equal(activity.checkingLogin(1, login), true);
  assert.equal(activity.checkingLogin(1, Buffer.alloc(32, 6)), false);
  assert.deepEqual(activity.subject(1).user, Buffer.from('bob'));
  activity.replying(1);
  assert.equal(activity.checkingLogin(1, login), false, 'only a running check counts');
  activity.end(1, true);
  assert.equal(activity.read(1).checksDone, 1);
  assert.equal(activity.read(0).state, ActivityState.idle, 'places are separate');
});

test('channel frames: a handoff with and without an answer, a cache fill', () => {
  const received = Buffer.from('some bytes');
  const answered = decodeHandoff(encodeHandoff({ received, answer: { reply: 'NO x', failDelayMs: 1500, unavailable: true } }).subarray(5));
  assert.deepEqual(answered, { received, answer: { reply: 'NO x', failDelayMs: 1500, unavailable: true } });
  assert.deepEqual(decodeHandoff(encodeHandoff({ received }).subarray(5)), { received });
  const fill: CacheFill = { keyDigest: Buffer.alloc(32, 1), mac: Buffer.alloc(32, 2), generation: 3, user: Buffer.from('u'), realm: Buffer.from(''), service: Buffer.from('imap') };
  assert.deepEqual(decodeFill(encodeFill(fill).subarray(5)), fill);
});
