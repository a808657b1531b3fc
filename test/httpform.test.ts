/**
 * The httpform mechanism against HTTP(S) servers on loopback started here: Node's own
 * http/https servers for real status codes, a raw TCP server for what no HTTP server sends
 * (a malformed status line, a close before any response, a stall). Debian's sasl2-bin is
 * built without httpform, so there is no C oracle: the replies are checked against the
 * original's strings (reference §6.8, auth_httpform.c).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer, type IncomingMessage, type Server as HttpServer } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { createServer as createTcpServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { Daemon } from './helpers/daemon.js';
import { ask } from './helpers/raw-client.js';
import { assertNoSecretsLogged } from './helpers/secrets.js';
import { makeThrowawayCa, type ThrowawayCa } from './helpers/throwaway-ca.js';

const PASSWORD = Buffer.from('p@ss w&rd=\u00fc"1', 'utf8');
const WRONG = 'Wrong-http-2';
const REPLY = {
  accepted: 'OK remote authentication successful',
  unexpected: 'NO [ALERT] Unexpected response from remote authentication server',
  internalError: 'NO [ALERT] saslauthd internal error',
  couldNotContact: "NO [ALERT] Couldn't contact remote authentication server",
};
const TEMPLATE = 'user=%u&pass=%p&realm=%r&pct=%%&keep=%x';

interface Received {
  readonly method: string;
  readonly url: string;
  readonly rawHeaders: string[];
  readonly body: string;
}

const scratch = mkdtempSync('/tmp/sts-httpform-');
const daemons: Daemon[] = [];
const closers: (() => Promise<void>)[] = [];
let ca: ThrowawayCa;
let received: Received[] = [];
/** What the HTTP(S) server answers: status and reason per login. */
const answers = new Map<string, [number, string]>();

function listen(server: HttpServer | Server, address = '127.0.0.1'): Promise<number> {
  return new Promise((resolve) => {
    server.listen(0, address, () => {
      const address = server.address();
      resolve(typeof address === 'object' && address ? address.port : 0);
    });
    const sockets = new Set<Socket>();
    server.on('connection', (socket: Socket) => {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
    });
    closers.push(async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((done) => server.close(() => done()));
    });
  });
}

function formHandler(request: IncomingMessage, response: import('node:http').ServerResponse): void {
  let body = '';
  request.setEncoding('latin1');
  request.on('data', (chunk: string) => (body += chunk));
  request.on('end', () => {
    received.push({ method: request.method ?? '', url: request.url ?? '', rawHeaders: request.rawHeaders, body });
    const user = new URLSearchParams(body).get('user') ?? '';
    const [status, reason] = answers.get(user) ?? [403, 'Bad credentials'];
    response.writeHead(status, reason);
    response.end();
  });
}

/** A raw server: reads one request (headers and Content-Length body), then does `behaviour`. */
async function rawServer(behaviour: (socket: Socket) => void): Promise<number> {
  const server = createTcpServer((socket) => {
    socket.on('error', () => {});
    let data = '';
    socket.on('data', (chunk: Buffer) => {
      data += chunk.toString('latin1');
      const end = data.indexOf('\r\n\r\n');
      const length = Number(/content-length: (\d+)/i.exec(data)?.[1] ?? 0);
      if (end >= 0 && data.length >= end + 4 + length) behaviour(socket);
    });
  });
  return listen(server);
}

function writeConfig(name: string, lines: Record<string, string | number>): string {
  const path = join(scratch, name);
  writeFileSync(path, Object.entries(lines).map(([key, value]) => `${key}: ${value}\n`).join(''));
  return path;
}

async function httpformDaemon(config: string, args: readonly string[] = []): Promise<Daemon> {
  const daemon = await Daemon.start({ mechanism: 'httpform', args: ['-O', config, '-n', '1', ...args] });
  daemons.push(daemon);
  return daemon;
}

let httpPort: number;
let httpsPort: number;

