/**
 * A port given as a number or a service name (`imap`, `imaps`, `http`), as the original's
 * getaddrinfo() took it. Names are looked up in /etc/services (tcp entries, aliases
 * included); the few names the network mechanisms default to are also known without the
 * file, so a minimal system without netbase can still start with the defaults.
 */
import { readFileSync } from 'node:fs';

export const SERVICES_PATH = '/etc/services';

/** Used when /etc/services is missing or lacks them (IANA assignments). */
const WELL_KNOWN_TCP_PORTS: ReadonlyMap<string, number> = new Map([
  ['imap', 143],
  ['imap2', 143],
  ['imaps', 993],
  ['http', 80],
  ['https', 443],
]);

const MAX_PORT = 65_535;

/** The tcp port of a service name in the text of a services(5) file, or undefined. */
export function findServicePort(servicesText: string, name: string): number | undefined {
  for (const rawLine of servicesText.split('\n')) {
    const line = rawLine.replace(/#.*/, '').trim();
    if (line === '') continue;
    const [official, portProto, ...aliases] = line.split(/\s+/);
    const match = /^(\d+)\/tcp$/.exec(portProto ?? '');
    if (!match) continue;
    if (official === name || aliases.includes(name)) return Number(match[1]);
  }
  return undefined;
}

/**
 * The port for `spec`: a decimal number 1–65535 or a service name. Throws an Error saying
 * what is wrong (for a mechanism's check()).
 */
export function resolveServicePort(spec: string, servicesPath = SERVICES_PATH): number {
  if (/^\d+$/.test(spec)) {
    const port = Number(spec);
    if (port < 1 || port > MAX_PORT) throw new Error(`port ${spec} is out of range (1-${MAX_PORT})`);
    return port;
  }
  if (!/^[A-Za-z0-9][A-Za-z0-9._+-]*$/.test(spec)) throw new Error(`invalid port or service name: ${JSON.stringify(spec)}`);
  let text = '';
  try {
    text = readFileSync(servicesPath, 'latin1');
  } catch {
    // No services file: only the well-known names below.
  }
  const port = findServicePort(text, spec) ?? WELL_KNOWN_TCP_PORTS.get(spec.toLowerCase());
  if (port === undefined) throw new Error(`unknown service name ${JSON.stringify(spec)} (not a tcp entry of ${servicesPath})`);
  return port;
}
