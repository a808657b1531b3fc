/**
 * The pure pieces of rimap and httpform, without processes: IMAP quoting and literals
 * (parsed back by the scripted server's command parser), the LOGIN reply classification,
 * the `-O` forms, service names, httpform's URL-escaping and its settings.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { parseConfigText } from '../src/mechanisms/config-file.js';
import { expandFormData, urlEscape } from '../src/mechanisms/httpform/form-data.js';
import { httpformSettingsFrom, MISSING_KEYS_MESSAGE } from '../src/mechanisms/httpform/settings.js';
import { findServicePort, resolveServicePort } from '../src/mechanisms/network/service-port.js';
import { isLoopbackHost } from '../src/mechanisms/network/tls-trust.js';
import {
  canQuote,
  capabilitiesOf,
  classifyGreeting,
  classifyLoginLine,
  loginCommandChunks,
  nonSynchronizingLiteralLimit,
  quoted,
  taggedStatus,
} from '../src/mechanisms/rimap/imap-syntax.js';
import { NO_HOSTNAME_MESSAGE, parseRimapOption } from '../src/mechanisms/rimap/target.js';
import { parseCommand } from './helpers/scripted-imap-server.js';

const field = fc.uint8Array({ minLength: 0, maxLength: 256 }).map((bytes) => Buffer.from(bytes.map((b) => (b === 0 ? 1 : b))));

/** Sends the chunks as a client would (each next one after the server's +) and parses. */
function parseChunks(chunks: Buffer[]): { words: Buffer[]; continuations: number } {
  let data = Buffer.alloc(0);
  let continuations = 0;
  for (const chunk of chunks) {
    data = Buffer.concat([data, chunk]);
    const parsed = parseCommand(data, () => continuations++);
    if (parsed.kind === 'command') return { words: parsed.words, continuations };
    assert.equal(parsed.kind, 'more');
  }
  throw new Error('the command never completed');
}

test('LOGIN: any login and password bytes arrive unchanged, whatever the literal support', () => {
  fc.assert(
    fc.property(field, field, fc.constantFrom(0, 4096, Number.POSITIVE_INFINITY), (login, password, limit) => {
      const chunks = loginCommandChunks(login, password, limit);
      const { words, continuations } = parseChunks(chunks);
      assert.deepEqual(words, [Buffer.from('LOGIN'), login, password]);
      assert.equal(continuations, chunks.length - 1);
    }),
    { numRuns: 500 },
  );
});

test('quoting: printable ASCII only; " and \\ escaped; CR, LF, TAB, 8-bit need a literal', () => {
  assert.equal(quoted(Buffer.from('a"b\\c d')).toString(), '"a\\"b\\\\c d"');
  for (const bad of ['a\rb', 'a\nb', 'a\tb', '\u00e9']) assert.equal(canQuote(Buffer.from(bad, 'latin1')), false, JSON.stringify(bad));
  assert.equal(canQuote(Buffer.from('~ !"#\\')), true);
  const [only] = loginCommandChunks(Buffer.from('bob'), Buffer.from('x\r\ny'), Number.POSITIVE_INFINITY);
  assert.equal(only!.toString('latin1'), 'saslauthd LOGIN "bob" {4+}\r\nx\r\ny\r\n');
  const chunks = loginCommandChunks(Buffer.from('bob'), Buffer.from('x\r\ny'), 0);
  assert.deepEqual(chunks.map((chunk) => chunk.toString('latin1')), ['saslauthd LOGIN "bob" {4}\r\n', 'x\r\ny\r\n']);
});

test('capabilities and literal limits', () => {
  const caps = capabilitiesOf(Buffer.from('* OK [CAPABILITY IMAP4rev1 literal+ STARTTLS] ready'));
  assert.ok(caps.has('LITERAL+') && caps.has('STARTTLS'));
  assert.equal(nonSynchronizingLiteralLimit(caps), Number.POSITIVE_INFINITY);
  assert.equal(nonSynchronizingLiteralLimit(new Set(['LITERAL-'])), 4096);
  assert.equal(nonSynchronizingLiteralLimit(capabilitiesOf(Buffer.from('* OK hello'))), 0);
});

test('greeting and LOGIN reply classification as the original', () => {
  assert.equal(classifyGreeting(Buffer.from('* OK ready')), 'ok');
  assert.equal(classifyGreeting(Buffer.from('* BYE busy')), 'unavailable');
  assert.equal(classifyGreeting(Buffer.from('* NO later')), 'unavailable');
  assert.equal(classifyGreeting(Buffer.from('* PREAUTH x')), 'unexpected');
  assert.equal(classifyGreeting(Buffer.alloc(0)), 'unexpected');
  assert.equal(classifyLoginLine(Buffer.from('saslauthd OK [CAPABILITY x] Logged in')), 'accepted');
  assert.equal(classifyLoginLine(Buffer.from('saslauthd NO [AUTHENTICATIONFAILED] x')), 'rejected');
  assert.equal(classifyLoginLine(Buffer.from('* CAPABILITY IMAP4rev1')), 'more');
  assert.equal(classifyLoginLine(Buffer.from('* OK [ALERT] x')), 'malformed');
  assert.equal(classifyLoginLine(Buffer.from('saslauthd BAD x')), 'malformed');
  assert.equal(taggedStatus(Buffer.from('saslauthd-tls OK Begin TLS'), 'saslauthd-tls'), 'OK');
  assert.equal(taggedStatus(Buffer.from('saslauthd OK x'), 'saslauthd-tls'), undefined);
});

