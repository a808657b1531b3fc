/**
 * syslog(3) through koffi and libc, as the original daemon logs: openlog("saslauthd",
 * LOG_PID|LOG_NDELAY, LOG_AUTH), then syslog(priority, "%-16s: %s", "", text) — the text
 * after an empty 16-column function-name field (saslauthd 2.1.27+), so a line reads
 * `saslauthd[PID]:                 : auth failure: …` in /var/log/auth.log, where fail2ban's
 * saslauthd filter looks for it.
 *
 * The message always goes through a "%s" format (never as the format), so no user text can
 * be taken as a conversion. glibc connects to /dev/log itself, and quietly drops lines when
 * nothing listens there (no syslog daemon): logging never takes the daemon down.
 */
import { libcHandle } from './libc.js';

const LOG_PID = 0x01;
const LOG_NDELAY = 0x08;
const LOG_AUTH = 4 << 3;
/** The original's empty function-name column: `%-16s: ` with "". */
export const SYSLOG_COLUMN = `${' '.repeat(16)}: `;

type SyslogFn = (priority: number, text: string) => void;
let send: SyslogFn | null | undefined;

function open(): SyslogFn | null {
  if (send !== undefined) return send;
  try {
    const libc = libcHandle();
    const strdup = libc.func('strdup', 'void *', ['const char *']);
    const openlog = libc.func('openlog', 'void', ['void *', 'int', 'int']);
    const syslog = libc.func('syslog', 'void', ['int', 'const char *', '...']);
    // openlog keeps the ident pointer: it must outlive every call, so it is never freed.
    const ident = strdup('saslauthd');
    openlog(ident, LOG_PID | LOG_NDELAY, LOG_AUTH);
    send = (priority, text) => void syslog(priority, '%s', 'const char *', SYSLOG_COLUMN + text);
  } catch {
    send = null;
  }
  return send;
}

/** Logs `text` at a syslog priority (3 err, 6 info, 7 debug) with facility auth. */
export function writeSyslog(priority: number, text: string): void {
  const fn = open();
  if (!fn) return;
  try {
    fn(priority, text);
  } catch {
    // never let logging take the daemon down
  }
}
