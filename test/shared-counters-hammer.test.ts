/**
 * The shared request counters and the suspect table, hammered from four real processes at
 * once (child `node` processes mapping the region this test made, inherited on fd 3; see
 * helpers/shared-counters-child.ts):
 * - counters: the children (and this process, as the primary would) record for ~2 s; the
 *   snapshot then equals, exactly, the sum of what each says it recorded. Then the children
 *   race to add the same 10 new service names, round after round: each round ends with
 *   exactly 10 label slots in use, each name counted by all of them.
 * - suspect table: this process is the writer (noting and clearing churn logins, refreshing
 *   the noted ones) while the children read: a login or password noted and never cleared
 *   reads suspect in every read, and once the writer is idle, a login never noted reads clean.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { setImmediate as yieldToEvents } from 'node:timers/promises';
import { LATENCY_BUCKETS_SECONDS, REQUEST_RESULTS, type ResultCounts } from '../src/metrics/request-metrics.js';
import { RegionLayout, SharedRegion } from '../src/native/shared-memory.js';
import { KeyedDigest } from '../src/server/keyed-digest.js';
import { RequestMetrics } from '../src/shared/request-counters.js';
import { SuspectTable } from '../src/shared/suspect-table.js';
import type { ChildPlan, CountersReport, SuspectReport } from './helpers/shared-counters-child.js';

const CHILD_JS = fileURLToPath(new URL('./helpers/shared-counters-child.js', import.meta.url));
const CHILDREN = 4;
const HAMMER_MS = 2000;
/** Past this a child is killed and the test fails (they normally end within HAMMER_MS + ~1 s). */
const CHILD_DEADLINE_MS = 30_000;
const RACE_ROUNDS = 200;
const RACE_NAMES = 10;
const RECORDS_PER_RACE_NAME = 3;

interface Running {
  readonly done: Promise<unknown>;
  stop(): void;
}

/** Starts one child on the region; `done` is its JSON report (rejects on a non-zero exit or the deadline). */
function startChild(region: SharedRegion, plan: ChildPlan): Running {
  const child = spawn(process.execPath, [CHILD_JS, JSON.stringify(plan)], { stdio: ['ignore', 'pipe', 'pipe', region.fd] });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), CHILD_DEADLINE_MS);
  const done = new Promise<unknown>((resolve, reject) => {
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve(JSON.parse(stdout));
      else reject(new Error(`child ${child.pid} ended with ${code ?? signal}: ${stderr}`));
    });
  });
  return {
    done,
    stop: () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    },
  };
}

async function allReports<T>(children: Running[]): Promise<T[]> {
  try {
    return (await Promise.all(children.map((child) => child.done))) as T[];
  } finally {
    for (const child of children) child.stop();
  }
}

test('counters from four processes at once: the snapshot is exactly the sum; racing new names end with one label each', async () => {
  const layout = new RegionLayout().add('counters', RequestMetrics.bytesFor()).add('arrivals', RACE_ROUNDS * 4);
  for (let round = 0; round < RACE_ROUNDS; round++) layout.add(`race${round}`, RequestMetrics.bytesFor());
  const region = SharedRegion.create('shared-counters-hammer', layout.totalBytes);
  const races = Array.from({ length: RACE_ROUNDS }, (_, round) => layout.section(`race${round}`));
  const shared = Array.from({ length: 10 }, (_, index) => `shared${index}`);
  const children = Array.from({ length: CHILDREN }, (_, index) =>
    startChild(region, {
      mode: 'counters',
      index,
      children: CHILDREN,
      durationMs: HAMMER_MS,
      counters: layout.section('counters'),
      services: [...shared, ...Array.from({ length: 5 }, (_, own) => `child${index}-own${own}`)],
      races,
      arrivals: layout.section('arrivals'),
      raceNames: RACE_NAMES,
      recordsPerRaceName: RECORDS_PER_RACE_NAME,
    }),
  );

  // This process records too, as the primary does, until the children are done.
  const primary = new RequestMetrics({ buffer: region.buffer, ...layout.section('counters') });
  let primaryRecords = 0;
  let childrenDone = false;
  const reportsPromise = allReports<CountersReport>(children).finally(() => (childrenDone = true));
  while (!childrenDone) {
    for (let index = 0; index < 100; index++) primary.record('not_checked', Buffer.from('primary'), 0.1);
    primaryRecords += 100;
    await yieldToEvents();
  }
  const reports = await reportsPromise;

  const expected = new Map<string, ResultCounts>([['primary', { ok: 0, no: 0, not_checked: primaryRecords }]]);
  const buckets = new Array<number>(LATENCY_BUCKETS_SECONDS.length + 1).fill(0);
  buckets[0] = primaryRecords;
  let sumMicros = primaryRecords * 100;
  for (const report of reports) {
    for (const [service, counts] of Object.entries(report.recorded)) {
      const sum = expected.get(service) ?? { ok: 0, no: 0, not_checked: 0 };
      for (const result of REQUEST_RESULTS) sum[result] += counts[result];
      expected.set(service, sum);
    }
    report.buckets.forEach((count, bucket) => (buckets[bucket]! += count));
    sumMicros += report.sumMicros;
  }
  const snapshot = primary.snapshot();
  assert.deepEqual(snapshot.byService, expected, 'per service and result, exactly');
  const recordedInAll = buckets.reduce((sum, count) => sum + count, 0);
  assert.ok(recordedInAll > 10_000 * CHILDREN, `the children recorded for real (${recordedInAll})`);
  assert.equal(snapshot.latency.count, recordedInAll);
  let running = 0;
  assert.deepEqual(
    snapshot.latency.buckets,
    buckets.slice(0, -1).map((count) => (running += count)),
    'cumulative buckets',
  );
  assert.equal(Math.round(snapshot.latency.sumSeconds * 1e6), sumMicros, 'latency sum, to the microsecond');
  const totals = primary.totals();
  const inAll = (result: keyof ResultCounts): number => [...expected.values()].reduce((sum, counts) => sum + counts[result], 0);
  assert.deepEqual(totals, { ok: inAll('ok'), no: inAll('no') + inAll('not_checked'), notChecked: inAll('not_checked') });
  assert.equal(primary.labelsInUse(), expected.size, 'one label per service');

  for (const [round, section] of races.entries()) {
    const race = new RequestMetrics({ buffer: region.buffer, ...section });
    assert.equal(race.labelsInUse(), RACE_NAMES, `round ${round}: exactly ${RACE_NAMES} labels`);
    const { byService } = race.snapshot();
    for (let name = 0; name < RACE_NAMES; name++) {
      assert.deepEqual(byService.get(`race${round}-service${name}`), { ok: CHILDREN * RECORDS_PER_RACE_NAME, no: 0, not_checked: 0 });
    }
  }
  const contended = reports.reduce((sum, report) => sum + report.contendedClaims, 0);
  console.log(`counters hammer: ${recordedInAll} records, ${contended} contended label claims in ${RACE_ROUNDS} races`);
});

