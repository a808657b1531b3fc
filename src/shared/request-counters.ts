/**
 * Per-request counters and the latency histogram, in memory shared by every process of the
 * daemon: the primary and each worker count the requests they answer, and the primary's
 * snapshot (metrics) and totals (status) see all of them, exactly. They live as long as the
 * region, that is the daemon: workers come and go, the counts stay, as Prometheus expects.
 *
 * Concurrency: every process writes, so nothing here is a seqlock: each number is a counter
 * that only grows, added to with Atomics.add (a BigInt64Array: no wrap in the daemon's
 * life; the latency sum is whole microseconds). Service names come from clients: they get
 * one of MAX_SERVICE_LABELS label slots, each claimed with Atomics.compareExchange (EMPTY →
 * WRITING), written, then published (READY). Whoever loses the claim on a slot waits for the
 * winner to publish it (sleeping, at most LABEL_WAIT_MS) and compares names: two processes adding the
 * same new service at once end with one label. A slot still WRITING past the wait (its writer
 * descheduled, stopped or killed) is skipped, so nothing ever blocks; should its writer finish
 * later with the same name, the snapshot adds same-named slots together, so a label is never
 * shown twice. Readers skip slots that are not READY (their counts are zero: counting starts
 * after publishing). Past MAX_SERVICE_LABELS names, requests count under OTHER_SERVICE. The
 * histogram's count is the sum of its buckets, so `_count` and the `+Inf` bucket always agree.
 */
import { printable } from '../log/logger.js';
import {
  LATENCY_BUCKETS_SECONDS,
  MAX_SERVICE_LABELS,
  OTHER_SERVICE,
  type RequestResult,
  type RequestSnapshot,
  type RequestTotals,
  type ResultCounts,
} from '../metrics/request-metrics.js';
import { MAX_FIELD_BYTES } from '../protocol/codec.js';
import { monotonicMs } from '../runtime/monotonic-clock.js';
import { checkSection, privateSection, type SharedSection } from './section.js';

/** Counters per service row, in this order. */
const RESULT_COLUMN: Record<RequestResult, number> = { ok: 0, no: 1, not_checked: 2 };
const COLUMNS = 3;
/** Rows: one per label slot, then OTHER_SERVICE's. */
const OTHER_ROW = MAX_SERVICE_LABELS;
const ROWS = MAX_SERVICE_LABELS + 1;
/** Per-bucket (not cumulative) latency counts; the last is +Inf. */
const BUCKETS = LATENCY_BUCKETS_SECONDS.length + 1;
const BUCKETS_AT = ROWS * COLUMNS;
const SUM_MICROS_AT = BUCKETS_AT + BUCKETS;
const COUNTER_WORDS = SUM_MICROS_AT + 1;
/** Label slot words: state, then the name's length in bytes. */
const STATE = 0;
const LENGTH = 1;
const LABEL_WORDS = 2;
const EMPTY = 0;
const WRITING = 1;
const READY = 2;
/** Longest service name with a label of its own: the protocol's longest field. */
const MAX_LABEL_BYTES = MAX_FIELD_BYTES;
/**
 * How long a process waits for another to publish a label it claimed. Publishing takes well
 * under a microsecond of work, but the claimer may be descheduled right then (on a busy
 * 2-core machine, for several milliseconds): this is far above any time slice, and is only
 * ever spent once per slot and process when the claimer really stopped (SIGSTOP, killed).
 */
const LABEL_WAIT_MS = 100;
/** Each look at a slot being published is followed by this sleep, leaving the CPU to its claimer. */
const LABEL_POLL_MS = 0.2;
/** Atomics.wait needs a SharedArrayBuffer (the region is not one): a private word to sleep on. */
const sleepWord = new Int32Array(new SharedArrayBuffer(4));

const COUNTERS_BYTES = COUNTER_WORDS * 8;
const LABEL_STATES_BYTES = MAX_SERVICE_LABELS * LABEL_WORDS * 4;
const LABEL_NAMES_BYTES = MAX_SERVICE_LABELS * MAX_LABEL_BYTES;

export class RequestMetrics {
  private readonly counters: BigInt64Array;
  private readonly labels: Int32Array;
  private readonly names: Uint8Array;
  /** This process's service bytes (latin1) → row, for names already published. */
  private readonly rowByService = new Map<string, number>();
  /** Slots this process found WRITING past LABEL_WAIT_MS: not waited for again. */
  private readonly stalledSlots = new Set<number>();
  private contended = 0;

  static bytesFor(): number {
    return COUNTERS_BYTES + LABEL_STATES_BYTES + LABEL_NAMES_BYTES;
  }

  /** Over a section of the shared region; without one, over this process's own memory. */
  constructor(section: SharedSection = privateSection(RequestMetrics.bytesFor())) {
    checkSection(section, RequestMetrics.bytesFor(), 'request counters');
    const { buffer, offset } = section;
    this.counters = new BigInt64Array(buffer, offset, COUNTER_WORDS);
    this.labels = new Int32Array(buffer, offset + COUNTERS_BYTES, MAX_SERVICE_LABELS * LABEL_WORDS);
    this.names = new Uint8Array(buffer, offset + COUNTERS_BYTES + LABEL_STATES_BYTES, LABEL_NAMES_BYTES);
  }

