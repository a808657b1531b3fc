/**
 * `npm run bench`: our daemon and Debian's C saslauthd side by side, same PAM configuration,
 * same `-n`, same load generator; one table with the ratio ours/C for every figure.
 *
 *   npm run bench                   full run (a few minutes)
 *   npm run bench -- --quick        shorter windows, one startup sample
 *   npm run bench -- --only REGEX   only the scenarios whose id matches (no floor)
 *   npm run bench -- --smoke        tiny run of one scenario, nothing saved (the test suite's check)
 *   npm run bench -- --out FILE     also write the JSON result to FILE
 *   npm run bench -- --workers N    -n for both daemons (default 5)
 *
 * Every run is saved as bench/results/<date>.json and bench/results/last.json; the previous
 * last.json is the "last run" column.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, release, totalmem } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { RunningDaemon, cSaslauthd, type DaemonKind } from './daemons.js';
import { SasldbWorld, ShadowWorld } from './local-worlds.js';
import { LdapWorld } from './ldap-world.js';
import { MatrixWorld, UnixWorld } from './pam-worlds.js';
import { BareNodes } from './bare-node.js';
import { cpuSecondsOf, memoryOf, sleep, type Memory } from './processes.js';
import { renderChart } from './chart.js';
import { renderNotes, renderTable, renderTargets, type BenchResult, type DaemonFigures, type ProcessFigures, type ScenarioResult } from './report.js';
import { scenarios, type Durations, type LoadPlan, type MechanismWorlds, type Scenario } from './scenarios.js';
import { buildTools, runLoad, type LoadResult, type Tools } from './tools.js';

const RESULTS_DIR = fileURLToPath(new URL('../../bench/results/', import.meta.url));
const FLOOR_NODE_JS = fileURLToPath(new URL('./floor-node.js', import.meta.url));
/** How often memory is sampled during a measured window. */
const MEMORY_SAMPLE_MS = 250;
/** Pause after startup before idle memory is read (workers finish initialising). */
const IDLE_SETTLE_MS = 1_000;
/** Clients of the floor measurement: the issue's headline concurrency. */
const FLOOR_CLIENTS = 16;

interface Options {
  readonly durations: Durations;
  readonly startups: number;
  readonly only: RegExp | undefined;
  readonly out: string | undefined;
  readonly workers: number;
  readonly floor: boolean;
  readonly mode: 'full' | 'quick' | 'smoke';
}

function parseOptions(argv: readonly string[]): Options {
  const value = (name: string): string | undefined => {
    const index = argv.indexOf(name);
    return index === -1 ? undefined : argv[index + 1];
  };
  const mode = argv.includes('--smoke') ? 'smoke' : argv.includes('--quick') ? 'quick' : 'full';
  const durations: Record<typeof mode, Durations> = {
    full: { warmupSeconds: 1, seconds: 5, unixSeconds: 8 },
    quick: { warmupSeconds: 0.5, seconds: 2, unixSeconds: 4 },
    smoke: { warmupSeconds: 0.2, seconds: 0.5, unixSeconds: 1 },
  };
  const onlyText = value('--only') ?? (mode === 'smoke' ? '^matrix-4$' : undefined);
  return {
    durations: durations[mode],
    startups: mode === 'full' ? 3 : 1,
    only: onlyText === undefined ? undefined : new RegExp(onlyText),
    out: value('--out'),
    workers: Number(value('--workers') ?? 5),
    floor: onlyText === undefined,
    mode,
  };
}

const progress = (text: string): boolean => process.stderr.write(`${text}\n`);

function machine(): Record<string, string> {
  const saslauthd = spawnSync(cSaslauthd(), ['-v'], { encoding: 'utf8' });
  const lscpu = spawnSync('lscpu', [], { encoding: 'utf8' }).stdout ?? '';
  return {
    cpus: String(cpus().length),
    cpuModel: /^Model name:\s*(.+)$/m.exec(lscpu)?.[1]?.trim() ?? cpus()[0]?.model ?? 'unknown',
    memoryGiB: (totalmem() / 2 ** 30).toFixed(1),
    kernel: release(),
    node: process.version,
    cSaslauthd: `${cSaslauthd()}: ${`${saslauthd.stdout}${saslauthd.stderr}`.split('\n')[0]}`,
  };
}

