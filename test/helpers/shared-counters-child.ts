/**
 * A worker-like process for test/shared-counters-hammer.test.ts: maps the shared region it
 * inherited on fd 3 and, by argv[2] (JSON, a ChildPlan), either
 * - `counters`: records requests into the shared RequestMetrics for `durationMs`, then races
 *   the other children on new service names (one round per race section, all children
 *   released at once by a barrier in shared memory), and prints what it recorded; or
 * - `suspect`: reads the suspect table while the test's writer changes it, and prints what it
 *   saw, judged against what the writer never changes (see the plan's fields).
 * The output is one JSON line on stdout (ChildReport).
 */
import { SharedRegion } from '../../src/native/shared-memory.js';
import { LATENCY_BUCKETS_SECONDS, type RequestResult } from '../../src/metrics/request-metrics.js';
import { systemMonotonicMs } from '../../src/runtime/monotonic-clock.js';
import { RequestMetrics } from '../../src/shared/request-counters.js';
import { SuspectTableReader } from '../../src/shared/suspect-table.js';

const REGION_FD = 3;
/** How long a child waits for the others at a barrier before it gives up (a broken test). */
const BARRIER_DEADLINE_MS = 10_000;

export interface Section {
  readonly offset: number;
  readonly bytes: number;
}

export type ChildPlan =
  | {
      readonly mode: 'counters';
      readonly index: number;
      readonly children: number;
      readonly durationMs: number;
      readonly counters: Section;
      /** Service names this child records (some shared with the others, some its own). */
      readonly services: readonly string[];
      /** One RequestMetrics section per race round, and an Int32 arrival counter per round. */
      readonly races: readonly Section[];
      readonly arrivals: Section;
      readonly raceNames: number;
      readonly recordsPerRaceName: number;
    }
  | {
      readonly mode: 'suspect';
      readonly table: Section;
      readonly capacity: number;
      /** Int32 words: [0] the writer's phase (0 writing, 1 idle), [1] children done reading idle. */
      readonly control: Section;
      /** Digests (hex) of logins and passwords noted before the children start and never cleared. */
      readonly notedLogins: readonly string[];
      readonly notedPasswords: readonly string[];
      /** Digests (hex) of logins and a password never noted. */
      readonly cleanLogins: readonly string[];
      readonly cleanPassword: string;
      readonly idleReads: number;
    };

export interface CountersReport {
  readonly recorded: Record<string, Record<RequestResult, number>>;
  /** Per-bucket (not cumulative) counts; the last is +Inf. */
  readonly buckets: number[];
  readonly sumMicros: number;
  readonly contendedClaims: number;
}

export interface SuspectReport {
  readonly readsWhileWriting: number;
  /** A noted login or password read as clean, or maybeAny() false: must stay 0. */
  readonly missedSuspects: number;
  /** A never-noted login read as suspect while the writer wrote (allowed: doubt is suspect). */
  readonly cleanReadAsSuspectWhileWriting: number;
  readonly idleReads: number;
  /** A never-noted login read as suspect while the writer was idle: must stay 0. */
  readonly cleanReadAsSuspectWhileIdle: number;
}

const RESULTS: readonly RequestResult[] = ['ok', 'no', 'not_checked'];

/** An elapsed time (whole microseconds) inside bucket `bucket`: just under its bound, 40 s past the last. */
export function elapsedMicrosFor(bucket: number): number {
  const bound = LATENCY_BUCKETS_SECONDS[bucket];
  return bound === undefined ? 40_000_000 : Math.round(bound * 1e6 * 0.9);
}