before(async () => {
  ca = makeThrowawayCa(join(scratch, 'tls'), 'httpform', ['localhost'], ['127.0.0.1']);
  httpPort = await listen(createHttpServer(formHandler));
  httpsPort = await listen(
    createHttpsServer({ cert: readFileSync(ca.serverCert), key: readFileSync(ca.serverKey) }, formHandler),
  );
  answers.set('good', [200, 'OK']);
  answers.set('nocontent', [204, 'No Content']);
  answers.set('refused', [403, 'User unknown']);
  answers.set('broken', [500, 'Internal Server Error']);
  answers.set('moved', [302, 'Found']);
  answers.set('bob@example.org', [200, 'OK']);
});

after(async () => {
  for (const daemon of daemons) await daemon.dispose();
  for (const close of closers) await close();
  rmSync(scratch, { recursive: true, force: true });
});

describe('over HTTP', () => {
  let daemon: Daemon;
  before(async () => {
    daemon = await httpformDaemon(
      writeConfig('http.conf', { httpform_host: '127.0.0.1', httpform_port: httpPort, httpform_uri: '/auth/check?x=1', httpform_data: TEMPLATE }),
    );
  });

  test('200 and 204: OK remote authentication successful', async () => {
    assert.equal(await ask(daemon.socket, 'good', PASSWORD, 'imap', ''), REPLY.accepted);
    assert.equal(await ask(daemon.socket, 'nocontent', PASSWORD, 'imap', ''), REPLY.accepted);
  });

  test('403: NO and the reason phrase', async () => {
    assert.equal(await ask(daemon.socket, 'refused', WRONG, 'imap', ''), 'NO User unknown');
    assert.equal(await ask(daemon.socket, 'somebody', WRONG, 'imap', ''), 'NO Bad credentials');
  });

  test('any other status: the original [ALERT] reply and a log line', async () => {
    assert.equal(await ask(daemon.socket, 'broken', WRONG, 'imap', ''), REPLY.unexpected);
    assert.equal(await ask(daemon.socket, 'moved', WRONG, 'imap', ''), REPLY.unexpected);
    await daemon.waitForLog(/auth_httpform: unexpected response to auth request: 500 Internal Server Error/);
    await daemon.waitForLog(/auth_httpform: unexpected response to auth request: 302 Found/);
  });

  test('the request: POST to the URI, the original headers, %u %p %r %% URL-escaped', async () => {
    received = [];
    assert.equal(await ask(daemon.socket, 'good', PASSWORD, 'imap', 'example.org'), REPLY.accepted);
    const [only] = received;
    assert.ok(only);
    assert.equal(only.method, 'POST');
    assert.equal(only.url, '/auth/check?x=1');
    assert.deepEqual(only.rawHeaders, [
      'Host', `127.0.0.1:${httpPort}`,
      'Connection', 'close',
      'User-Agent', 'saslauthd',
      'Accept', '*/*',
      'Content-Type', 'application/x-www-form-urlencoded',
      'Content-Length', String(only.body.length),
    ]);
    // Every byte but A-Z a-z 0-9 escaped, upper-case hex, UTF-8 bytes one by one.
    assert.equal(only.body, 'user=good&pass=p%40ss%20w%26rd%3D%C3%BC%221&realm=example%2Eorg&pct=%&keep=%x');
  });

  test('-r: the login with its realm is what %u carries', async () => {
    const withRealm = await httpformDaemon(
      writeConfig('realm.conf', { httpform_host: '127.0.0.1', httpform_port: httpPort, httpform_uri: '/', httpform_data: 'user=%u' }),
      ['-r'],
    );
    received = [];
    assert.equal(await ask(withRealm.socket, 'bob', PASSWORD, 'smtp', 'example.org'), REPLY.accepted);
    assert.equal(received[0]?.body, 'user=bob%40example%2Eorg');
  });
});

