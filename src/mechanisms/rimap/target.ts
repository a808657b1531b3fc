/**
 * The rimap `-O` argument: which IMAP server, on which port, with which transport security.
 *
 *   host[/port]                        plain IMAP, as the original (port: number or service
 *                                      name, default `imap`, 143)
 *   imap://host[:port]                 the same, spelled as a URL
 *   imap+starttls://host[:port]        IMAP on 143, STARTTLS before LOGIN
 *   imaps://host[:port]                IMAP over TLS from the first byte, default port 993
 *
 * The URL forms take a query: `cafile=/path/ca.pem` (trust these CAs instead of the system's;
 * TLS forms only) and `timeout=SECONDS` (each network wait; default 10). IPv6 addresses go in
 * brackets in URLs (`imaps://[2001:db8::1]`) and bare in the original form (`2001:db8::1/143`).
 */
import { isIP } from 'node:net';
import { resolveServicePort } from '../network/service-port.js';

export type RimapSecurity = 'plain' | 'starttls' | 'imaps';

export interface RimapTarget {
  /** Name or address, resolved per request; also what a certificate must name. */
  readonly host: string;
  readonly port: number;
  readonly security: RimapSecurity;
  /** PEM file of CAs to trust (TLS only); undefined: the system's CAs. */
  readonly caFile: string | undefined;
  /** Each network wait (lookup, connect, handshake, each read). */
  readonly stepTimeoutMs: number;
}

/** The original's message when `-O` is missing (auth_rimap_init). */
export const NO_HOSTNAME_MESSAGE = 'rimap_init: no hostname specified';

/**
 * Default for each network wait. The original waited 30 s per read; the whole request here
 * must end before the daemon's default --job-timeout (30 s), see REQUEST_BUDGET_STEPS.
 */
export const DEFAULT_STEP_TIMEOUT_MS = 10_000;
/** Longest `timeout=` accepted: an hour of waiting on a backend is a configuration error. */
const MAX_STEP_TIMEOUT_SECONDS = 3_600;

const SCHEMES: Readonly<Record<string, { security: RimapSecurity; defaultPort: number }>> = {
  'imap:': { security: 'plain', defaultPort: 143 },
  'imap+starttls:': { security: 'starttls', defaultPort: 143 },
  'imaps:': { security: 'imaps', defaultPort: 993 },
};

/** Parses `-O`; throws an Error whose message says what is wrong (for check()). */
export function parseRimapOption(option: string | undefined): RimapTarget {
  if (option === undefined || option === '') throw new Error(NO_HOSTNAME_MESSAGE);
  return option.includes('://') ? parseUrlForm(option) : parseOriginalForm(option);
}

function parseOriginalForm(option: string): RimapTarget {
  const slash = option.indexOf('/');
  const host = slash < 0 ? option : option.slice(0, slash);
  const portSpec = slash < 0 ? 'imap' : option.slice(slash + 1);
  checkHost(host, option);
  return { host, port: resolvePort(portSpec, host), security: 'plain', caFile: undefined, stepTimeoutMs: DEFAULT_STEP_TIMEOUT_MS };
}

function parseUrlForm(option: string): RimapTarget {
  let url: URL;
  try {
    url = new URL(option);
  } catch {
    throw new Error(`auth_rimap_init: ${JSON.stringify(option)} is not a valid URL`);
  }
  const scheme = SCHEMES[url.protocol.toLowerCase()];
  if (!scheme) throw new Error(`auth_rimap_init: unknown scheme ${url.protocol} (imap://, imap+starttls:// or imaps://)`);
  if (url.username !== '' || url.password !== '') throw new Error('auth_rimap_init: the -O URL must not carry a user or password');
  if (url.pathname !== '' && url.pathname !== '/') throw new Error(`auth_rimap_init: the -O URL has a path (${url.pathname}); only host, port and query`);
  if (url.hash !== '') throw new Error('auth_rimap_init: the -O URL has a fragment');
  const host = decodeURIComponent(url.hostname.replace(/^\[(.*)\]$/, '$1'));
  checkHost(host, option);
  const port = url.port === '' ? scheme.defaultPort : resolvePort(url.port, host);
  let caFile: string | undefined;
  let stepTimeoutMs = DEFAULT_STEP_TIMEOUT_MS;
  for (const [key, value] of url.searchParams) {
    if (key === 'cafile') {
      if (scheme.security === 'plain') throw new Error('auth_rimap_init: cafile= needs imaps:// or imap+starttls://');
      if (value === '') throw new Error('auth_rimap_init: cafile= is empty');
      caFile = value;
    } else if (key === 'timeout') {
      const seconds = Number(value);
      if (!/^\d+(\.\d+)?$/.test(value) || seconds <= 0 || seconds > MAX_STEP_TIMEOUT_SECONDS) {
        throw new Error(`auth_rimap_init: timeout=${value} is not a number of seconds in (0, ${MAX_STEP_TIMEOUT_SECONDS}]`);
      }
      stepTimeoutMs = Math.round(seconds * 1000);
    } else {
      throw new Error(`auth_rimap_init: unknown -O URL parameter ${JSON.stringify(key)} (cafile, timeout)`);
    }
  }
  return { host, port, security: scheme.security, caFile, stepTimeoutMs };
}

function checkHost(host: string, option: string): void {
  if (host === '') throw new Error(`auth_rimap_init: no host name in -O ${JSON.stringify(option)}`);
  if (isIP(host) === 0 && !/^[A-Za-z0-9_]([A-Za-z0-9_.-]*[A-Za-z0-9_.])?$/.test(host)) {
    throw new Error(`auth_rimap_init: invalid host name ${JSON.stringify(host)}`);
  }
}

function resolvePort(spec: string, host: string): number {
  try {
    return resolveServicePort(spec);
  } catch (error) {
    throw new Error(`auth_rimap_init: ${host}/${spec}: ${(error as Error).message}`);
  }
}

/** How log lines name the server: the original's `host/port`, plus the transport. */
export function describeTarget(target: RimapTarget): string {
  const security = target.security === 'plain' ? '' : ` (${target.security === 'imaps' ? 'IMAPS' : 'STARTTLS'})`;
  return `${target.host}/${target.port}${security}`;
}
