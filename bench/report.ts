/**
 * The benchmark's result (JSON, saved per run) and its rendering: one table, both daemons
 * side by side, the ratio ours/C for every figure, the targets checked, and the
 * change of our figures since the previous run.
 */
import type { LoadResult } from './tools.js';

export interface DaemonFigures {
  readonly load: LoadResult;
  readonly background?: LoadResult;
  /** Largest sum of the daemon's RSS / PSS sampled during the measured window. */
  readonly rssMb: number;
  readonly pssMb: number;
  /** CPU time of all the daemon's processes per answered request, microseconds. */
  readonly cpuUsPerRequest: number;
}

export interface ScenarioResult {
  readonly id: string;
  readonly title: string;
  readonly ours: DaemonFigures;
  readonly c: DaemonFigures;
}

export interface ProcessFigures {
  /** Spawn → first accepted connection, every start, and their median (ours: foreground `-f`). */
  readonly startupMs: number[];
  readonly startupMedianMs: number;
  /** Ours started without `-f`: exec of the launcher → the detached daemon accepts. */
  readonly detachedStartupMs?: number[];
  readonly detachedStartupMedianMs?: number;
  readonly idleRssMb: number;
  readonly idlePssMb: number;
  /** Idle PSS of each process: the primary first, then its workers. */
  readonly idlePssMbEach?: number[];
  /**
   * As many bare `node -e 'setTimeout(()=>{},1e9)'` processes as the daemon has, read at the
   * same time as it (bench/bare-node.ts): the baseline of the idle PSS target.
   */
  readonly bareNode?: { readonly processes: number; readonly idleRssMb: number; readonly idlePssMb: number };
  /** Ours with --idle-workers 1 (the rest of -n on demand). */
  readonly onDemandIdleRssMb?: number;
  readonly onDemandIdlePssMb?: number;
}

export interface BenchResult {
  readonly version: 1;
  readonly date: string;
  readonly command: string;
  readonly machine: Record<string, string>;
  readonly workers: number;
  readonly durations: Record<string, number>;
  readonly floor: Record<string, LoadResult>;
  readonly process: { readonly ours: ProcessFigures; readonly c: ProcessFigures };
  readonly scenarios: ScenarioResult[];
}

type Better = 'higher' | 'lower';
interface Figure {
  readonly name: string;
  readonly better: Better;
  readonly value: (figures: DaemonFigures) => number;
}

const FIGURES: readonly Figure[] = [
  { name: 'req/s', better: 'higher', value: (f) => f.load.rps },
  { name: 'p50 ms', better: 'lower', value: (f) => f.load.p50_ms },
  { name: 'p99 ms', better: 'lower', value: (f) => f.load.p99_ms },
  { name: 'max ms', better: 'lower', value: (f) => f.load.max_ms },
  { name: 'RSS MB (load)', better: 'lower', value: (f) => f.rssMb },
  { name: 'CPU µs/req', better: 'lower', value: (f) => f.cpuUsPerRequest },
];

interface Target {
  readonly text: string;
  readonly check: (result: BenchResult) => { value: string; met: boolean } | undefined;
}

function ratio(result: BenchResult, id: string, figure: string): number | undefined {
  const scenario = result.scenarios.find((s) => s.id === id);
  const spec = FIGURES.find((f) => f.name === figure);
  if (!scenario || !spec) return undefined;
  return spec.value(scenario.ours) / spec.value(scenario.c);
}

const ratioTarget = (id: string, figure: string, bound: number, better: Better): Target => ({
  text: `${id} ${figure}: ours/C ${better === 'higher' ? '≥' : '≤'} ${bound}`,
  check: (result) => {
    const value = ratio(result, id, figure);
    if (value === undefined) return undefined;
    return { value: `${value.toFixed(2)}×`, met: better === 'higher' ? value >= bound : value <= bound };
  },
});

/** Issue 13: from exec to a socket that accepts, foreground and detached. */
const STARTUP_TARGET_MS = 200;
/** Issue 13: idle PSS of all the daemon's processes against as many bare Node processes. */
const BARE_NODE_PSS_TARGET = 1.15;

