/**
 * Metrics: a known sequence of requests (PAM through pam_wrapper + pam_matrix, a pam_exec
 * service that outlasts --job-timeout) gives exactly the expected counters, through
 * saslauthdctl and over HTTP on loopback; the OpenMetrics text passes python's strict
 * OpenMetrics parser and the Prometheus text passes `promtool check metrics`; counters
 * survive worker restarts (timeout, SIGHUP-like reload, a killed worker); only /metrics is
 * served. Ports: 23100-23199 (this engineer's range).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import { createServer } from 'node:net';
import { Daemon } from './helpers/daemon.js';
import { PamFixture } from './helpers/pam-fixture.js';
import { PAM_EXEC_MODULE } from './helpers/paths.js';
import { parseOpenMetrics, promtoolCheck, sampleValue, type ParsedSample } from './helpers/metrics-tools.js';
import { ask } from './helpers/raw-client.js';
import { saslauthdctl } from './helpers/saslauthdctl.js';
import { assertNoSecretsLogged } from './helpers/secrets.js';

const METRICS_PORT = 23_101;
const DEFAULT_HOST_PORT = 23_102;
const BUSY_PORT = 23_103;
const ALICE = 'Metrics-alice-pw-1';
const WRONG = 'Metrics-wrong-pw-2';
const DAVE = 'Metrics-dave-pw-3';
/** --job-timeout of the daemon under test; the `slow` service sleeps longer. */
const JOB_TIMEOUT_MS = 1_000;
const HTTP_DEADLINE_MS = 5_000;

interface HttpReply {
  readonly status: number;
  readonly type: string;
  readonly body: string;
}

function get(port: number, path: string, options: { method?: string; accept?: string; host?: string } = {}): Promise<HttpReply> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = options.accept ? { Accept: options.accept } : {};
    const req = httpRequest({ host: options.host ?? '127.0.0.1', port, path, method: options.method ?? 'GET', headers, timeout: HTTP_DEADLINE_MS }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type']), body }));
    });
    req.on('timeout', () => req.destroy(new Error(`no answer from port ${port} within ${HTTP_DEADLINE_MS} ms`)));
    req.on('error', reject);
    req.end();
  });
}

