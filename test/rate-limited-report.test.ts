/** RateLimitedReport: the first event at once, then one tally per period, the last one flushed. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RateLimitedReport } from '../src/log/rate-limited-report.js';

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

test('a burst gives one line at once and one tally when the period ends, then silence', async () => {
  const lines: number[] = [];
  const report = new RateLimitedReport(60, (count) => lines.push(count));
  for (let i = 0; i < 5; i++) report.note();
  assert.deepEqual(lines, [1]);
  await sleep(150);
  assert.deepEqual(lines, [1, 4], 'the rest of the burst, once');
  await sleep(100);
  assert.deepEqual(lines, [1, 4], 'nothing more without events');
  report.note();
  assert.deepEqual(lines, [1, 4, 1], 'a new event after a quiet period is reported at once');
});
