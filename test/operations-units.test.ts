/**
 * The operations pieces without processes: the metrics text (label escaping read back by a
 * strict OpenMetrics parser, the 0.0.4 text by promtool), the request counters' bound on
 * service labels and histogram buckets, --metrics-listen addresses, the control protocol's
 * request parser, the cache's per-user flush, and the auth line's fields.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseControlRequest } from '../src/control/protocol.js';
import { authLine, fieldText } from '../src/log/auth-line.js';
import { renderMetrics, negotiateFormat, type MetricFamily } from '../src/metrics/exposition.js';
import { parseListenAddress } from '../src/metrics/listen-address.js';
import { LATENCY_BUCKETS_SECONDS, MAX_SERVICE_LABELS, OTHER_SERVICE } from '../src/metrics/request-metrics.js';
import { RequestMetrics } from '../src/shared/request-counters.js';
import { CredentialCache, privateCacheSection } from '../src/server/credential-cache.js';
import { KeyedDigest } from '../src/server/keyed-digest.js';
import { parseOpenMetrics, promtoolCheck, sampleValue } from './helpers/metrics-tools.js';

test('label values with quotes, backslashes and newlines survive a strict parser', () => {
  const awkward = 'a"b\\c\nd';
  const families: MetricFamily[] = [
    { name: 'x_requests', type: 'counter', help: 'Help with a \\ backslash\nand a newline.', samples: [{ suffix: '_total', labels: { service: awkward }, value: 3 }] },
    { name: 'x_build', type: 'info', help: 'Version.', samples: [{ suffix: '_info', labels: { version: '1.0' }, value: 1 }] },
  ];
  const samples = parseOpenMetrics(renderMetrics(families, 'openmetrics'));
  assert.equal(sampleValue(samples, 'x_requests_total', { service: awkward }), 3);
  assert.equal(promtoolCheck(renderMetrics(families, 'prometheus')).status, 0);
});

test('content negotiation: OpenMetrics only for a scraper that asks for it', () => {
  assert.equal(negotiateFormat('application/openmetrics-text;version=1.0.0,text/plain;q=0.5'), 'openmetrics');
  assert.equal(negotiateFormat('text/plain'), 'prometheus');
  assert.equal(negotiateFormat(undefined), 'prometheus');
});

test('request counters: results per service, at most MAX_SERVICE_LABELS services plus (other)', () => {
  const metrics = new RequestMetrics();
  for (let index = 0; index < MAX_SERVICE_LABELS + 10; index++) metrics.record('no', Buffer.from(`svc${index}`), 1);
  metrics.record('ok', Buffer.from('svc0'), 1);
  metrics.record('not_checked', Buffer.from('svc-new'), 1);
  const snapshot = metrics.snapshot();
  assert.equal(snapshot.byService.size, MAX_SERVICE_LABELS + 1);
  assert.deepEqual(snapshot.byService.get('svc0'), { ok: 1, no: 1, not_checked: 0 });
  assert.deepEqual(snapshot.byService.get(OTHER_SERVICE), { ok: 0, no: 10, not_checked: 1 });
});

test('latency buckets are cumulative; a request past the last bound is only in +Inf', () => {
  const metrics = new RequestMetrics();
  metrics.record('ok', Buffer.from('imap'), 0.2); // 0.0002 s: first bucket
  metrics.record('ok', Buffer.from('imap'), 30); // 0.03 s
  metrics.record('no', Buffer.from('imap'), 60_000); // 60 s: beyond 30 s
  const { latency } = metrics.snapshot();
  assert.equal(latency.count, 3);
  assert.equal(latency.buckets[0], 1);
  assert.equal(latency.buckets[LATENCY_BUCKETS_SECONDS.indexOf(0.05)], 2);
  assert.equal(latency.buckets.at(-1), 2);
  assert.ok(Math.abs(latency.sumSeconds - 60.0302) < 1e-9);
});

test('--metrics-listen addresses: port, host:port, [v6]:port; loopback by default', () => {
  assert.deepEqual(parseListenAddress('9103'), { host: '127.0.0.1', port: 9103 });
  assert.deepEqual(parseListenAddress('0.0.0.0:9103'), { host: '0.0.0.0', port: 9103 });
  assert.deepEqual(parseListenAddress('[::1]:9103'), { host: '::1', port: 9103 });
  assert.deepEqual(parseListenAddress('localhost:80'), { host: 'localhost', port: 80 });
  for (const bad of ['', 'http', ':9103', '::1:9103', '127.0.0.1:70000', '127.0.0.1:', 'a b:1']) assert.equal(parseListenAddress(bad), undefined, bad);
});

test('control requests: known commands only; flush filters need a user', () => {
  assert.deepEqual(parseControlRequest('{"command":"status"}'), { command: 'status' });
  assert.deepEqual(parseControlRequest('{"command":"metrics","format":"prometheus"}'), { command: 'metrics', format: 'prometheus' });
  assert.deepEqual(parseControlRequest('{"command":"metrics"}'), { command: 'metrics', format: 'openmetrics' });
  assert.deepEqual(parseControlRequest('{"command":"flush","user":"bob","realm":"r"}'), { command: 'flush', user: 'bob', realm: 'r' });
  for (const bad of ['', 'status', '{}', 'null', '[]', '{"command":"exec"}', '{"command":"flush","realm":"r"}', '{"command":"flush","user":5}']) {
    assert.equal(parseControlRequest(bad), undefined, bad);
  }
});

test("flushUser removes that user's entries only: every host, -r's login@realm, realm and service filters", () => {
  const cache = new CredentialCache({ sizeKb: undefined, timeoutSeconds: 60, section: privateCacheSection(undefined), digest: new KeyedDigest() });
  const entry = (user: string, realm: string, service: string, remote = ''): Parameters<CredentialCache['remember']>[0] => ({
    user: Buffer.from(user),
    realm: Buffer.from(realm),
    service: Buffer.from(service),
    remote: Buffer.from(remote),
  });
  const password = Buffer.from('Flush-pass-1');
  for (const parts of [
    entry('bob', '', 'imap'),
    entry('bob', '', 'imap', '192.0.2.1'),
    entry('bob@example.org', 'example.org', 'smtp'),
    entry('bob', 'other.org', 'imap'),
    entry('bobby', '', 'imap'),
    entry('alice', '', 'imap'),
  ]) cache.remember(parts, password);
  assert.equal(cache.flushUser({ user: Buffer.from('bob'), realm: Buffer.from('example.org') }), 1);
  assert.equal(cache.flushUser({ user: Buffer.from('bob'), service: Buffer.from('smtp') }), 0);
  assert.equal(cache.flushUser({ user: Buffer.from('bob'), realm: Buffer.from('') }), 2);
  assert.equal(cache.flushUser({ user: Buffer.from('bob') }), 1);
  assert.equal(cache.stats().entries, 2);
  assert.equal(cache.lookup(entry('bobby', '', 'imap'), password), 'hit');
  assert.equal(cache.lookup(entry('alice', '', 'imap'), password), 'hit');
});

test('auth lines: the original text, fields for JSON, brackets escaped in client fields', () => {
  const request = { user: fieldText(Buffer.from('x] [remote=198.51.100.1')), service: 'imap', realm: '', remote: '' };
  const failure = authLine('auth failure', request, 'pam', 'PAM auth error');
  assert.equal(failure.text, 'auth failure: [user=x\\x5d \\x5bremote=198.51.100.1] [service=imap] [realm=] [mech=pam] [reason=PAM auth error]');
  assert.deepEqual(failure.fields, { event: 'auth failure', user: 'x\\x5d \\x5bremote=198.51.100.1', service: 'imap', realm: '', mechanism: 'pam', reason: 'PAM auth error' });
  const cached = authLine('auth success (cached)', { user: 'bob', service: 'smtp', realm: 'r', remote: '192.0.2.7' });
  assert.equal(cached.text, 'auth success (cached): [user=bob] [service=smtp] [realm=r] [remote=192.0.2.7]');
  assert.deepEqual(cached.fields, { event: 'auth success (cached)', user: 'bob', service: 'smtp', realm: 'r', remote: '192.0.2.7' });
});