describe('what no HTTP server should send', () => {
  async function daemonFor(port: number, timeout = 10): Promise<Daemon> {
    return httpformDaemon(
      writeConfig(`raw-${port}.conf`, {
        httpform_host: '127.0.0.1', httpform_port: port, httpform_uri: '/', httpform_data: 'u=%u&p=%p', httpform_timeout: timeout,
      }),
    );
  }

  for (const [name, bytes] of [
    ['a status line without a code', 'garbage\r\n\r\n'],
    ['a status code run into its reason', 'HTTP/1.1 200OK\r\n\r\n'],
    ['a status line with no space at all', 'HTTP/1.1\r\n\r\n'],
  ] as const) {
    test(`malformed: ${name} → the [ALERT] reply and a log line, no crash`, async () => {
      const daemon = await daemonFor(await rawServer((socket) => socket.end(bytes)));
      assert.equal(await ask(daemon.socket, 'good', PASSWORD, 'imap', ''), REPLY.unexpected);
      await daemon.waitForLog(/auth_httpform: invalid response to auth request/);
      // The worker survived: the next request is answered the same way by the same worker.
      assert.equal(await ask(daemon.socket, 'good', PASSWORD, 'imap', ''), REPLY.unexpected);
      assert.equal(daemon.logs.match(/worker started/g)?.length, 1, daemon.logs);
    });
  }

  test('closed before any response: the [ALERT] reply', async () => {
    const daemon = await daemonFor(await rawServer((socket) => socket.end()));
    assert.equal(await ask(daemon.socket, 'good', PASSWORD, 'imap', ''), REPLY.unexpected);
  });

  test('a server that accepts and never answers: internal error from our own deadline; the worker stays', async () => {
    let requests = 0;
    const port = await rawServer((socket) => {
      if (++requests > 1) socket.end('HTTP/1.1 204 No Content\r\n\r\n');
    });
    const daemon = await daemonFor(port, 1);
    const started = performance.now();
    assert.equal(await ask(daemon.socket, 'good', PASSWORD, 'imap', ''), REPLY.internalError);
    assert.ok(performance.now() - started < 5_000);
    await daemon.waitForLog(/auth_httpform: read \(response\) from 127\.0\.0\.1\/\d+: timed out/);
    assert.equal(await ask(daemon.socket, 'good', PASSWORD, 'imap', ''), REPLY.accepted);
    assert.equal(daemon.logs.match(/worker started/g)?.length, 1, daemon.logs);
    assert.doesNotMatch(daemon.logs, /authentication timed out|worker failed/);
  });

  test('nothing listening: Couldn\'t contact, with the connect error logged', async () => {
    const port = await rawServer(() => {});
    await closers.pop()!();
    const daemon = await daemonFor(port);
    assert.equal(await ask(daemon.socket, 'good', PASSWORD, 'imap', ''), REPLY.couldNotContact);
    await daemon.waitForLog(/auth_httpform: connect 127\.0\.0\.1\/\d+: .*ECONNREFUSED/);
  });
});