async function measureFloor(tools: Tools, durations: Durations): Promise<Record<string, LoadResult>> {
  const floor: Record<string, LoadResult> = {};
  const servers: [string, string, string[]][] = [
    ['C epoll server', tools.floorServer, []],
    ['Node net server', process.execPath, [FLOOR_NODE_JS]],
  ];
  for (const [name, command, args] of servers) {
    const socket = `/tmp/sts-bench-floor-${process.pid}.sock`;
    const server = spawn(command, [...args, socket], { stdio: 'inherit' });
    while (!existsSync(socket)) await sleep(5);
    await sleep(100);
    floor[name] = await runLoad(tools, {
      socket,
      clients: FLOOR_CLIENTS,
      warmupSeconds: durations.warmupSeconds,
      seconds: durations.seconds,
      login: 'floor',
      password: 'floor',
      service: 'imap',
      expect: 'OK',
    });
    server.kill('SIGTERM');
    rmSync(socket, { force: true });
    progress(`floor: ${name}: ${floor[name]!.rps.toFixed(0)} req/s`);
  }
  return floor;
}

/** Our daemon's lean idle configuration, measured beside the default full pool. */
const ON_DEMAND_ARGS = ['--idle-workers', '1'];

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor((sorted.length - 1) / 2)]!;
}

async function measureProcess(kind: DaemonKind, world: MatrixWorld, options: Options): Promise<ProcessFigures> {
  const startupMs: number[] = [];
  let idle: Memory = { rssMb: 0, pssMb: 0, pssMbEach: [] };
  let bareNode: ProcessFigures['bareNode'];
  for (let i = 0; i < options.startups; i++) {
    const daemon = await RunningDaemon.start({ kind, workers: options.workers, extraArgs: [], env: world.env(kind) });
    startupMs.push(daemon.startupMs);
    if (i === 0) {
      await sleep(IDLE_SETTLE_MS);
      if (kind === 'ours') {
        // the baseline is read beside the daemon, both alive (see bare-node.ts)
        const bare = await BareNodes.start(daemon.pids().length);
        idle = memoryOf(daemon.pids());
        const baseline = bare.memory();
        bare.stop();
        bareNode = { processes: baseline.pssMbEach.length, idleRssMb: baseline.rssMb, idlePssMb: baseline.pssMb };
      } else {
        idle = memoryOf(daemon.pids());
      }
    }
    await daemon.stop();
  }
  progress(`${kind.padEnd(4)} startup ${median(startupMs).toFixed(0)} ms, idle RSS ${idle.rssMb.toFixed(0)} MB, PSS ${idle.pssMb.toFixed(0)} MB`);
  const figures = { startupMs, startupMedianMs: median(startupMs), idleRssMb: idle.rssMb, idlePssMb: idle.pssMb, idlePssMbEach: idle.pssMbEach };
  if (kind === 'c') return figures;
  if (bareNode) progress(`bare node × ${bareNode.processes}: idle PSS ${bareNode.idlePssMb.toFixed(0)} MB`);
  const detachedStartupMs: number[] = [];
  for (let i = 0; i < options.startups; i++) {
    const daemon = await RunningDaemon.start({ kind, workers: options.workers, extraArgs: [], env: world.env(kind), detached: true });
    detachedStartupMs.push(daemon.startupMs);
    await daemon.stop();
  }
  progress(`ours detached: startup ${median(detachedStartupMs).toFixed(0)} ms`);
  // Ours can keep fewer workers started while idle; the others start on demand.
  const onDemand = await RunningDaemon.start({ kind, workers: options.workers, extraArgs: ON_DEMAND_ARGS, env: world.env(kind) });
  await sleep(IDLE_SETTLE_MS);
  const lean = memoryOf(onDemand.pids());
  await onDemand.stop();
  progress(`ours ${ON_DEMAND_ARGS.join(' ')}: idle RSS ${lean.rssMb.toFixed(0)} MB`);
  return {
    ...figures,
    ...(bareNode ? { bareNode } : {}),
    detachedStartupMs,
    detachedStartupMedianMs: median(detachedStartupMs),
    onDemandIdleRssMb: lean.rssMb,
    onDemandIdlePssMb: lean.pssMb,
  };
}

