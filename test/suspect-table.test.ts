/**
 * The shared suspect table on its own, with a hand-driven clock: the scheduler's rule (a
 * failed login and its password are suspect for ten minutes, a success clears the login
 * only), eviction within a set, the cheap "anything at all?" check, and the reader's safe
 * side when it cannot tell. Writer and readers share one buffer here, as the primary and
 * workers share the region (test/shared-counters-hammer.test.ts does it across processes),
 * and a fast-check model test against the scheduler's in-process memory (recent-memory.ts).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { KeyedDigest } from '../src/server/keyed-digest.js';
import { SUSPECT_MEMORY_MS } from '../src/server/login-scheduler.js';
import { RecentMemory } from '../src/server/recent-memory.js';
import { RecentDigests } from '../src/shared/recent-digests.js';
import { privateSection } from '../src/shared/section.js';
import { SuspectTable, SuspectTableReader } from '../src/shared/suspect-table.js';

const digest = new KeyedDigest();
const login = (name: string): Buffer => digest.bytesOf(Buffer.from('login'), Buffer.from(name));
const password = (text: string): Buffer => digest.bytesOf(Buffer.from(text));

function tables(capacity = 1024) {
  const clock = { now: 5_000_000 };
  const section = privateSection(SuspectTable.bytesFor(capacity));
  const writer = new SuspectTable(section, { capacity, now: () => clock.now });
  const reader = new SuspectTableReader(section, { capacity, now: () => clock.now });
  return { clock, section, writer, reader };
}

test('a failure makes its login and its password suspect; a success clears the login only', () => {
  const { writer, reader } = tables();
  assert.equal(reader.isSuspect(login('bob'), password('guess-1')), false);
  writer.noteFailure(login('bob'), password('guess-1'));
  assert.equal(reader.isSuspect(login('bob'), password('right')), true, 'the login');
  assert.equal(reader.isSuspect(login('alice'), password('guess-1')), true, 'the password, for any login (spraying)');
  assert.equal(reader.isSuspect(login('alice'), password('right')), false, 'neither');
  writer.clearLogin(login('bob'));
  assert.equal(reader.isSuspect(login('bob'), password('right')), false, 'cleared by a success');
  assert.equal(reader.isSuspect(login('carol'), password('guess-1')), true, 'the refused password stays suspect');
  writer.clear();
  assert.equal(reader.isSuspect(login('carol'), password('guess-1')), false, 'clear() forgets all');
  assert.equal(reader.maybeAny(), false);
});

test('suspicion lasts SUSPECT_MEMORY_MS from the latest failure', () => {
  const { clock, writer, reader } = tables();
  writer.noteFailure(login('bob'), password('guess-1'));
  clock.now += SUSPECT_MEMORY_MS / 2;
  writer.noteFailure(login('bob'), password('guess-2')); // refreshes the login, in place
  assert.deepEqual(writer.stats(), { logins: 1, passwords: 2 });
  clock.now += SUSPECT_MEMORY_MS / 2;
  assert.equal(reader.isSuspect(login('alice'), password('guess-1')), false, 'the first password has expired');
  assert.equal(reader.isSuspect(login('bob'), password('x')), true, 'the login was refreshed');
  clock.now += SUSPECT_MEMORY_MS / 2 - 1;
  assert.equal(reader.isSuspect(login('bob'), password('x')), true, 'one millisecond before expiry');
  clock.now += 1;
  assert.equal(reader.isSuspect(login('bob'), password('x')), false, 'expired');
  assert.deepEqual(writer.stats(), { logins: 0, passwords: 0 });
});

test('maybeAny is false only when no entry can be live', () => {
  const { clock, writer, reader } = tables();
  assert.equal(reader.maybeAny(), false, 'nothing noted yet');
  // At odd times (not whole seconds), noting at t, then probing around t + SUSPECT_MEMORY_MS.
  for (const start of [5_000_000.4, 5_000_999.9, 5_001_000]) {
    clock.now = start;
    writer.clear();
    writer.noteFailure(login('bob'), password('p'));
    assert.equal(reader.maybeAny(), true);
    for (let later = SUSPECT_MEMORY_MS - 2; later < SUSPECT_MEMORY_MS + 1500; later += 0.5) {
      clock.now = start + later;
      if (reader.isSuspect(login('bob'), password('other'))) assert.equal(reader.maybeAny(), true, `live entry at +${later} ms`);
    }
    clock.now = start + SUSPECT_MEMORY_MS + 1000;
    assert.equal(reader.maybeAny(), false, 'more than a second past the last failure');
  }
});

test('a full set forgets its oldest entry, and reuses an expired one first', () => {
  // Capacity 8: one set of 8 ways, so every digest competes for it.
  const { clock, writer, reader } = tables(8);
  const logins = Array.from({ length: 9 }, (_, index) => login(`user${index}`));
  for (const [index, each] of logins.slice(0, 8).entries()) {
    clock.now += 1;
    writer.noteFailure(each, password(`p${index}`));
  }
  assert.equal(writer.stats().logins, 8);
  clock.now += 1;
  writer.noteFailure(logins[8]!, password('p8'));
  assert.equal(writer.stats().logins, 8, 'bounded');
  assert.equal(reader.isSuspect(logins[0]!, password('unrelated')), false, 'the oldest was forgotten');
  for (const each of logins.slice(1)) assert.equal(reader.isSuspect(each, password('unrelated')), true);

  // user1 expires (noted first of those left); the others are refreshed: a new note takes user1's place.
  clock.now += SUSPECT_MEMORY_MS - 5;
  for (const each of logins.slice(2)) writer.noteFailure(each, password('again'));
  clock.now += 10;
  writer.noteFailure(logins[0]!, password('again'));
  for (const each of [logins[0]!, ...logins.slice(2)]) assert.equal(reader.isSuspect(each, password('unrelated')), true);
});

test('a reader that cannot tell says suspect: a slot being written, or a section never formatted', () => {
  const capacity = 8; // one set: every login lives in the same 8 slots
  const { section, writer, reader } = tables(capacity);
  writer.noteFailure(login('bob'), password('p'));
  assert.equal(reader.isSuspect(login('alice'), password('q')), false);
  // The header is 64 bytes, then the logins' table: slot 0's first word is its sequence.
  const sequence = new Int32Array(section.buffer, 64, 1);
  const before = Atomics.load(sequence, 0);
  Atomics.store(sequence, 0, before | 1); // a write in progress (the writer stopped half-way)
  assert.equal(reader.isSuspect(login('alice'), password('q')), true, 'doubt is suspect');
  Atomics.store(sequence, 0, (before | 1) + 1);
  assert.equal(reader.isSuspect(login('alice'), password('q')), false, 'the write finished');

  const blank = privateSection(SuspectTable.bytesFor(capacity));
  const unformatted = new SuspectTableReader(blank, { capacity });
  assert.equal(unformatted.maybeAny(), true);
  assert.equal(unformatted.isSuspect(login('alice'), password('q')), true);
  new SuspectTable(blank, { capacity });
  assert.equal(unformatted.isSuspect(login('alice'), password('q')), false, 'formatted by the writer');
  const otherCapacity = new SuspectTableReader(blank, { capacity: capacity / 2 });
  assert.equal(otherCapacity.isSuspect(login('alice'), password('q')), true, 'a layout it does not share');
});

test('sizes: bytesFor covers both tables; a short section or digest is refused', () => {
  assert.equal(SuspectTable.bytesFor(50_000), 64 + 2 * RecentDigests.bytesFor(50_000));
  assert.equal(SuspectTable.bytesFor(), SuspectTable.bytesFor(50_000), 'the scheduler\'s capacity by default');
  assert.equal(RecentDigests.bytesFor(50_000), 50_000 * 32);
  assert.throws(() => new SuspectTable(privateSection(SuspectTable.bytesFor(64) - 1), { capacity: 64 }), /needs/);
  const { writer, reader } = tables();
  writer.noteFailure(login('bob'), password('p'));
  assert.throws(() => reader.isSuspect(Buffer.alloc(8), password('p')), RangeError);
  assert.throws(() => writer.noteFailure(login('bob'), Buffer.alloc(15)), RangeError);
});

test('many logins: each noted one reads suspect, the others clean (set spread, no false positive)', () => {
  // The default capacity: 2,000 entries spread over 6,250 sets of 8 never fill one.
  const { writer, reader } = tables(50_000);
  for (let index = 0; index < 2000; index++) writer.noteFailure(login(`noted${index}`), password(`bad${index}`));
  for (let index = 0; index < 2000; index++) {
    assert.equal(reader.isSuspect(login(`noted${index}`), password('fine')), true);
    assert.equal(reader.isSuspect(login(`clean${index}`), password('fine')), false);
  }
});

test('the same answers as the scheduler\'s own memory, for any sequence of failures, successes and time (fast-check)', () => {
  const logins = ['bob', 'alice', 'carol', 'dave'];
  const passwords = ['p1', 'p2', 'p3'];
  const operation = fc.oneof(
    fc.record({ kind: fc.constant('fail' as const), login: fc.integer({ min: 0, max: 3 }), password: fc.integer({ min: 0, max: 2 }) }),
    fc.record({ kind: fc.constant('succeed' as const), login: fc.integer({ min: 0, max: 3 }) }),
    fc.record({ kind: fc.constant('wait' as const), ms: fc.constantFrom(1, 999, 1000, SUSPECT_MEMORY_MS - 1, SUSPECT_MEMORY_MS, SUSPECT_MEMORY_MS / 3) }),
    fc.record({ kind: fc.constant('clear' as const) }),
  );
  fc.assert(
    fc.property(fc.array(operation, { maxLength: 40 }), (operations) => {
      const { clock, writer, reader } = tables();
      const now = (): number => clock.now;
      let model = { logins: new RecentMemory(SUSPECT_MEMORY_MS, 1000, now), passwords: new RecentMemory(SUSPECT_MEMORY_MS, 1000, now) };
      for (const step of operations) {
        if (step.kind === 'fail') {
          writer.noteFailure(login(logins[step.login]!), password(passwords[step.password]!));
          model.logins.note(logins[step.login]!);
          model.passwords.note(passwords[step.password]!);
        } else if (step.kind === 'succeed') {
          writer.clearLogin(login(logins[step.login]!));
          model.logins.forget(logins[step.login]!);
        } else if (step.kind === 'wait') {
          clock.now += step.ms;
        } else {
          writer.clear();
          model = { logins: new RecentMemory(SUSPECT_MEMORY_MS, 1000, now), passwords: new RecentMemory(SUSPECT_MEMORY_MS, 1000, now) };
        }
        let any = false;
        for (const each of logins) {
          for (const other of [...passwords, 'never-refused']) {
            const expected = model.logins.has(each) || model.passwords.has(other);
            any ||= expected;
            assert.equal(reader.isSuspect(login(each), password(other)), expected, `${each}/${other}`);
          }
        }
        if (any) assert.equal(reader.maybeAny(), true);
      }
    }),
    { numRuns: 300 },
  );
});