  record(result: RequestResult, service: Buffer, elapsedMs: number): void {
    Atomics.add(this.counters, this.rowFor(service) * COLUMNS + RESULT_COLUMN[result], 1n);
    const ms = Math.max(0, elapsedMs);
    const seconds = ms / 1000;
    let bucket = LATENCY_BUCKETS_SECONDS.findIndex((bound) => seconds <= bound);
    if (bucket === -1) bucket = LATENCY_BUCKETS_SECONDS.length;
    Atomics.add(this.counters, BUCKETS_AT + bucket, 1n);
    Atomics.add(this.counters, SUM_MICROS_AT, BigInt(Math.round(ms * 1000)));
  }

  snapshot(): RequestSnapshot {
    const byService = new Map<string, ResultCounts>();
    const add = (label: string, row: number): void => {
      const counts = this.rowCounts(row);
      if (counts.ok + counts.no + counts.not_checked === 0) return; // claimed, not counted yet
      const known = byService.get(label);
      if (!known) byService.set(label, counts);
      else for (const result of Object.keys(counts) as RequestResult[]) known[result] += counts[result];
    };
    for (let slot = 0; slot < MAX_SERVICE_LABELS; slot++) {
      if (Atomics.load(this.labels, slot * LABEL_WORDS + STATE) === READY) add(printable(Buffer.from(this.nameOf(slot))), slot);
    }
    add(OTHER_SERVICE, OTHER_ROW);
    const buckets: number[] = [];
    let running = 0;
    for (let bucket = 0; bucket < BUCKETS; bucket++) {
      running += Number(Atomics.load(this.counters, BUCKETS_AT + bucket));
      if (bucket < LATENCY_BUCKETS_SECONDS.length) buckets.push(running);
    }
    const sumSeconds = Number(Atomics.load(this.counters, SUM_MICROS_AT)) / 1e6;
    return { byService, latency: { buckets, count: running, sumSeconds } };
  }

  /** Replies so far, all services together: `no` counts every NO, `notChecked` those the daemon gave itself. */
  totals(): RequestTotals {
    let ok = 0;
    let no = 0;
    let notChecked = 0;
    for (let row = 0; row < ROWS; row++) {
      const counts = this.rowCounts(row);
      ok += counts.ok;
      no += counts.no + counts.not_checked;
      notChecked += counts.not_checked;
    }
    return { ok, no, notChecked };
  }

  /** Label slots published (at most MAX_SERVICE_LABELS): what the race on new names is judged by. */
  labelsInUse(): number {
    let used = 0;
    for (let slot = 0; slot < MAX_SERVICE_LABELS; slot++) if (Atomics.load(this.labels, slot * LABEL_WORDS + STATE) === READY) used++;
    return used;
  }

  /** Times this process found a label slot claimed by another at the same moment (diagnostics, tests). */
  get contendedClaims(): number {
    return this.contended;
  }

  private rowCounts(row: number): ResultCounts {
    const at = row * COLUMNS;
    return {
      ok: Number(Atomics.load(this.counters, at + RESULT_COLUMN.ok)),
      no: Number(Atomics.load(this.counters, at + RESULT_COLUMN.no)),
      not_checked: Number(Atomics.load(this.counters, at + RESULT_COLUMN.not_checked)),
    };
  }

  /** The service's row: its label slot (found, or claimed now), else OTHER_ROW. */
  private rowFor(service: Buffer): number {
    const key = service.toString('latin1');
    const known = this.rowByService.get(key);
    if (known !== undefined) return known;
    if (service.length > MAX_LABEL_BYTES) return OTHER_ROW;
    for (let slot = 0; slot < MAX_SERVICE_LABELS; slot++) {
      const stateAt = slot * LABEL_WORDS + STATE;
      let state = Atomics.load(this.labels, stateAt);
      if (state === EMPTY) {
        state = Atomics.compareExchange(this.labels, stateAt, EMPTY, WRITING);
        if (state === EMPTY) {
          this.publish(slot, service);
          this.rowByService.set(key, slot);
          return slot;
        }
        this.contended++; // another process claimed it first: maybe for this very name
      }
      if (state === WRITING) state = this.awaitPublished(slot);
      if (state === READY && this.nameIs(slot, service)) {
        this.rowByService.set(key, slot);
        return slot;
      }
    }
    return OTHER_ROW; // not remembered: the names past the limit are the client's to choose
  }

  private publish(slot: number, service: Buffer): void {
    this.names.set(service, slot * MAX_LABEL_BYTES);
    Atomics.store(this.labels, slot * LABEL_WORDS + LENGTH, service.length);
    Atomics.store(this.labels, slot * LABEL_WORDS + STATE, READY); // after the name: readers see it whole
  }

  /** The slot's state once its writer has published it, or WRITING past LABEL_WAIT_MS. */
  private awaitPublished(slot: number): number {
    const stateAt = slot * LABEL_WORDS + STATE;
    if (this.stalledSlots.has(slot)) return Atomics.load(this.labels, stateAt);
    this.contended++;
    const deadline = monotonicMs() + LABEL_WAIT_MS;
    let state = Atomics.load(this.labels, stateAt);
    while (state === WRITING && monotonicMs() < deadline) {
      Atomics.wait(sleepWord, 0, 0, LABEL_POLL_MS); // sleeps: a spin could keep the claimer off the CPU
      state = Atomics.load(this.labels, stateAt);
    }
    if (state === WRITING) this.stalledSlots.add(slot);
    return state;
  }

  private nameOf(slot: number): Uint8Array {
    const length = Atomics.load(this.labels, slot * LABEL_WORDS + LENGTH);
    return this.names.subarray(slot * MAX_LABEL_BYTES, slot * MAX_LABEL_BYTES + length);
  }

  private nameIs(slot: number, service: Buffer): boolean {
    return service.equals(this.nameOf(slot));
  }
}
