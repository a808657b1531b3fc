/**
 * The httpform mechanism's settings from the saslauthd.conf format (`-O` names the file,
 * else /etc/saslauthd.conf when it exists), with the original's keys and defaults and ours
 * for TLS and timeouts. Every `httpform_*` key either works or stops the start.
 *
 *   httpform_host              server name or address (localhost)
 *   httpform_port              port number or service name (80; 443 with TLS)
 *   httpform_uri               request target of the POST (required)
 *   httpform_data              form body with %u %p %r %% (required)
 *   httpform_tls               yes|no: HTTPS with certificate verification (no)
 *   httpform_tls_cacert_file   PEM CAs to trust instead of the system's (HTTPS only)
 *   httpform_timeout           seconds for each network wait (10)
 */
import { existsSync } from 'node:fs';
import { DEFAULT_CONFIG_PATH, readConfigFile, type ConfigEntries } from '../config-file.js';
import { resolveServicePort } from '../network/service-port.js';

export interface HttpformSettings {
  readonly host: string;
  readonly port: number;
  readonly uri: string;
  /** The `httpform_data` template as bytes (the file is UTF-8). */
  readonly data: Buffer;
  readonly tls: boolean;
  readonly caFile: string | undefined;
  readonly stepTimeoutMs: number;
}

/** Each network wait, by default: the whole request gets 2.5 of them, under --job-timeout's 30 s. */
export const DEFAULT_STEP_TIMEOUT_MS = 10_000;
const MAX_STEP_TIMEOUT_SECONDS = 3_600;

const KNOWN_KEYS = new Set([
  'httpform_host',
  'httpform_port',
  'httpform_uri',
  'httpform_data',
  'httpform_tls',
  'httpform_tls_cacert_file',
  'httpform_timeout',
]);

const BOOLEAN_WORDS: Readonly<Record<string, boolean>> = { yes: true, on: true, true: true, 1: true, no: false, off: false, false: false, 0: false };

/** The original's complaint when the two required keys are missing. */
export const MISSING_KEYS_MESSAGE = 'auth_httpform_init formdata and uri must be specified';

/** Reads the file `-O` names, else /etc/saslauthd.conf if present; throws with the reason. */
export function loadHttpformSettings(mechOption: string | undefined, defaultPath = DEFAULT_CONFIG_PATH): HttpformSettings {
  let entries: ConfigEntries = new Map();
  const path = mechOption !== undefined && mechOption !== '' ? mechOption : existsSync(defaultPath) ? defaultPath : undefined;
  if (path !== undefined) {
    try {
      entries = readConfigFile(path);
    } catch (error) {
      throw new Error(`auth_httpform_init ${(error as Error).message}`);
    }
  }
  return httpformSettingsFrom(entries);
}

/** The settings from parsed config entries (other mechanisms' keys are ignored). */
export function httpformSettingsFrom(entries: ConfigEntries): HttpformSettings {
  for (const key of entries.keys()) {
    if (key.startsWith('httpform_') && !KNOWN_KEYS.has(key)) throw new Error(`auth_httpform_init: unknown key ${key}`);
  }
  const uri = entries.get('httpform_uri');
  const data = entries.get('httpform_data');
  if (uri === undefined || data === undefined) throw new Error(MISSING_KEYS_MESSAGE);
  // Node refuses these in a request target; the original would have sent a broken request line.
  if (/[\s\x00-\x1f\x7f]/.test(uri)) throw new Error('auth_httpform_init: httpform_uri holds spaces or control characters');
  const tlsWord = entries.get('httpform_tls') ?? 'no';
  const tls = BOOLEAN_WORDS[tlsWord.toLowerCase()];
  if (tls === undefined) throw new Error(`auth_httpform_init: httpform_tls must be yes or no, not ${JSON.stringify(tlsWord)}`);
  const caFile = entries.get('httpform_tls_cacert_file');
  if (caFile !== undefined && !tls) throw new Error('auth_httpform_init: httpform_tls_cacert_file needs httpform_tls: yes');
  const host = entries.get('httpform_host') ?? 'localhost';
  if (/[\s/\x00-\x1f\x7f]/.test(host)) throw new Error(`auth_httpform_init: invalid httpform_host ${JSON.stringify(host)}`);
  const portSpec = entries.get('httpform_port') ?? (tls ? '443' : '80');
  let port: number;
  try {
    port = resolveServicePort(portSpec);
  } catch (error) {
    throw new Error(`auth_httpform_init: httpform_port: ${(error as Error).message}`);
  }
  const timeout = entries.get('httpform_timeout');
  let stepTimeoutMs = DEFAULT_STEP_TIMEOUT_MS;
  if (timeout !== undefined) {
    const seconds = Number(timeout);
    if (!/^\d+(\.\d+)?$/.test(timeout) || seconds <= 0 || seconds > MAX_STEP_TIMEOUT_SECONDS) {
      throw new Error(`auth_httpform_init: httpform_timeout must be seconds in (0, ${MAX_STEP_TIMEOUT_SECONDS}], not ${JSON.stringify(timeout)}`);
    }
    stepTimeoutMs = Math.round(seconds * 1000);
  }
  return { host, port, uri, data: Buffer.from(data, 'utf8'), tls, caFile, stepTimeoutMs };
}
