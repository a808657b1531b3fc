/**
 * `--metrics-listen [HOST:]PORT`: the metrics over HTTP for Prometheus to scrape. Only
 * `/metrics` is served (GET or HEAD); anything else is 404/405. Off unless asked for;
 * loopback when no host is given. Bounded like the rest of the daemon: few connections at
 * once, short deadlines for a request to arrive.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Logger } from '../log/logger.js';
import { StartupError } from '../server/run-directory.js';
import { CONTENT_TYPES, negotiateFormat, type ExpositionFormat } from './exposition.js';
import { formatAddress, type ListenAddress } from './listen-address.js';

/** A scraper or two and an admin's curl: more at once is not a scrape. */
const MAX_METRICS_CONNECTIONS = 16;
/** Headers must arrive within this; the whole request too (a scrape sends no body). */
const REQUEST_DEADLINE_MS = 5_000;
/** An idle keep-alive connection is closed after this (Prometheus scrapes every 15 s or more). */
const KEEP_ALIVE_MS = 5_000;

export interface MetricsListener {
  readonly address: ListenAddress;
  close(): void;
}

export async function listenForMetrics(
  address: ListenAddress,
  render: (format: ExpositionFormat) => string,
  log: Logger,
): Promise<MetricsListener> {
  const server = createServer((request: IncomingMessage, response: ServerResponse) => {
    const path = (request.url ?? '').split('?')[0];
    if (path !== '/metrics') {
      response.writeHead(404, { 'Content-Type': 'text/plain; charset=utf-8' }).end('not found: only /metrics is served\n');
      return;
    }
    if (request.method !== 'GET' && request.method !== 'HEAD') {
      response.writeHead(405, { Allow: 'GET, HEAD', 'Content-Type': 'text/plain; charset=utf-8' }).end('method not allowed\n');
      return;
    }
    const format = negotiateFormat(request.headers.accept);
    const body = render(format);
    response.writeHead(200, { 'Content-Type': CONTENT_TYPES[format], 'Content-Length': Buffer.byteLength(body), 'Cache-Control': 'no-store' });
    response.end(request.method === 'HEAD' ? undefined : body);
  });
  server.maxConnections = MAX_METRICS_CONNECTIONS;
  server.headersTimeout = REQUEST_DEADLINE_MS;
  server.requestTimeout = REQUEST_DEADLINE_MS;
  server.keepAliveTimeout = KEEP_ALIVE_MS;
  server.maxHeadersCount = 64;
  await new Promise<void>((resolve, reject) => {
    server.once('error', (error) =>
      reject(new StartupError([`could not listen for metrics on ${formatAddress(address)}`, error.message], 1)),
    );
    server.listen({ host: address.host, port: address.port, exclusive: true }, () => resolve());
  });
  server.on('error', (error) => log.error(`metrics listener: ${error.message}`));
  server.on('clientError', (_error, socket) => socket.destroy());
  const bound = server.address();
  const actual = typeof bound === 'object' && bound !== null ? { host: address.host, port: bound.port } : address;
  return {
    address: actual,
    close(): void {
      server.close();
      server.closeAllConnections();
    },
  };
}