describe('over HTTPS', () => {
  const tlsConfig = (name: string, extra: Record<string, string>): string =>
    writeConfig(name, { httpform_host: 'localhost', httpform_port: httpsPort, httpform_uri: '/', httpform_data: 'user=%u&pass=%p', httpform_tls: 'yes', ...extra });

  test('the CA file: the certificate and its name verified, then the same replies', async () => {
    const daemon = await httpformDaemon(tlsConfig('https.conf', { httpform_tls_cacert_file: ca.caFile }));
    assert.equal(await ask(daemon.socket, 'good', PASSWORD, 'imap', ''), REPLY.accepted);
    assert.equal(await ask(daemon.socket, 'refused', WRONG, 'imap', ''), 'NO User unknown');
    assert.doesNotMatch(daemon.logs, /WARNING/);
  });

  test('a certificate that does not name the host is refused', async () => {
    // The same certificate (localhost, 127.0.0.1) served on another loopback address.
    const port = await listen(
      createHttpsServer({ cert: readFileSync(ca.serverCert), key: readFileSync(ca.serverKey) }, formHandler),
      '127.0.0.2',
    );
    const daemon = await httpformDaemon(
      tlsConfig('wrong-name.conf', { httpform_host: '127.0.0.2', httpform_port: String(port), httpform_tls_cacert_file: ca.caFile }),
    );
    assert.equal(await ask(daemon.socket, 'good', PASSWORD, 'imap', ''), REPLY.couldNotContact);
    await daemon.waitForLog(/auth_httpform: TLS with 127\.0\.0\.2\/\d+ failed: .*127\.0\.0\.2/);
  });

  test('a certificate from an unknown CA is refused (another CA file, or the system CAs)', async () => {
    const other = makeThrowawayCa(join(scratch, 'other'), 'other', ['localhost'], ['127.0.0.1']);
    for (const daemon of [
      await httpformDaemon(tlsConfig('other-ca.conf', { httpform_tls_cacert_file: other.caFile })),
      await httpformDaemon(tlsConfig('system-ca.conf', {})),
    ]) {
      assert.equal(await ask(daemon.socket, 'good', PASSWORD, 'imap', ''), REPLY.couldNotContact);
      await daemon.waitForLog(/auth_httpform: TLS with localhost\/\d+ failed: .*certificate/);
    }
  });
});

describe('start-up', () => {
  test('missing uri or data: refused with the original message', async () => {
    const config = writeConfig('missing.conf', { httpform_host: '127.0.0.1', httpform_uri: '/' });
    const failed = await Daemon.startFailing({ mechanism: 'httpform', args: ['-O', config] });
    assert.equal(failed.code, 1);
    assert.match(failed.output, /failed to initialize mechanism httpform/);
    assert.match(failed.output, /auth_httpform_init formdata and uri must be specified/);
  });

  test('bad settings are refused with the reason', async () => {
    const base = { httpform_uri: '/', httpform_data: 'u=%u' };
    const cases: [Record<string, string>, RegExp][] = [
      [{ httpform_tls: 'maybe' }, /httpform_tls must be yes or no/],
      [{ httpform_tls_cacert_file: '/etc/ssl/certs/ca-certificates.crt' }, /needs httpform_tls: yes/],
      [{ httpform_tls: 'yes', httpform_tls_cacert_file: join(scratch, 'nope.pem') }, /cannot be read \(ENOENT\)/],
      [{ httpform_port: 'nosuchservice' }, /unknown service name/],
      [{ httpform_timeout: '-1' }, /httpform_timeout/],
      [{ httpform_method: 'GET' }, /unknown key httpform_method/],
    ];
    for (const [extra, reason] of cases) {
      const config = writeConfig('bad.conf', { ...base, ...extra });
      const failed = await Daemon.startFailing({ mechanism: 'httpform', args: ['-O', config] });
      assert.equal(failed.code, 1, JSON.stringify(extra));
      assert.match(failed.output, reason, JSON.stringify(extra));
    }
    const unreadable = await Daemon.startFailing({ mechanism: 'httpform', args: ['-O', join(scratch, 'absent.conf')] });
    assert.equal(unreadable.code, 1);
    assert.match(unreadable.output, /auth_httpform_init .*absent\.conf: cannot be read/);
  });

  test('plain HTTP to a host that is not loopback: a warning at start', async () => {
    const daemon = await httpformDaemon(writeConfig('remote.conf', { httpform_host: 'auth.example.invalid', httpform_uri: '/', httpform_data: 'u=%u' }));
    assert.match(daemon.logs, /auth_httpform: WARNING: passwords go to auth\.example\.invalid\/80 over plain HTTP/);
  });
});

test('no password used here appears in any log (verbose mode included)', () => {
  assertNoSecretsLogged([PASSWORD, 'p%40ss%20w%26rd', WRONG]);
});