/** Runs one load against a daemon, sampling its memory and CPU during the measured window. */
async function measure(tools: Tools, daemon: RunningDaemon, plan: LoadPlan, background: LoadPlan | undefined): Promise<DaemonFigures> {
  const backgroundRun = background ? runLoad(tools, { ...background, socket: daemon.socket }) : undefined;
  const run = runLoad(tools, { ...plan, socket: daemon.socket });
  let finished = false;
  void run.finally(() => (finished = true)).catch(() => {});
  await sleep(plan.warmupSeconds * 1000);
  const cpuStart = cpuSecondsOf(daemon.pids());
  let cpuEnd = cpuStart;
  let rssMb = 0;
  let pssMb = 0;
  const windowEnd = Date.now() + plan.seconds * 1000;
  while (!finished && Date.now() < windowEnd) {
    const pids = daemon.pids();
    const memory = memoryOf(pids);
    rssMb = Math.max(rssMb, memory.rssMb);
    pssMb = Math.max(pssMb, memory.pssMb);
    cpuEnd = cpuSecondsOf(pids);
    await sleep(Math.min(MEMORY_SAMPLE_MS, Math.max(0, windowEnd - Date.now())));
  }
  cpuEnd = Math.max(cpuEnd, cpuSecondsOf(daemon.pids()));
  const load = await run;
  const answered = load.requests - load.errors;
  const figures: DaemonFigures = {
    load,
    rssMb,
    pssMb,
    cpuUsPerRequest: answered > 0 ? ((cpuEnd - cpuStart) * 1e6) / answered : Number.NaN,
  };
  return backgroundRun ? { ...figures, background: await backgroundRun } : figures;
}

/** How each daemon of a scenario's world is started: mechanism, environment, command prefix. */
function daemonSetupFor(scenario: Scenario, kind: 'ours' | 'c', matrix: MatrixWorld, unix: UnixWorld | undefined, worlds: MechanismWorlds) {
  if (scenario.world === 'unix') return { env: unix!.env(), wrap: unix!.wrap };
  if (scenario.world === 'matrix') return { env: matrix.env(kind) };
  const world = worlds[scenario.world]!;
  const env = { ...process.env };
  delete env['LD_PRELOAD'];
  delete env['NODE_OPTIONS'];
  return { env, mechanism: world.mechanism, ...(world.wrap ? { wrap: world.wrap } : {}) };
}

/** Arguments a scenario's daemons get besides the mechanism: `-c`, the world's own (`-O`). */
function extraArgsFor(scenario: Scenario, worlds: MechanismWorlds): string[] {
  const world = scenario.world === 'unix' || scenario.world === 'matrix' ? undefined : worlds[scenario.world];
  return [...(scenario.cache ? ['-c'] : []), ...(world?.args ?? [])];
}

async function runScenarios(
  tools: Tools,
  list: readonly Scenario[],
  matrix: MatrixWorld,
  unix: UnixWorld | undefined,
  worlds: MechanismWorlds,
  options: Options,
): Promise<ScenarioResult[]> {
  const figures = new Map<string, Partial<Record<DaemonKind, DaemonFigures>>>();
  const configs = [...new Set(list.map((s) => `${s.world}:${s.cache}`))];
  let done = 0;
  const total = list.length * 2;
  for (const config of configs) {
    const group = list.filter((s) => `${s.world}:${s.cache}` === config);
    for (const kind of ['ours', 'c'] as const) {
      const daemon = await RunningDaemon.start({
        kind,
        workers: options.workers,
        extraArgs: extraArgsFor(group[0]!, worlds),
        ...daemonSetupFor(group[0]!, kind, matrix, unix, worlds),
      });
      try {
        for (const scenario of group) {
          done++;
          process.stderr.write(`[${String(done).padStart(2)}/${total}] ${kind.padEnd(4)} ${scenario.title} … `);
          const result = await measure(tools, daemon, scenario.load, scenario.background);
          const entry = figures.get(scenario.id) ?? {};
          entry[kind] = result;
          figures.set(scenario.id, entry);
          const { load } = result;
          progress(
            `${load.rps.toFixed(0)} req/s, p99 ${load.p99_ms.toFixed(2)} ms` +
              (load.errors + load.mismatches > 0 ? `, ${load.errors} errors, ${load.mismatches} unexpected` : ''),
          );
        }
      } finally {
        await daemon.stop();
      }
    }
  }
  return list.map((s) => ({ id: s.id, title: s.title, ours: figures.get(s.id)!.ours!, c: figures.get(s.id)!.c! }));
}

