/**
 * The `--metrics-listen [HOST:]PORT` address: parsed by the command line, shown in log lines.
 * Apart from metrics-http.ts, so that parsing the command line does not load node:http
 * (about 1 MB and 11 ms of start-up in a daemon that serves no metrics).
 */

export interface ListenAddress {
  readonly host: string;
  readonly port: number;
}

export function formatAddress({ host, port }: ListenAddress): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

/** Loopback: metrics say who logs in how often, so they are not for the network unless the admin says so. */
export const DEFAULT_METRICS_HOST = '127.0.0.1';

/** `PORT`, `HOST:PORT` or `[IPv6]:PORT`; undefined when malformed. */
export function parseListenAddress(text: string): ListenAddress | undefined {
  const match = /^(?:(?:\[([0-9A-Fa-f:.]+)\]|([A-Za-z0-9.-]+)):)?(\d{1,5})$/.exec(text.trim());
  if (!match) return undefined;
  const port = Number.parseInt(match[3]!, 10);
  if (port > 65_535) return undefined;
  return { host: match[1] ?? match[2] ?? DEFAULT_METRICS_HOST, port };
}
