/**
 * The shared request counters on their own: two RequestMetrics over one buffer behave as two
 * processes over the region (one label per service, sums seen by both), totals for status,
 * latency in whole microseconds, and a label slot left half-written by a stalled process.
 * test/operations-units.test.ts has the label bound and the histogram's buckets;
 * test/shared-counters-hammer.test.ts the same counters from real processes at once.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MAX_SERVICE_LABELS, OTHER_SERVICE } from '../src/metrics/request-metrics.js';
import { MAX_FIELD_BYTES } from '../src/protocol/codec.js';
import { RequestMetrics } from '../src/shared/request-counters.js';
import { privateSection } from '../src/shared/section.js';

const service = (name: string): Buffer => Buffer.from(name);

test('two processes over one section: one label per service, every count seen by both', () => {
  const section = privateSection(RequestMetrics.bytesFor());
  const primary = new RequestMetrics(section);
  const worker = new RequestMetrics(section);
  primary.record('ok', service('imap'), 1);
  worker.record('ok', service('imap'), 1);
  worker.record('no', service('smtp'), 1);
  primary.record('not_checked', service('smtp'), 1);
  for (const view of [primary, worker]) {
    const snapshot = view.snapshot();
    assert.deepEqual(snapshot.byService.get('imap'), { ok: 2, no: 0, not_checked: 0 });
    assert.deepEqual(snapshot.byService.get('smtp'), { ok: 0, no: 1, not_checked: 1 });
    assert.equal(snapshot.byService.size, 2);
    assert.equal(snapshot.latency.count, 4);
    assert.equal(view.labelsInUse(), 2);
  }
});

test('totals for status: no counts every NO, notChecked those the daemon gave itself', () => {
  const metrics = new RequestMetrics();
  assert.deepEqual(metrics.totals(), { ok: 0, no: 0, notChecked: 0 });
  for (let index = 0; index < MAX_SERVICE_LABELS + 3; index++) metrics.record('ok', service(`svc${index}`), 1);
  metrics.record('no', service('svc0'), 1);
  metrics.record('no', service('beyond-the-labels'), 1);
  metrics.record('not_checked', service('svc1'), 1);
  metrics.record('not_checked', service('also-beyond'), 1);
  assert.deepEqual(metrics.totals(), { ok: MAX_SERVICE_LABELS + 3, no: 4, notChecked: 2 });
  assert.deepEqual(metrics.snapshot().byService.get(OTHER_SERVICE), { ok: 3, no: 1, not_checked: 1 });
});

test('latency sum in whole microseconds; count is the +Inf bucket; negative elapsed counts as 0', () => {
  const metrics = new RequestMetrics();
  for (let index = 0; index < 1000; index++) metrics.record('ok', service('imap'), 0.001); // 1 µs each
  metrics.record('ok', service('imap'), -5);
  const { latency } = metrics.snapshot();
  assert.equal(latency.sumSeconds, 0.001);
  assert.equal(latency.count, 1001);
  assert.equal(latency.buckets[0], 1001);
});

test('service names: printable labels, the longest field has its own, anything longer is (other)', () => {
  const metrics = new RequestMetrics();
  metrics.record('ok', Buffer.from([0x69, 0x01, 0x6d]), 1);
  metrics.record('ok', Buffer.alloc(MAX_FIELD_BYTES, 0x61), 1);
  metrics.record('ok', Buffer.alloc(MAX_FIELD_BYTES + 1, 0x62), 1);
  const { byService } = metrics.snapshot();
  assert.deepEqual([...byService.keys()], ['i\\x01m', 'a'.repeat(MAX_FIELD_BYTES), OTHER_SERVICE]);
});

test('a label slot left half-written by a stalled process is skipped, and never shown twice', () => {
  const section = privateSection(RequestMetrics.bytesFor());
  const metrics = new RequestMetrics(section);
  // The label slots' words (state, length) follow the counters and precede the names, which
  // end the section: slot 0's state is the first of them.
  const names = MAX_SERVICE_LABELS * MAX_FIELD_BYTES;
  const labelWords = new Int32Array(section.buffer, RequestMetrics.bytesFor() - names - MAX_SERVICE_LABELS * 8, MAX_SERVICE_LABELS * 2);
  const nameBytes = new Uint8Array(section.buffer, RequestMetrics.bytesFor() - names, names);
  Atomics.store(labelWords, 0, 1); // claimed (WRITING) by a process that stopped right there

  const startedAt = performance.now();
  metrics.record('ok', service('imap'), 1);
  assert.ok(performance.now() - startedAt < 1000, 'the wait for the stalled slot is bounded');
  assert.equal(metrics.contendedClaims, 1);
  assert.equal(metrics.labelsInUse(), 1, 'imap took the next slot');
  metrics.record('ok', service('pop3'), 1);
  assert.equal(metrics.contendedClaims, 1, 'a slot found stalled is not waited for again');

  // The stalled process resumes, publishes "imap" in slot 0, and counts its request there.
  nameBytes.set(service('imap'), 0);
  Atomics.store(labelWords, 1, 4);
  Atomics.store(labelWords, 0, 2);
  const resumed = new RequestMetrics(section);
  resumed.record('no', service('imap'), 1); // finds slot 0 first
  const { byService } = metrics.snapshot();
  assert.deepEqual(byService.get('imap'), { ok: 1, no: 1, not_checked: 0 }, 'both slots under one label');
  assert.equal(byService.size, 2);
  assert.equal(metrics.labelsInUse(), 3);
});

test('a section too small is refused at construction', () => {
  assert.throws(() => new RequestMetrics(privateSection(RequestMetrics.bytesFor() - 8)), /needs/);
  assert.throws(() => new RequestMetrics({ ...privateSection(RequestMetrics.bytesFor() + 4), offset: 4 }), /aligned/);
});