/** The targets. */
const TARGETS: readonly Target[] = [
  ratioTarget('matrix-16', 'req/s', 1.0, 'higher'),
  ratioTarget('matrix-16', 'p99 ms', 1.0, 'lower'),
  ratioTarget('cache-16', 'req/s', 1.5, 'higher'),
  ratioTarget('unix', 'req/s', 0.95, 'higher'),
  {
    // Since the guessing bounds (issue 9) a right login for the account under attack waits
    // for that account's turn (one failure delay) by design; the target is another account.
    text: 'guess-one-account: a right login to another account is answered in < 50 ms (ours, max)',
    check: (result) => {
      const scenario = result.scenarios.find((s) => s.id === 'guess-one-account');
      if (!scenario) return undefined;
      return { value: `${scenario.ours.load.max_ms.toFixed(1)} ms`, met: scenario.ours.load.max_ms < 50 && scenario.ours.load.errors === 0 };
    },
  },
  {
    text: 'idle RSS at -n 5 ≤ 120 MB (ours)',
    check: (result) => ({ value: `${result.process.ours.idleRssMb.toFixed(0)} MB`, met: result.process.ours.idleRssMb <= 120 }),
  },
  {
    text: 'idle RSS at -n 5 --idle-workers 1 ≤ 120 MB (ours)',
    check: (result) => {
      const rss = result.process.ours.onDemandIdleRssMb;
      return rss === undefined ? undefined : { value: `${rss.toFixed(0)} MB`, met: rss <= 120 };
    },
  },
  {
    text: `startup to listening ≤ ${STARTUP_TARGET_MS} ms (ours -f, median)`,
    check: (result) => ({
      value: `${result.process.ours.startupMedianMs.toFixed(0)} ms`,
      met: result.process.ours.startupMedianMs <= STARTUP_TARGET_MS,
    }),
  },
  {
    text: `startup to listening ≤ ${STARTUP_TARGET_MS} ms (ours detached, median)`,
    check: (result) => {
      const ms = result.process.ours.detachedStartupMedianMs;
      return ms === undefined ? undefined : { value: `${ms.toFixed(0)} ms`, met: ms <= STARTUP_TARGET_MS };
    },
  },
  {
    text: `idle PSS at -n 5 ≤ ${BARE_NODE_PSS_TARGET}× as many bare node processes (same run)`,
    check: (result) => {
      const bare = result.process.ours.bareNode;
      if (!bare) return undefined;
      const ratio = result.process.ours.idlePssMb / bare.idlePssMb;
      return { value: `${ratio.toFixed(2)}× (${result.process.ours.idlePssMb.toFixed(0)} / ${bare.idlePssMb.toFixed(0)} MB)`, met: ratio <= BARE_NODE_PSS_TARGET };
    },
  },
];

function format(value: number): string {
  if (!Number.isFinite(value)) return '–';
  if (Math.abs(value) >= 1000) return Math.round(value).toString();
  if (Math.abs(value) >= 100) return value.toFixed(0);
  if (Math.abs(value) >= 10) return value.toFixed(1);
  return value.toFixed(2);
}

function formatRatio(ours: number, c: number): string {
  if (c === 0) return ours === 0 ? '–' : '∞';
  return `${(ours / c).toFixed(2)}×`;
}

function notes(figures: DaemonFigures): string {
  const { load } = figures;
  const parts = [`${load.ok} OK, ${load.no} NO`];
  if (load.errors > 0) parts.push(`${load.errors} errors (${load.first_error})`);
  if (load.mismatches > 0) parts.push(`${load.mismatches} unexpected replies (${JSON.stringify(load.first_mismatch)})`);
  if (figures.background) {
    const { ok, no, errors, mismatches, drained_seconds: seconds } = figures.background;
    // For the guessing scenarios: refusals per second are the guesses the daemon let through
    // (over the time it took to answer every request sent in the window).
    const checked = no - mismatches;
    parts.push(
      `background: ${ok + no} replies, ${checked} refused by PAM (${(checked / seconds).toFixed(2)}/s), ` +
        `${mismatches} other replies, ${errors} errors`,
    );
  }
  return parts.join(', ');
}

