/**
 * Independent readers of our metrics text: Debian's `promtool check metrics` (package
 * prometheus; it reads the Prometheus 0.0.4 text format) and the OpenMetrics parser of
 * python3-prometheus-client (strict about OpenMetrics 1.0: # EOF, counter and info naming,
 * units, histogram buckets).
 */
import { spawnSync } from 'node:child_process';

/** Debian's python3 (the module is installed for it, not for a python3 found earlier on PATH). */
const SYSTEM_PYTHON = '/usr/bin/python3';
const TOOL_DEADLINE_MS = 30_000;

const PARSE_OPENMETRICS = `
import json, sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families
out = []
for family in text_string_to_metric_families(sys.stdin.read()):
    for sample in family.samples:
        out.append({"family": family.name, "type": family.type, "unit": family.unit, "name": sample.name, "labels": sample.labels, "value": sample.value})
print(json.dumps(out))
`;

export interface ParsedSample {
  readonly family: string;
  readonly type: string;
  readonly unit: string;
  readonly name: string;
  readonly labels: Record<string, string>;
  readonly value: number;
}

/** Parses OpenMetrics text with prometheus_client; throws with the parser's complaint. */
export function parseOpenMetrics(text: string): ParsedSample[] {
  const result = spawnSync(SYSTEM_PYTHON, ['-c', PARSE_OPENMETRICS], { input: text, encoding: 'utf8', timeout: TOOL_DEADLINE_MS });
  if (result.status !== 0) throw new Error(`OpenMetrics parser rejected the text: ${result.stderr}`);
  return JSON.parse(result.stdout) as ParsedSample[];
}

/** `promtool check metrics` over the text: its exit status and what it printed. */
export function promtoolCheck(text: string): { status: number | null; output: string } {
  const result = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8', timeout: TOOL_DEADLINE_MS });
  if (result.error) throw result.error;
  return { status: result.status, output: `${result.stdout}${result.stderr}` };
}

/** The value of the one sample with this name and these labels (all of them). */
export function sampleValue(samples: readonly ParsedSample[], name: string, labels: Record<string, string> = {}): number | undefined {
  const wanted = Object.entries(labels);
  const found = samples.filter(
    (sample) => sample.name === name && wanted.every(([key, value]) => sample.labels[key] === value) && Object.keys(sample.labels).length === wanted.length,
  );
  if (found.length > 1) throw new Error(`${found.length} samples ${name} ${JSON.stringify(labels)}`);
  return found[0]?.value;
}