function recordCounters(plan: Extract<ChildPlan, { mode: 'counters' }>, region: SharedRegion): CountersReport {
  const metrics = new RequestMetrics({ buffer: region.buffer, ...plan.counters });
  const recorded: CountersReport['recorded'] = {};
  const buckets = new Array<number>(LATENCY_BUCKETS_SECONDS.length + 1).fill(0);
  let sumMicros = 0;
  const services = plan.services.map((name) => Buffer.from(name));
  const end = systemMonotonicMs() + plan.durationMs;
  while (systemMonotonicMs() < end) {
    for (let round = 0; round < 200; round++) {
      const which = Math.floor(Math.random() * services.length);
      const result = RESULTS[Math.floor(Math.random() * RESULTS.length)]!;
      const bucket = Math.floor(Math.random() * buckets.length);
      const micros = elapsedMicrosFor(bucket);
      metrics.record(result, services[which]!, micros / 1000);
      const name = plan.services[which]!;
      recorded[name] ??= { ok: 0, no: 0, not_checked: 0 };
      recorded[name][result]++;
      buckets[bucket]!++;
      sumMicros += micros;
    }
  }
  let contendedClaims = metrics.contendedClaims;
  const arrivals = new Int32Array(region.buffer, plan.arrivals.offset, plan.races.length);
  for (const [round, section] of plan.races.entries()) {
    const race = new RequestMetrics({ buffer: region.buffer, ...section });
    const names = Array.from({ length: plan.raceNames }, (_, name) => Buffer.from(`race${round}-service${name}`));
    // Everybody arrives, then everybody adds the same new names at once.
    Atomics.add(arrivals, round, 1);
    const deadline = systemMonotonicMs() + BARRIER_DEADLINE_MS;
    while (Atomics.load(arrivals, round) < plan.children) {
      if (systemMonotonicMs() > deadline) throw new Error(`child ${plan.index}: barrier ${round} not reached`);
    }
    for (let record = 0; record < plan.recordsPerRaceName; record++) for (const name of names) race.record('ok', name, 1);
    contendedClaims += race.contendedClaims;
  }
  return { recorded, buckets, sumMicros, contendedClaims };
}

function readSuspects(plan: Extract<ChildPlan, { mode: 'suspect' }>, region: SharedRegion): SuspectReport {
  const table = new SuspectTableReader({ buffer: region.buffer, ...plan.table }, { capacity: plan.capacity });
  const control = new Int32Array(region.buffer, plan.control.offset, 2);
  const hex = (digests: readonly string[]): Buffer[] => digests.map((digest) => Buffer.from(digest, 'hex'));
  const notedLogins = hex(plan.notedLogins);
  const notedPasswords = hex(plan.notedPasswords);
  const cleanLogins = hex(plan.cleanLogins);
  const cleanPassword = Buffer.from(plan.cleanPassword, 'hex');
  const report = { readsWhileWriting: 0, missedSuspects: 0, cleanReadAsSuspectWhileWriting: 0, idleReads: 0, cleanReadAsSuspectWhileIdle: 0 };
  const readNoted = (): void => {
    for (const login of notedLogins) if (!table.isSuspect(login, cleanPassword)) report.missedSuspects++;
    for (const password of notedPasswords) if (!table.isSuspect(cleanLogins[0]!, password)) report.missedSuspects++;
    if (!table.maybeAny()) report.missedSuspects++;
  };
  while (Atomics.load(control, 0) === 0) {
    readNoted();
    for (const login of cleanLogins) if (table.isSuspect(login, cleanPassword)) report.cleanReadAsSuspectWhileWriting++;
    report.readsWhileWriting += notedLogins.length + notedPasswords.length + cleanLogins.length;
  }
  for (let round = 0; round < plan.idleReads; round++) {
    readNoted();
    for (const login of cleanLogins) if (table.isSuspect(login, cleanPassword)) report.cleanReadAsSuspectWhileIdle++;
    report.idleReads += notedLogins.length + notedPasswords.length + cleanLogins.length;
  }
  Atomics.add(control, 1, 1);
  return report;
}

const plan = JSON.parse(process.argv[2] ?? '{}') as ChildPlan;
const region = SharedRegion.map(REGION_FD);
const report = plan.mode === 'counters' ? recordCounters(plan, region) : readSuspects(plan, region);
process.stdout.write(`${JSON.stringify(report)}\n`);