/** Renders the table as Markdown (readable on a terminal too). */
export function renderTable(result: BenchResult, previous: BenchResult | undefined): string {
  const header = ['scenario', 'figure', 'ours', 'C', 'ours/C'];
  if (previous) header.push('ours vs last run');
  const rows: string[][] = [];
  for (const scenario of result.scenarios) {
    const before = previous?.scenarios.find((s) => s.id === scenario.id);
    FIGURES.forEach((figure, index) => {
      const ours = figure.value(scenario.ours);
      const c = figure.value(scenario.c);
      const row = [index === 0 ? scenario.title : '', figure.name, format(ours), format(c), formatRatio(ours, c)];
      if (previous) row.push(before ? changeSince(ours, figure.value(before.ours)) : 'new');
      rows.push(row);
    });
  }
  const processRows: [string, (p: ProcessFigures) => number][] = [
    ['startup to listening, ms (median)', (p) => p.startupMedianMs],
    ['idle RSS, MB (all processes)', (p) => p.idleRssMb],
    ['idle PSS, MB (all processes)', (p) => p.idlePssMb],
  ];
  for (const [name, value] of processRows) {
    const ours = value(result.process.ours);
    const c = value(result.process.c);
    const row = [`daemon at -n ${result.workers}`, name, format(ours), format(c), formatRatio(ours, c)];
    if (previous) row.push(changeSince(ours, value(previous.process.ours)));
    rows.push(row);
  }
  const bare = result.process.ours.bareNode;
  // Ours against the C daemon's detached start, and against bare Node (the C column holds
  // the baseline there: the ratio is the idle PSS target).
  const onDemandRows: [string, (p: ProcessFigures) => number | undefined, number][] = [
    ['startup to listening, ms; ours detached (no -f)', (p) => p.detachedStartupMedianMs, result.process.c.startupMedianMs],
    ...(bare
      ? ([
          [`idle PSS, MB; C column: ${bare.processes} bare node processes`, (p) => p.idlePssMb, bare.idlePssMb],
          [`idle RSS, MB; C column: ${bare.processes} bare node processes`, (p) => p.idleRssMb, bare.idleRssMb],
        ] as [string, (p: ProcessFigures) => number | undefined, number][])
      : []),
    ['idle RSS, MB; ours with --idle-workers 1', (p) => p.onDemandIdleRssMb, result.process.c.idleRssMb],
    ['idle PSS, MB; ours with --idle-workers 1', (p) => p.onDemandIdlePssMb, result.process.c.idlePssMb],
  ];
  for (const [name, value, c] of onDemandRows) {
    const ours = value(result.process.ours);
    if (ours === undefined) continue;
    const row = [`daemon at -n ${result.workers}`, name, format(ours), format(c), formatRatio(ours, c)];
    if (previous) {
      const before = value(previous.process.ours);
      row.push(before === undefined ? 'new' : changeSince(ours, before));
    }
    rows.push(row);
  }
  const widths = header.map((title, column) => Math.max(title.length, ...rows.map((row) => row[column]!.length)));
  const line = (cells: string[]): string => `| ${cells.map((cell, i) => cell.padEnd(widths[i]!)).join(' | ')} |`;
  return [line(header), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...rows.map(line)].join('\n');
}

function changeSince(now: number, before: number): string {
  if (!before) return '–';
  const change = (now / before - 1) * 100;
  return `${change >= 0 ? '+' : ''}${change.toFixed(0)}%`;
}

export function renderNotes(result: BenchResult): string {
  const lines = ['Replies (every reply is checked against the expected text):'];
  for (const scenario of result.scenarios) {
    lines.push(`  ${scenario.id}: ours ${notes(scenario.ours)}; C ${notes(scenario.c)}`);
  }
  const { idlePssMbEach: each, bareNode: bare } = result.process.ours;
  if (each && each.length > 0) {
    const [primary, ...workers] = each;
    lines.push(
      `Idle PSS per process, MB: ours primary ${format(primary!)}, workers ${workers.map(format).join(' ')}` +
        (bare ? `; a bare node process ${format(bare.idlePssMb / bare.processes)} (mean of ${bare.processes})` : ''),
    );
  }
  const floor = Object.entries(result.floor);
  if (floor.length > 0) {
    lines.push('Floor (a server that answers OK without doing anything; same generator, 16 clients):');
    for (const [name, load] of floor) {
      lines.push(
        `  ${name}: ${format(load.rps)} req/s, p50 ${format(load.p50_ms)} ms, p99 ${format(load.p99_ms)} ms, generator CPU ${format((load.cpu_seconds / load.seconds) * 100)}% of one core`,
      );
    }
  }
  return lines.join('\n');
}

export function renderTargets(result: BenchResult): string {
  const lines = ['Targets:'];
  for (const target of TARGETS) {
    const outcome = target.check(result);
    if (!outcome) continue;
    lines.push(`  ${outcome.met ? 'met    ' : 'NOT met'}  ${target.text}: ${outcome.value}`);
  }
  return lines.join('\n');
}
