/**
 * Which processes own listening TCP sockets: /proc/net/tcp{,6} rows in state LISTEN (0A),
 * matched to the socket inodes in /proc/PID/fd. Lets a test ask "does any process of this
 * daemon listen on TCP?" on a machine where other servers listen too.
 */
import { readFileSync, readdirSync, readlinkSync } from 'node:fs';

const TCP_LISTEN = '0A';

function listeningInodes(): Map<string, string> {
  const inodes = new Map<string, string>();
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text: string;
    try {
      text = readFileSync(table, 'latin1');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const fields = line.trim().split(/\s+/);
      if (fields.length > 9 && fields[3] === TCP_LISTEN) inodes.set(fields[9]!, fields[1]!);
    }
  }
  return inodes;
}

/** Local addresses (hex, as in /proc/net/tcp) of the TCP sockets `pid` listens on. */
export function tcpListenersOf(pid: number): string[] {
  const listening = listeningInodes();
  const found: string[] = [];
  let fds: string[];
  try {
    fds = readdirSync(`/proc/${pid}/fd`);
  } catch {
    return found; // gone
  }
  for (const fd of fds) {
    try {
      const match = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      const address = match ? listening.get(match[1]!) : undefined;
      if (address) found.push(address);
    } catch {
      // closed meanwhile
    }
  }
  return found;
}

/** True when something listens on 127.0.0.1:9229 or [::1]:9229, the inspector's default port. */
export function inspectorPortOpen(): boolean {
  for (const address of listeningInodes().values()) if (address.endsWith(':240D')) return true;
  return false;
}