describe('metrics of a daemon after a known sequence of requests', () => {
  let pam: PamFixture;
  let daemon: Daemon;
  let startedAt: number;
  before(async () => {
    pam = new PamFixture([
      { name: 'alice', password: ALICE, service: 'imap' },
      { name: 'bob', password: 'Metrics-bob-pw-4', service: 'imap' },
      { name: 'dave', password: DAVE, service: 'imap' },
    ]);
    pam.addService('slow', `auth required ${PAM_EXEC_MODULE} /bin/sleep 5\nauth required @MATRIX@\naccount required @PERMIT@\n`);
    startedAt = Math.floor(Date.now() / 1000);
    daemon = await Daemon.start({
      env: pam.env,
      args: ['-n', '2', '-c', '--job-timeout', String(JOB_TIMEOUT_MS), '--metrics-listen', `127.0.0.1:${METRICS_PORT}`],
    });
    assert.equal(await ask(daemon.socket, 'alice', ALICE, 'imap', ''), 'OK'); // PAM
    assert.equal(await ask(daemon.socket, 'alice', ALICE, 'imap', ''), 'OK'); // cache hit
    assert.equal(await ask(daemon.socket, 'bob', WRONG, 'smtp', ''), 'NO PAM auth error');
    assert.equal(await ask(daemon.socket, 'carol', '', 'imap', ''), 'NO NULL password received');
    assert.equal(await ask(daemon.socket, 'dave', DAVE, 'slow', ''), 'NO authentication timed out');
  });
  after(async () => {
    await daemon?.dispose();
    pam?.dispose();
  });

  /** The counters this sequence must give, whatever happened to the workers since. */
  function assertRequestCounters(samples: readonly ParsedSample[]): void {
    const requests = (service: string, result: string): number | undefined =>
      sampleValue(samples, 'saslauthd_requests_total', { mechanism: 'pam', service, result });
    assert.equal(requests('imap', 'ok'), 2);
    assert.equal(requests('imap', 'no'), 1);
    assert.equal(requests('imap', 'not_checked'), 0);
    assert.equal(requests('smtp', 'no'), 1);
    assert.equal(requests('smtp', 'ok'), 0);
    assert.equal(requests('slow', 'not_checked'), 1);
    assert.equal(samples.filter((sample) => sample.name === 'saslauthd_requests_total').length, 9, 'three services × three results');
    assert.equal(sampleValue(samples, 'saslauthd_request_duration_seconds_count'), 5);
    assert.equal(sampleValue(samples, 'saslauthd_request_duration_seconds_bucket', { le: '+Inf' }), 5);
    // the timed-out request took about --job-timeout; the others well under it
    assert.equal(sampleValue(samples, 'saslauthd_request_duration_seconds_bucket', { le: '0.5' }), 4);
    assert.equal(sampleValue(samples, 'saslauthd_request_duration_seconds_bucket', { le: '2.5' }), 5);
    const sum = sampleValue(samples, 'saslauthd_request_duration_seconds_sum')!;
    assert.ok(sum >= JOB_TIMEOUT_MS / 1000 && sum < 5, `latency sum ${sum}`);
    assert.equal(sampleValue(samples, 'saslauthd_cache_hits_total'), 1);
    assert.equal(sampleValue(samples, 'saslauthd_cache_misses_total'), 3); // alice, bob, dave (a NULL password is refused first)
    assert.equal(sampleValue(samples, 'saslauthd_worker_timeouts_total'), 1);
    assert.equal(sampleValue(samples, 'saslauthd_connections_refused_total'), 0);
    assert.equal(sampleValue(samples, 'saslauthd_failure_delays_pending'), 0);
    assert.equal(sampleValue(samples, 'saslauthd_cache_enabled'), 1);
    assert.equal(sampleValue(samples, 'saslauthd_build_info', { version: '0.1.0' }), 1);
    const start = sampleValue(samples, 'saslauthd_start_time_seconds')!;
    assert.ok(start >= startedAt - 1 && start <= Date.now() / 1000, `start time ${start}`);
  }

  test('saslauthdctl metrics: OpenMetrics that a strict parser reads, with exactly the expected counters', async () => {
    const result = await saslauthdctl(['-m', daemon.runDirectory, 'metrics']);
    assert.equal(result.status, 0, result.stderr);
    const samples = parseOpenMetrics(result.stdout);
    assertRequestCounters(samples);
    assert.equal(sampleValue(samples, 'saslauthd_cache_entries'), 1);
    assert.equal(sampleValue(samples, 'saslauthd_queued_jobs'), 0);
    assert.equal(sampleValue(samples, 'saslauthd_waiting_requests'), 0);
    assert.equal(sampleValue(samples, 'saslauthd_connections_open'), 0);
    const families = new Map(samples.map((sample) => [sample.family, sample]));
    assert.equal(families.get('saslauthd_requests')?.type, 'counter');
    assert.equal(families.get('saslauthd_request_duration_seconds')?.type, 'histogram');
    assert.equal(families.get('saslauthd_request_duration_seconds')?.unit, 'seconds');
    assert.equal(families.get('saslauthd_build')?.type, 'info');
  });

  test('the Prometheus text format passes promtool check metrics', async () => {
    const result = await saslauthdctl(['-m', daemon.runDirectory, 'metrics', '--format', 'prometheus']);
    assert.equal(result.status, 0, result.stderr);
    const check = promtoolCheck(result.stdout);
    assert.equal(check.status, 0, check.output);
    assert.equal(check.output, '');
    assert.match(result.stdout, /^# TYPE saslauthd_requests_total counter$/m);
    assert.match(result.stdout, /^saslauthd_requests_total\{mechanism="pam",service="imap",result="ok"\} 2$/m);
  });

  test('a scrape over HTTP on loopback: OpenMetrics when asked for (as Prometheus does), 0.0.4 otherwise', async () => {
    const openMetrics = await get(METRICS_PORT, '/metrics', { accept: 'application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5' });
    assert.equal(openMetrics.status, 200);
    assert.equal(openMetrics.type, 'application/openmetrics-text; version=1.0.0; charset=utf-8');
    assertRequestCounters(parseOpenMetrics(openMetrics.body));
    const plain = await get(METRICS_PORT, '/metrics');
    assert.equal(plain.status, 200);
    assert.equal(plain.type, 'text/plain; version=0.0.4; charset=utf-8');
    assert.equal(promtoolCheck(plain.body).status, 0);
    const head = await get(METRICS_PORT, '/metrics', { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(head.body, '');
  });

  test('nothing but /metrics is served', async () => {
    for (const path of ['/', '/metrics/', '/metricsx', '/debug/pprof', '/../metrics']) {
      assert.equal((await get(METRICS_PORT, path)).status, 404, path);
    }
    assert.equal((await get(METRICS_PORT, '/metrics', { method: 'POST' })).status, 405);
    assert.equal((await get(METRICS_PORT, '/metrics?x=1')).status, 200);
  });

  test('counters survive worker restarts: the timed-out worker, a reload, a killed worker', async () => {
    // The worker that ran the slow job was killed at the deadline and replaced.
    const starts = async (): Promise<number> => sampleValue(parseOpenMetrics((await saslauthdctl(['-m', daemon.runDirectory, 'metrics'])).stdout), 'saslauthd_worker_starts_total')!;
    assert.equal(await starts(), 3);
    let startsSeen = 3;
    const reload = await saslauthdctl(['-m', daemon.runDirectory, 'reload']);
    assert.equal(reload.status, 0, reload.stderr);
    const deadline = Date.now() + 10_000; // two fresh workers start after the reload
    while ((startsSeen = await starts()) < 5 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal(startsSeen, 5);
    const status = JSON.parse((await saslauthdctl(['-m', daemon.runDirectory, 'status', '--json'])).stdout) as { workerStates: { pid: number; state: string }[] };
    const target = status.workerStates.find((worker) => worker.state === 'idle')!;
    process.kill(target.pid, 'SIGKILL');
    await daemon.waitForLog(new RegExp(`worker ${target.pid} exited \\(SIGKILL\\); starting a replacement`));
    const after = await get(METRICS_PORT, '/metrics', { accept: 'application/openmetrics-text' });
    const samples = parseOpenMetrics(after.body);
    assertRequestCounters(samples);
    assert.equal(sampleValue(samples, 'saslauthd_worker_crashes_total'), 1);
    assert.equal(sampleValue(samples, 'saslauthd_cache_entries'), 0, 'the reload flushed the cache');
  });

  test('no password used here appears in any log line', () => {
    assertNoSecretsLogged([ALICE, WRONG, DAVE]);
  });
});

describe('--metrics-listen', () => {
  let pam: PamFixture;
  before(() => {
    pam = new PamFixture([]);
  });
  after(() => pam?.dispose());

  test('a port alone listens on loopback (127.0.0.1)', async () => {
    const daemon = await Daemon.start({ env: pam.env, args: ['-n', '1', '--metrics-listen', String(DEFAULT_HOST_PORT)] });
    try {
      await daemon.waitForLog(new RegExp(`metrics on http://127\\.0\\.0\\.1:${DEFAULT_HOST_PORT}/metrics`));
      const reply = await get(DEFAULT_HOST_PORT, '/metrics');
      assert.equal(reply.status, 200);
      assert.match(reply.body, /^saslauthd_workers\{state="idle"\} 1$/m);
    } finally {
      await daemon.dispose();
    }
  });

  test('without the option nothing listens; a bad address or a busy port stops the start', async () => {
    const daemon = await Daemon.start({ env: pam.env, args: ['-n', '1'] });
    try {
      assert.doesNotMatch(daemon.logs, /metrics on http/);
    } finally {
      await daemon.dispose();
    }
    const bad = await Daemon.startFailing({ env: pam.env, args: ['-n', '1', '--metrics-listen', 'localhost:http'] });
    assert.equal(bad.code, 1);
    assert.match(bad.output, /--metrics-listen must be \[host:\]port, not localhost:http/);
    const blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(BUSY_PORT, '127.0.0.1', resolve));
    try {
      const busy = await Daemon.startFailing({ env: pam.env, args: ['-n', '1', '--metrics-listen', `127.0.0.1:${BUSY_PORT}`] });
      assert.equal(busy.code, 1);
      assert.match(busy.output, new RegExp(`could not listen for metrics on 127\\.0\\.0\\.1:${BUSY_PORT}`));
    } finally {
      blocker.close();
    }
  });
});