function readPrevious(): BenchResult | undefined {
  try {
    return JSON.parse(readFileSync(join(RESULTS_DIR, 'last.json'), 'utf8')) as BenchResult;
  } catch {
    return undefined;
  }
}

async function main(argv: readonly string[]): Promise<void> {
  const options = parseOptions(argv);
  const tools = buildTools();
  const info = machine();
  progress(`saslauthd benchmark (${options.mode}): ${info.cpus} × ${info.cpuModel}, Node ${info.node}, ${info.cSaslauthd}`);
  const matrix = new MatrixWorld();
  let unix: UnixWorld | undefined;
  const worlds: { shadow?: ShadowWorld; sasldb?: SasldbWorld; ldap?: LdapWorld } = {};
  try {
    const wanted = (ids: readonly string[]): boolean => options.only === undefined || ids.some((id) => options.only!.test(id));
    const unixWanted = wanted(['unix', 'unix-wrong-20', 'guess-one-account', 'guess-many-accounts', 'burst-300']);
    if (unixWanted && UnixWorld.available()) unix = new UnixWorld();
    else if (unixWanted) progress('not root: the pam_unix scenarios are skipped');
    if (wanted(['shadow']) && ShadowWorld.available()) worlds.shadow = new ShadowWorld();
    else if (wanted(['shadow'])) progress('not root: the shadow scenario is skipped');
    if (wanted(['sasldb-1', 'sasldb-16']) && SasldbWorld.available()) worlds.sasldb = new SasldbWorld();
    else if (wanted(['sasldb-1', 'sasldb-16'])) progress('not root or no /etc/sasldb2: the sasldb scenarios are skipped');
    if (wanted(['ldap-1', 'ldap-16']) && LdapWorld.available()) worlds.ldap = await LdapWorld.start();
    else if (wanted(['ldap-1', 'ldap-16'])) progress('slapd not installed: the ldap scenarios are skipped');
    const list = scenarios(options.durations, unix, worlds).filter((s) => !options.only || options.only.test(s.id));
    const floor = options.floor ? await measureFloor(tools, options.durations) : {};
    const processFigures = {
      ours: await measureProcess('ours', matrix, options),
      c: await measureProcess('c', matrix, options),
    };
    const scenarioResults = await runScenarios(tools, list, matrix, unix, worlds, options);
    const result: BenchResult = {
      version: 1,
      date: new Date().toISOString(),
      command: `npm run bench${argv.length > 0 ? ` -- ${argv.join(' ')}` : ''}`,
      machine: info,
      workers: options.workers,
      durations: { ...options.durations },
      floor,
      process: processFigures,
      scenarios: scenarioResults,
    };
    const previous = readPrevious();
    const json = `${JSON.stringify(result, null, 2)}\n`;
    if (options.mode !== 'smoke') {
      mkdirSync(RESULTS_DIR, { recursive: true });
      writeFileSync(join(RESULTS_DIR, `${result.date.replaceAll(':', '-')}.json`), json);
      writeFileSync(join(RESULTS_DIR, 'last.json'), json);
      const chart = renderChart(result);
      writeFileSync(join(RESULTS_DIR, `${result.date.replaceAll(':', '-')}.svg`), chart);
      writeFileSync(join(RESULTS_DIR, 'last.svg'), chart);
      progress(`chart: ${join(RESULTS_DIR, 'last.svg')} (copy it to bench/latest.svg with bench/latest.json for the README)`);
    }
    if (options.out) {
      writeFileSync(options.out, json);
      writeFileSync(options.out.replace(/(\.json)?$/, '.svg'), renderChart(result));
    }
    process.stdout.write(`\n${renderTable(result, previous)}\n\n${renderNotes(result)}\n\n${renderTargets(result)}\n`);
  } finally {
    unix?.dispose();
    worlds.shadow?.dispose();
    worlds.sasldb?.dispose();
    await worlds.ldap?.dispose();
    matrix.dispose();
  }
}

main(process.argv.slice(2)).catch((error: unknown) => {
  process.stderr.write(`bench: ${(error as Error).stack ?? String(error)}\n`);
  process.exit(1);
});
