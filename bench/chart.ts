/**
 * The benchmark's picture: an SVG of the side-by-side figures, ours vs the C daemon, per
 * scenario — requests per second and p99 latency, each on a logarithmic axis (the figures
 * span 0.1 to 100,000). Written by every `npm run bench` beside its JSON, and rendered from
 * any saved result with `node dist/bench/chart.js RESULT.json OUT.svg` (the README shows
 * bench/latest.svg, made from bench/latest.json). Plain SVG, no script, no external fonts.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { BenchResult, DaemonFigures } from './report.js';

const ROW_HEIGHT = 26;
const BAR_HEIGHT = 10;
const LABEL_WIDTH = 330;
const PANEL_WIDTH = 330;
const PANEL_GAP = 40;
const TOP = 64;
const BOTTOM = 40;
const LEFT = 10;
const COLORS = { ours: '#1f77b4', c: '#ff7f0e' } as const;

interface Panel {
  readonly title: string;
  readonly value: (figures: DaemonFigures) => number;
  readonly unit: string;
}

const PANELS: readonly Panel[] = [
  { title: 'requests per second (higher is better)', value: (f) => f.load.rps, unit: '/s' },
  { title: 'p99 latency, ms (lower is better)', value: (f) => f.load.p99_ms, unit: ' ms' },
];

export function renderChart(result: BenchResult): string {
  const rows = result.scenarios;
  const height = TOP + rows.length * ROW_HEIGHT + BOTTOM;
  const width = LEFT + LABEL_WIDTH + PANELS.length * (PANEL_WIDTH + PANEL_GAP);
  const parts: string[] = [];
  parts.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="11">`,
    `<rect width="${width}" height="${height}" fill="#ffffff"/>`,
    `<text x="${LEFT}" y="18" font-size="14" font-weight="bold">${escape(`saslauthd-ts vs C saslauthd ${cVersion(result)} — ${result.date.slice(0, 10)}, ${result.machine['cpus'] ?? '?'} CPUs, -n ${result.workers}`)}</text>`,
    `<rect x="${LEFT}" y="28" width="10" height="10" fill="${COLORS.ours}"/><text x="${LEFT + 14}" y="37">ours (saslauthd-ts)</text>`,
    `<rect x="${LEFT + 140}" y="28" width="10" height="10" fill="${COLORS.c}"/><text x="${LEFT + 154}" y="37">C saslauthd</text>`,
  );
  rows.forEach((scenario, index) => {
    const y = TOP + index * ROW_HEIGHT;
    parts.push(`<text x="${LEFT}" y="${y + BAR_HEIGHT + 3}">${escape(truncate(scenario.title, 52))}</text>`);
  });
  PANELS.forEach((panel, panelIndex) => {
    const x0 = LEFT + LABEL_WIDTH + panelIndex * (PANEL_WIDTH + PANEL_GAP);
    const values = rows.flatMap((s) => [panel.value(s.ours), panel.value(s.c)]).filter((v) => v > 0 && Number.isFinite(v));
    const low = Math.floor(Math.log10(Math.min(...values, 1)));
    const high = Math.ceil(Math.log10(Math.max(...values, 10)));
    const scale = (value: number): number => {
      const clamped = Math.max(value, 10 ** low);
      return ((Math.log10(clamped) - low) / (high - low)) * PANEL_WIDTH;
    };
    parts.push(`<text x="${x0}" y="${TOP - 10}" font-weight="bold">${escape(panel.title)}</text>`);
    for (let decade = low; decade <= high; decade++) {
      const x = x0 + scale(10 ** decade);
      parts.push(
        `<line x1="${x.toFixed(1)}" y1="${TOP - 4}" x2="${x.toFixed(1)}" y2="${TOP + rows.length * ROW_HEIGHT}" stroke="#dddddd"/>`,
        `<text x="${x.toFixed(1)}" y="${TOP + rows.length * ROW_HEIGHT + 14}" text-anchor="middle" fill="#555555">${escape(decadeLabel(decade))}</text>`,
      );
    }
    rows.forEach((scenario, index) => {
      const y = TOP + index * ROW_HEIGHT;
      for (const [offset, kind] of [[0, 'ours'], [BAR_HEIGHT + 1, 'c']] as const) {
        const value = panel.value(scenario[kind]);
        const length = Math.max(1, scale(value));
        parts.push(
          `<rect class="bar" data-scenario="${escape(scenario.id)}" data-daemon="${kind}" data-value="${value}" x="${x0}" y="${y + offset}" width="${length.toFixed(1)}" height="${BAR_HEIGHT}" fill="${COLORS[kind]}"><title>${escape(`${scenario.title}, ${kind === 'ours' ? 'ours' : 'C'}: ${formatValue(value)}${panel.unit}`)}</title></rect>`,
          `<text x="${(x0 + length + 3).toFixed(1)}" y="${y + offset + BAR_HEIGHT - 1}" font-size="9" fill="#333333">${escape(formatValue(value))}</text>`,
        );
      }
    });
  });
  parts.push(`<text x="${LEFT}" y="${height - 8}" font-size="9" fill="#777777">${escape(`${result.command}; logarithmic axes; bench/report.ts has the full table`)}</text>`, '</svg>');
  return `${parts.join('\n')}\n`;
}

function cVersion(result: BenchResult): string {
  return /saslauthd (\S+)/.exec(result.machine['cSaslauthd'] ?? '')?.[1] ?? '';
}

function decadeLabel(decade: number): string {
  const value = 10 ** decade;
  if (value >= 1000) return `${value / 1000}k`;
  return String(value);
}

function formatValue(value: number): string {
  if (value >= 100) return String(Math.round(value));
  if (value >= 10) return value.toFixed(1);
  return value.toFixed(2);
}

function truncate(text: string, length: number): string {
  return text.length <= length ? text : `${text.slice(0, length - 1)}…`;
}

function escape(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** `node dist/bench/chart.js RESULT.json OUT.svg` */
if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const [input, output] = process.argv.slice(2);
  if (!input || !output) {
    process.stderr.write('usage: node dist/bench/chart.js RESULT.json OUT.svg\n');
    process.exit(2);
  }
  writeFileSync(output, renderChart(JSON.parse(readFileSync(input, 'utf8')) as BenchResult));
}
