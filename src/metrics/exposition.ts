/**
 * Metric families rendered as text, in the two formats scrapers read:
 *   - OpenMetrics 1.0 (`application/openmetrics-text; version=1.0.0`): counter families
 *     named without `_total`, `# UNIT` lines, `info` families, a final `# EOF`;
 *   - Prometheus text 0.0.4 (`text/plain; version=0.0.4`), for tools that read only it
 *     (Debian 12's `promtool check metrics`): counters typed under their `_total` name,
 *     info families as gauges, no `# EOF`.
 * Both come from the same families, so they always carry the same numbers.
 */

export type MetricType = 'counter' | 'gauge' | 'histogram' | 'info';
export type ExpositionFormat = 'openmetrics' | 'prometheus';

export const CONTENT_TYPES: Readonly<Record<ExpositionFormat, string>> = {
  openmetrics: 'application/openmetrics-text; version=1.0.0; charset=utf-8',
  prometheus: 'text/plain; version=0.0.4; charset=utf-8',
};

export interface Sample {
  /** Appended to the family name: `_total`, `_bucket`, `_info`, or '' (gauges). */
  readonly suffix: string;
  readonly labels?: Readonly<Record<string, string>>;
  readonly value: number;
}

export interface MetricFamily {
  /** Without `_total` (counters) or `_info` (info). */
  readonly name: string;
  readonly type: MetricType;
  readonly help: string;
  /** OpenMetrics `# UNIT`: the name must end with `_<unit>`. */
  readonly unit?: string;
  readonly samples: readonly Sample[];
}

export function renderMetrics(families: readonly MetricFamily[], format: ExpositionFormat): string {
  let text = '';
  for (const family of families) {
    const openMetrics = format === 'openmetrics';
    // 0.0.4 has no info type and names a counter by its sample name.
    const typedName = openMetrics ? family.name : family.type === 'counter' ? `${family.name}_total` : family.type === 'info' ? `${family.name}_info` : family.name;
    const type = !openMetrics && family.type === 'info' ? 'gauge' : family.type;
    text += `# HELP ${typedName} ${escapeHelp(family.help)}\n# TYPE ${typedName} ${type}\n`;
    if (openMetrics && family.unit) text += `# UNIT ${family.name} ${family.unit}\n`;
    for (const sample of family.samples) text += `${family.name}${sample.suffix}${labelText(sample.labels)} ${numberText(sample.value)}\n`;
  }
  return format === 'openmetrics' ? `${text}# EOF\n` : text;
}

/** The format a scraper asked for: OpenMetrics when its Accept header names it (Prometheus does). */
export function negotiateFormat(accept: string | undefined): ExpositionFormat {
  return accept !== undefined && accept.includes('application/openmetrics-text') ? 'openmetrics' : 'prometheus';
}

function labelText(labels: Readonly<Record<string, string>> | undefined): string {
  if (!labels) return '';
  const pairs = Object.entries(labels).map(([name, value]) => `${name}="${escapeLabel(value)}"`);
  return pairs.length === 0 ? '' : `{${pairs.join(',')}}`;
}

function escapeLabel(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

function escapeHelp(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}

function numberText(value: number): string {
  if (Number.isNaN(value)) return 'NaN';
  if (value === Infinity) return '+Inf';
  if (value === -Infinity) return '-Inf';
  return String(value);
}