test('-O forms', () => {
  assert.throws(() => parseRimapOption(undefined), { message: NO_HOSTNAME_MESSAGE });
  assert.throws(() => parseRimapOption(''), { message: NO_HOSTNAME_MESSAGE });
  assert.deepEqual(parseRimapOption('mail.example.org'), {
    host: 'mail.example.org', port: 143, security: 'plain', caFile: undefined, stepTimeoutMs: 10_000,
  });
  assert.equal(parseRimapOption('10.0.0.1/1143').port, 1143);
  assert.equal(parseRimapOption('::1/imaps').port, 993);
  assert.equal(parseRimapOption('::1/imaps').host, '::1');
  assert.deepEqual(parseRimapOption('imaps://[2001:db8::1]?cafile=/x/ca.pem&timeout=2.5'), {
    host: '2001:db8::1', port: 993, security: 'imaps', caFile: '/x/ca.pem', stepTimeoutMs: 2_500,
  });
  assert.equal(parseRimapOption('imap+starttls://mail.example.org').port, 143);
  assert.equal(parseRimapOption('imap+starttls://mail.example.org').security, 'starttls');
  assert.equal(parseRimapOption('IMAP://mail.example.org:2143/').port, 2143);
  assert.throws(() => parseRimapOption('imaps://mail.example.org/INBOX'), /has a path/);
  assert.throws(() => parseRimapOption('bad host/143'), /invalid host name/);
});

test('service names from a services(5) text, with well-known fallbacks', () => {
  const text = 'imap2\t\t143/tcp\t\timap\t# comment\nfoo 9/udp\nfoo 10/tcp bar\n';
  assert.equal(findServicePort(text, 'imap'), 143);
  assert.equal(findServicePort(text, 'bar'), 10);
  assert.equal(findServicePort(text, 'nothing'), undefined);
  assert.equal(resolveServicePort('imaps', '/nonexistent/services'), 993);
  assert.equal(resolveServicePort('8080'), 8080);
  assert.throws(() => resolveServicePort('0'), /out of range/);
});

test('loopback hosts', () => {
  for (const host of ['localhost', 'LOCALHOST', 'x.localhost', '127.0.0.1', '127.9.8.7', '::1', '::ffff:127.0.0.1']) assert.ok(isLoopbackHost(host), host);
  for (const host of ['example.org', '10.0.0.1', '::2', 'localhost.example.org']) assert.ok(!isLoopbackHost(host), host);
});

test('URL-escaping: only A-Z a-z 0-9 kept, every other byte %XX upper case, reversible', () => {
  assert.equal(urlEscape(Buffer.from('a-b.c_d~ é', 'utf8')).toString(), 'a%2Db%2Ec%5Fd%7E%20%C3%A9');
  fc.assert(
    fc.property(field, (value) => {
      const escaped = urlEscape(value).toString('latin1');
      assert.match(escaped, /^([A-Za-z0-9]|%[0-9A-F]{2})*$/);
      const decoded = Buffer.from(escaped.replace(/%([0-9A-F]{2})/g, (_m, hex: string) => String.fromCharCode(parseInt(hex, 16))), 'latin1');
      assert.deepEqual(decoded, value);
    }),
    { numRuns: 300 },
  );
});

test('form data: %u %p %r %% replaced, unknown tokens and a trailing % kept', () => {
  const values = { login: Buffer.from('bob@x'), password: Buffer.from('p&q=r'), realm: Buffer.from('x.org') };
  assert.equal(expandFormData(Buffer.from('u=%u&p=%p&r=%r&pc=%%&k=%k&end=%'), values).toString(), 'u=bob%40x&p=p%26q%3Dr&r=x%2Eorg&pc=%&k=%k&end=%');
  assert.equal(expandFormData(Buffer.from('%p%p'), values).toString(), 'p%26q%3Drp%26q%3Dr');
});

test('httpform settings: defaults, TLS, refusals', () => {
  const parse = (text: string) => httpformSettingsFrom(parseConfigText(text, 'test.conf'));
  const settings = parse('ldap_servers: ldap://x/\nhttpform_uri: /check\nhttpform_data: u=%u\n');
  assert.equal(settings.host, 'localhost');
  assert.equal(settings.port, 80);
  assert.equal(settings.tls, false);
  assert.equal(parse('httpform_uri: /\nhttpform_data: u\nhttpform_tls: yes\n').port, 443);
  assert.equal(parse('httpform_uri: /\nhttpform_data: u\nhttpform_port: http\n').port, 80);
  assert.throws(() => parse('httpform_uri: /\n'), { message: MISSING_KEYS_MESSAGE });
  assert.throws(() => parse('httpform_uri: /a b\nhttpform_data: u\n'), /spaces or control/);
  assert.throws(() => parse('httpform_uri: /\nhttpform_data: u\nhttpform_user: x\n'), /unknown key httpform_user/);
});
