/**
 * The benchmark's SVG chart (bench/chart.ts): well-formed XML (python's parser), one bar per
 * scenario, daemon and panel carrying its figure, bar lengths ordered as the figures are
 * (logarithmic axis), and bench/latest.svg — the picture the README shows — is the chart of
 * bench/latest.json.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { renderChart } from '../bench/chart.js';
import type { BenchResult } from '../bench/report.js';
import { REPO_ROOT } from './helpers/paths.js';

const latest = JSON.parse(readFileSync(join(REPO_ROOT, 'bench', 'latest.json'), 'utf8')) as BenchResult;

interface Bar {
  readonly scenario: string;
  readonly daemon: string;
  readonly value: number;
  readonly x: number;
  readonly width: number;
}

function bars(svg: string): Bar[] {
  return [...svg.matchAll(/<rect class="bar" data-scenario="([^"]+)" data-daemon="(ours|c)" data-value="([^"]+)" x="([^"]+)" y="[^"]+" width="([^"]+)"/g)].map((m) => ({
    scenario: m[1]!,
    daemon: m[2]!,
    value: Number(m[3]),
    x: Number(m[4]),
    width: Number(m[5]),
  }));
}

test('the chart is well-formed SVG with a bar per scenario, daemon and figure', () => {
  const svg = renderChart(latest);
  const parsed = spawnSync('/usr/bin/python3', ['-c', 'import sys, xml.etree.ElementTree as E; root = E.fromstring(sys.stdin.read()); print(root.tag)'], { input: svg, encoding: 'utf8' });
  assert.equal(parsed.status, 0, parsed.stderr);
  assert.equal(parsed.stdout.trim(), '{http://www.w3.org/2000/svg}svg');
  const all = bars(svg);
  assert.equal(all.length, latest.scenarios.length * 2 * 2);
  for (const scenario of latest.scenarios) {
    const mine = all.filter((bar) => bar.scenario === scenario.id);
    assert.deepEqual(
      mine.map((bar) => bar.value),
      [scenario.ours.load.rps, scenario.c.load.rps, scenario.ours.load.p99_ms, scenario.c.load.p99_ms],
    );
  }
});

test('within a panel, a larger figure draws a longer bar', () => {
  const all = bars(renderChart(latest));
  for (const panelX of new Set(all.map((bar) => bar.x))) {
    const panel = all.filter((bar) => bar.x === panelX).sort((a, b) => a.value - b.value);
    for (let index = 1; index < panel.length; index++) {
      assert.ok(panel[index]!.width >= panel[index - 1]!.width, `${panel[index]!.value} vs ${panel[index - 1]!.value}`);
    }
  }
});

test('bench/latest.svg (shown in the README) is the chart of bench/latest.json', () => {
  assert.equal(readFileSync(join(REPO_ROOT, 'bench', 'latest.svg'), 'utf8'), renderChart(latest));
  assert.match(readFileSync(join(REPO_ROOT, 'README.md'), 'utf8'), /!\[[^\]]*\]\(bench\/latest\.svg\)/);
});
