/**
 * sd_notify(3) through koffi and libsystemd.so.0: tells systemd (Type=notify units) that the
 * daemon is ready, what it is doing, and that it is stopping. Node has no AF_UNIX datagram
 * sockets, and libsystemd is on every Debian system, so no native addon is needed.
 *
 * A no-op when $NOTIFY_SOCKET is unset (not started by systemd) or libsystemd cannot be
 * loaded: readiness reporting must never take the daemon down. The library is loaded on the
 * first notification only.
 */
import koffi from 'koffi';

const LIBSYSTEMD = 'libsystemd.so.0';

type SdNotify = (unsetEnvironment: number, state: string) => number;
let sdNotify: SdNotify | null | undefined;

function load(): SdNotify | null {
  if (sdNotify !== undefined) return sdNotify;
  try {
    const lib = koffi.load(LIBSYSTEMD);
    const fn = lib.func('sd_notify', 'int', ['int', 'const char *']);
    sdNotify = (unsetEnvironment, state) => fn(unsetEnvironment, state) as number;
  } catch {
    sdNotify = null;
  }
  return sdNotify;
}

/**
 * Sends `fields` (e.g. `{ READY: '1', STATUS: '…' }`) as one notification, newline-separated
 * `KEY=value` lines. Returns true when systemd got it.
 */
export function notifySystemd(fields: Readonly<Record<string, string | number>>): boolean {
  const socket = process.env['NOTIFY_SOCKET'];
  if (socket === undefined || socket === '') return false;
  const notify = load();
  if (!notify) return false;
  const state = Object.entries(fields)
    .map(([key, value]) => `${key}=${String(value).replace(/\n/g, ' ')}`)
    .join('\n');
  try {
    return notify(0, state) > 0;
  } catch {
    return false;
  }
}
