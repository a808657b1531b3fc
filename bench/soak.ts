/**
 * A long run of our daemon under mixed load with faults, for what a CI-sized test cannot
 * show: memory that grows, workers that stop coming back, a wrong OK after hours.
 *
 *   npm run soak                       10 minutes
 *   npm run soak -- --minutes 120      longer
 *
 * pam_matrix through pam_wrapper (bench/pam-worlds.ts), `-n 5 -c`. Rounds of 30 s, each
 * with right passwords for 1,000 distinct users (8 clients) and a wrong password (4 clients)
 * at the same time; a random worker is SIGKILLed every 5 s and SIGHUP (cache flush, workers
 * recycled) is sent every minute. Every reply is checked by the load generator. Fails (exit
 * 1) on any OK for a wrong password, any connection error, a dead daemon, or a primary whose
 * RSS after the first round grew by more than 50 %. Results: bench/results/soak-<date>.json.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { RunningDaemon } from './daemons.js';
import { MANY_PASSWORD_PREFIX, MANY_USERS, MANY_USERS_PREFIX, MatrixWorld } from './pam-worlds.js';
import { isAlive, memoryOf, sleep } from './processes.js';
import { buildTools, runLoad, type LoadResult } from './tools.js';

/** Length of one measured round. */
const ROUND_SECONDS = 30;
/** Pause between two SIGKILLs of a random worker. */
const KILL_EVERY_MS = 5_000;
/** Pause between two SIGHUPs. */
const HUP_EVERY_MS = 60_000;
/** Growth of the primary's RSS (last round against the first) that counts as a leak. */
const MAX_PRIMARY_GROWTH = 0.5;

interface Round {
  readonly round: number;
  readonly right: LoadResult;
  readonly wrong: LoadResult;
  readonly primaryRssMb: number;
  readonly totalRssMb: number;
  readonly kills: number;
}

async function main(argv: readonly string[]): Promise<number> {
  const minutesArgument = argv.indexOf('--minutes');
  const minutes = minutesArgument === -1 ? 10 : Number(argv[minutesArgument + 1]);
  if (!(minutes > 0)) throw new Error('--minutes takes a positive number');
  const rounds = Math.max(1, Math.round((minutes * 60) / ROUND_SECONDS));
  const tools = buildTools();
  const world = new MatrixWorld();
  const daemon = await RunningDaemon.start({ kind: 'ours', workers: 5, extraArgs: ['-c'], env: world.env('ours') });
  let kills = 0;
  let faulting = true;
  const faults = (async () => {
    let sinceHup = 0;
    while (faulting) {
      await sleep(KILL_EVERY_MS);
      sinceHup += KILL_EVERY_MS;
      const workers = daemon.pids().filter((pid) => pid !== daemon.pid);
      const victim = workers[Math.floor(Math.random() * workers.length)];
      if (victim !== undefined && faulting) {
        try {
          process.kill(victim, 'SIGKILL');
          kills++;
        } catch {
          // it ended meanwhile
        }
      }
      if (sinceHup >= HUP_EVERY_MS && faulting) {
        sinceHup = 0;
        process.kill(daemon.pid, 'SIGHUP');
      }
    }
  })();
  const results: Round[] = [];
  const failures: string[] = [];
  try {
    for (let round = 1; round <= rounds; round++) {
      const common = { socket: daemon.socket, warmupSeconds: 0, seconds: ROUND_SECONDS, service: 'imap', timeoutMs: 40_000 };
      const [right, wrong] = await Promise.all([
        runLoad(tools, { ...common, clients: 8, login: MANY_USERS_PREFIX, password: MANY_PASSWORD_PREFIX, users: MANY_USERS, expect: 'OK' }),
        runLoad(tools, { ...common, clients: 4, login: 'u1', password: 'not-the-password', expect: 'NO PAM auth error' }),
      ]);
      const memory = memoryOf(daemon.pids());
      const primary = memoryOf([daemon.pid]);
      results.push({ round, right, wrong, primaryRssMb: primary.rssMb, totalRssMb: memory.rssMb, kills });
      process.stderr.write(
        `[round ${round}/${rounds}] right ${right.rps.toFixed(0)} req/s (${right.no} NO), wrong ${wrong.rps.toFixed(0)} req/s ` +
          `(${wrong.ok} OK), errors ${right.errors + wrong.errors}, primary RSS ${primary.rssMb.toFixed(1)} MB, ` +
          `all ${memory.rssMb.toFixed(0)} MB, kills so far ${kills}\n`,
      );
      if (wrong.ok > 0) failures.push(`round ${round}: ${wrong.ok} OK for a wrong password`);
      if (right.errors + wrong.errors > 0) failures.push(`round ${round}: connection errors (${right.first_error || wrong.first_error})`);
      if (!isAlive(daemon.pid)) {
        failures.push(`round ${round}: the daemon died`);
        break;
      }
    }
  } finally {
    faulting = false;
    await faults;
    await daemon.stop();
    world.dispose();
  }
  const first = results[0];
  const last = results.at(-1);
  if (first && last && results.length > 2 && last.primaryRssMb > first.primaryRssMb * (1 + MAX_PRIMARY_GROWTH)) {
    failures.push(`primary RSS grew from ${first.primaryRssMb.toFixed(1)} to ${last.primaryRssMb.toFixed(1)} MB`);
  }
  const directory = fileURLToPath(new URL('../../bench/results/', import.meta.url));
  mkdirSync(directory, { recursive: true });
  const file = `${directory}soak-${new Date().toISOString().replace(/:/g, '-')}.json`;
  writeFileSync(file, `${JSON.stringify({ minutes, kills, rounds: results, failures }, null, 2)}\n`);
  const requests = results.reduce((sum, r) => sum + r.right.requests + r.wrong.requests, 0);
  process.stdout.write(`soak: ${requests} requests in ${results.length} rounds, ${kills} workers killed; ${file}\n`);
  for (const failure of failures) process.stdout.write(`FAILED: ${failure}\n`);
  if (failures.length === 0) process.stdout.write('soak: passed (no wrong OK, no connection error, no leak)\n');
  return failures.length === 0 ? 0 : 1;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`soak: ${(error as Error).stack ?? String(error)}\n`);
    process.exit(1);
  },
);