test('suspect table: noted logins and passwords read suspect in every read while the writer works; clean ones clean once it is idle', async () => {
  const capacity = 8192; // 1,024 sets of 8 for ~200 digests per table: no set ever fills
  const layout = new RegionLayout().add('control', 8).add('table', SuspectTable.bytesFor(capacity));
  const region = SharedRegion.create('suspect-hammer', layout.totalBytes);
  const writer = new SuspectTable({ buffer: region.buffer, ...layout.section('table') }, { capacity });
  const control = new Int32Array(region.buffer, layout.section('control').offset, 2);
  const digest = new KeyedDigest();
  const many = (prefix: string, count: number): Buffer[] => Array.from({ length: count }, (_, index) => digest.bytesOf(Buffer.from(`${prefix}${index}`)));
  const notedLogins = many('noted-login', 20);
  const notedPasswords = many('noted-password', 20);
  const cleanLogins = many('clean-login', 20);
  const churnLogins = many('churn-login', 150);
  const churnPasswords = many('churn-password', 150);
  notedLogins.forEach((login, index) => writer.noteFailure(login, notedPasswords[index]!));

  const hex = (digests: Buffer[]): string[] => digests.map((each) => each.toString('hex'));
  const children = Array.from({ length: CHILDREN }, () =>
    startChild(region, {
      mode: 'suspect',
      table: layout.section('table'),
      capacity,
      control: layout.section('control'),
      notedLogins: hex(notedLogins),
      notedPasswords: hex(notedPasswords),
      cleanLogins: hex(cleanLogins),
      cleanPassword: digest.bytesOf(Buffer.from('never-refused')).toString('hex'),
      idleReads: 2000,
    }),
  );
  const reportsPromise = allReports<SuspectReport>(children);
  let writes = 0;
  const end = performance.now() + HAMMER_MS;
  while (performance.now() < end) {
    for (let step = 0; step < 500; step++) {
      const pick = Math.floor(Math.random() * churnLogins.length);
      writer.noteFailure(churnLogins[pick]!, churnPasswords[pick]!);
      writer.clearLogin(churnLogins[Math.floor(Math.random() * churnLogins.length)]!);
      const noted = Math.floor(Math.random() * notedLogins.length);
      writer.noteFailure(notedLogins[noted]!, notedPasswords[noted]!); // rewrites their slots in place
      writes += 3;
    }
    await yieldToEvents();
  }
  Atomics.store(control, 0, 1); // idle from now on
  const reports = await reportsPromise;

  for (const report of reports) {
    assert.equal(report.missedSuspects, 0, 'a noted login or password read clean');
    assert.equal(report.cleanReadAsSuspectWhileIdle, 0, 'a never-noted login read suspect with the writer idle');
    assert.ok(report.readsWhileWriting > 1000, `reads overlapped the writes (${report.readsWhileWriting})`);
    assert.ok(report.idleReads > 0);
  }
  assert.equal(Atomics.load(control, 1), CHILDREN);
  const doubts = reports.reduce((sum, report) => sum + report.cleanReadAsSuspectWhileWriting, 0);
  console.log(`suspect hammer: ${writes} writes, ${reports.reduce((sum, r) => sum + r.readsWhileWriting, 0)} reads while writing, ${doubts} clean logins read suspect (doubt)`);
});
