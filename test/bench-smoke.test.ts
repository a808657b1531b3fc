/**
 * The benchmark harness still works: a very short run of one scenario against both daemons
 * produces a well-formed JSON result. No timing is asserted (speed is measured by
 * `npm run bench`, never by a test).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const BENCH_JS = fileURLToPath(new URL('../bench/run.js', import.meta.url));
/** Build of the C tools plus two daemon starts and two sub-second loads. */
const SMOKE_DEADLINE_MS = 120_000;

test('npm run bench -- --smoke: both daemons measured, JSON well-formed', { timeout: SMOKE_DEADLINE_MS }, () => {
  const directory = mkdtempSync(join(tmpdir(), 'sts-bench-smoke-'));
  try {
    const out = join(directory, 'result.json');
    const run = spawnSync(process.execPath, [BENCH_JS, '--smoke', '--out', out], { encoding: 'utf8', timeout: SMOKE_DEADLINE_MS });
    assert.equal(run.status, 0, `${run.stdout}\n${run.stderr}`);
    const result = JSON.parse(readFileSync(out, 'utf8'));
    assert.equal(result.version, 1);
    assert.equal(result.workers, 5);
    assert.equal(result.scenarios.length, 1);
    const [scenario] = result.scenarios;
    assert.equal(scenario.id, 'matrix-4');
    for (const kind of ['ours', 'c']) {
      const figures = scenario[kind];
      assert.ok(figures.load.requests > 0, `${kind} answered nothing`);
      assert.equal(figures.load.errors, 0, `${kind}: ${figures.load.first_error}`);
      assert.equal(figures.load.mismatches, 0, `${kind}: ${figures.load.first_mismatch}`);
      assert.equal(figures.load.ok, figures.load.requests);
      for (const key of ['rps', 'p50_ms', 'p99_ms', 'max_ms']) assert.equal(typeof figures.load[key], 'number');
      assert.ok(figures.rssMb > 0);
      const process = result.process[kind];
      assert.equal(process.startupMs.length, 1);
      assert.ok(process.idleRssMb > 0);
    }
    assert.match(run.stdout, /\| scenario +\| figure +\| ours +\| C +\| ours\/C/);
  } finally {
    rmSync(directory, { recursive: true, force: true });
  }
});
