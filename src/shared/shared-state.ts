/**
 * The daemon's memory shared by the primary and every worker, in one region
 * (native/shared-memory.ts), laid out the same way by both from the same sizes:
 *   header    magic, version, connections the primary holds (for --max-connections in
 *             workers), the per-start HMAC key (32 random bytes; never in argv or env)
 *   counters  request counters and latency histogram (shared/request-counters.ts): all add
 *   suspects  logins and passwords refused recently (shared/suspect-table.ts): primary writes
 *   activity  what each worker is checking, since when (shared/worker-activity.ts): each its own
 *   cache     the credential cache, with -c (shared/credential-table.ts): primary writes
 * The primary creates it before the first worker; a worker inherits the descriptor as
 * SHARED_REGION_FD and maps it.
 */
import { randomBytes } from 'node:crypto';
import { RegionLayout, SharedRegion } from '../native/shared-memory.js';
import { CacheReader } from '../server/cache-reader.js';
import { cacheSectionBytes } from '../server/credential-cache.js';
import { KeyedDigest } from '../server/keyed-digest.js';
import { RequestMetrics } from './request-counters.js';
import type { SharedSection } from './section.js';
import { SuspectTable, SuspectTableReader } from './suspect-table.js';
import { WorkerActivity } from './worker-activity.js';

/** The worker's descriptor for the region (the fifth stdio entry of spawn()). */
export const SHARED_REGION_FD = 4;

/** What both sides need to lay the region out identically (JSON: passed in worker settings). */
export interface SharedStateSizes {
  /** With `-c`: `-s` in kilobytes, or null for the default table. Absent: no cache. */
  readonly cache?: { readonly sizeKb: number | null };
  /** Activity records: one per worker that may run at once (old and new ones during SIGHUP). */
  readonly activityPlaces: number;
}

const MAGIC = 0x53_41_53_4c; // "SASL"
const VERSION = 1;
/** Header word: the client connections the primary holds now. */
const OPEN_CONNECTIONS_WORD = 2;

/** The client connections the primary holds: it publishes, workers compare with --max-connections. */
export class ConnectionGauge {
  constructor(private readonly words: Int32Array) {}
  publish(count: number): void {
    Atomics.store(this.words, OPEN_CONNECTIONS_WORD, count);
  }
  get current(): number {
    return Atomics.load(this.words, OPEN_CONNECTIONS_WORD);
  }
}
const KEY_OFFSET = 16;
const KEY_BYTES = 32;
const HEADER_BYTES = KEY_OFFSET + KEY_BYTES;

function layoutOf(sizes: SharedStateSizes): RegionLayout {
  const layout = new RegionLayout()
    .add('header', HEADER_BYTES)
    .add('counters', RequestMetrics.bytesFor())
    .add('suspects', SuspectTableReader.bytesFor())
    .add('activity', WorkerActivity.bytesFor(sizes.activityPlaces));
  if (sizes.cache) layout.add('cache', cacheSectionBytes(sizes.cache.sizeKb ?? undefined));
  return layout;
}

function sectionOf(region: SharedRegion, layout: RegionLayout, name: string): SharedSection {
  return { buffer: region.buffer, ...layout.section(name) };
}

/** The primary's side: it writes the tables, and reads what workers publish. */
export interface PrimaryShared {
  readonly region: SharedRegion;
  readonly digest: KeyedDigest;
  readonly counters: RequestMetrics;
  readonly suspects: SuspectTable;
  readonly activity: WorkerActivity;
  readonly connections: ConnectionGauge;
  /** Where the credential cache goes (CredentialCache takes it), with -c. */
  readonly cacheSection: SharedSection | undefined;
}

export function createSharedState(sizes: SharedStateSizes): PrimaryShared {
  const layout = layoutOf(sizes);
  const region = SharedRegion.create('saslauthd-shared', layout.totalBytes);
  const header = sectionOf(region, layout, 'header');
  const words = new Uint32Array(header.buffer, header.offset, 2);
  const gauge = new ConnectionGauge(new Int32Array(header.buffer, header.offset, 4));
  const key = randomBytes(KEY_BYTES);
  Buffer.from(header.buffer, header.offset + KEY_OFFSET, KEY_BYTES).set(key);
  Atomics.store(words, 1, VERSION);
  Atomics.store(words, 0, MAGIC);
  const digest = new KeyedDigest(Buffer.from(key)); // its own copy: `key` is wiped below
  key.fill(0);
  const activity = layout.section('activity');
  return {
    region,
    digest,
    counters: new RequestMetrics(sectionOf(region, layout, 'counters')),
    suspects: new SuspectTable(sectionOf(region, layout, 'suspects')),
    activity: new WorkerActivity(region.buffer, activity.offset, sizes.activityPlaces),
    connections: gauge,
    cacheSection: sizes.cache ? sectionOf(region, layout, 'cache') : undefined,
  };
}

/** A worker's side: it reads the tables, adds to the counters, writes its activity record. */
export interface WorkerShared {
  readonly digest: KeyedDigest;
  readonly counters: RequestMetrics;
  readonly suspects: SuspectTableReader;
  readonly activity: WorkerActivity;
  readonly connections: ConnectionGauge;
  readonly cache: CacheReader | undefined;
}

export function openSharedState(fd: number, sizes: SharedStateSizes): WorkerShared {
  const layout = layoutOf(sizes);
  const region = SharedRegion.map(fd);
  if (region.bytes < layout.totalBytes) throw new Error(`shared region: ${region.bytes} bytes, the layout needs ${layout.totalBytes}`);
  const header = sectionOf(region, layout, 'header');
  const words = new Uint32Array(header.buffer, header.offset, 2);
  if (Atomics.load(words, 0) !== MAGIC || Atomics.load(words, 1) !== VERSION) throw new Error('shared region: not made by this version of the primary');
  const digest = new KeyedDigest(Buffer.from(Buffer.from(header.buffer, header.offset + KEY_OFFSET, KEY_BYTES)));
  const activity = layout.section('activity');
  return {
    digest,
    counters: new RequestMetrics(sectionOf(region, layout, 'counters')),
    suspects: new SuspectTableReader(sectionOf(region, layout, 'suspects')),
    activity: new WorkerActivity(region.buffer, activity.offset, sizes.activityPlaces),
    connections: new ConnectionGauge(new Int32Array(header.buffer, header.offset, 4)),
    cache: sizes.cache ? new CacheReader(sectionOf(region, layout, 'cache'), digest) : undefined,
  };
}
