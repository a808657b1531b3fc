/**
 * Logging in the C saslauthd's text formats (or, with `--log-format json`, through pino:
 * one JSON object per line, with the fields below):
 *   - foreground debug (`-d`): `saslauthd[PID] :message` on stderr, as the original prints;
 *   - otherwise: `<N>message` on stderr, the sd-daemon priority prefix journald reads
 *     (`<3>` error, `<6>` info, `<7>` debug), so a unit with SyslogIdentifier=saslauthd and
 *     SyslogFacility=auth lands the lines in auth.log the way the original's syslog did.
 * Every line also goes to syslog (ident saslauthd, facility auth, src/native/syslog.ts), as
 * the original logs, in `-d` mode too — except when stderr is the journal (a systemd unit:
 * $JOURNAL_STREAM names stderr), where the unit's SyslogIdentifier=/SyslogFacility= already
 * route the stderr lines to syslog and a second copy would double every line; there the
 * lines carry the original's syslog text column (`<6>                : auth failure: …`), so
 * the journal and auth.log read as they did with the C daemon.
 * Debug lines exist only in verbose mode (`-d`, `-V`), as in the original, except the few
 * it writes unconditionally (debugAlways).
 * Callers never pass a password, hash or digest; user-controlled text goes through
 * `printable()` first so a login cannot forge a log line.
 */
import { fstatSync, writeSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { Logger as PinoLogger, pino as PinoFactory } from 'pino';
import { SYSLOG_COLUMN, writeSyslog } from '../native/syslog.js';

/** `json`: pino's own output on stderr (syslog still gets the text). */
export type LogFormat = 'foreground' | 'journal' | 'json';

/**
 * What a line is about, for log pipelines (`--log-format json` writes them as JSON keys;
 * the text formats show them inside the message, as the original does). Values are already
 * made printable; a password never goes here.
 */
export interface LogFields {
  readonly event?: string;
  readonly user?: string;
  readonly service?: string;
  readonly realm?: string;
  readonly mechanism?: string;
  readonly remote?: string;
  readonly reason?: string;
  /** How many events a rate-limited summary line stands for. */
  readonly count?: number;
}

export interface Logger {
  readonly verbose: boolean;
  error(message: string, fields?: LogFields): void;
  info(message: string, fields?: LogFields): void;
  /** A debug line: written only in verbose mode (`-d`, `-V`). */
  debug(message: string, fields?: LogFields): void;
  /**
   * A debug-priority line written whatever the verbosity: the few the original sends to
   * syslog unconditionally (auth_pam's `DEBUG: auth_pam: … failed: …`).
   */
  debugAlways(message: string, fields?: LogFields): void;
}

export interface LoggerOptions {
  readonly format: LogFormat;
  readonly verbose: boolean;
  /** Where lines go; stderr by default. Tests and the daemonizer may pass another fd. */
  readonly fd?: number;
  /** Also log to syslog; default: unless stderr is the journal (see stderrIsJournal). */
  readonly syslog?: boolean;
}

/** `--log-format json` wins; otherwise `-d`'s foreground text or the journal's prefixed text. */
export function chooseLogFormat(options: { readonly logFormat: 'text' | 'json'; readonly debugFormat: boolean }): LogFormat {
  if (options.logFormat === 'json') return 'json';
  return options.debugFormat ? 'foreground' : 'journal';
}

/** pino's numeric levels mapped to syslog priorities. */
const SYSLOG_PRIORITY: Readonly<Record<number, number>> = { 50: 3, 40: 4, 30: 6, 20: 7 };
/** The same priorities for the text formats, by level name. */
const TEXT_PRIORITY = { error: 3, info: 6, debug: 7 } as const;

/** The original formats into a 1024-byte buffer; longer messages are cut. */
const MAX_LINE_CHARS = 1023;

export function createLogger(options: LoggerOptions): Logger {
  const fd = options.fd ?? 2;
  const journal = stderrIsJournal();
  const json = options.format === 'json';
  // JSON lines are for log pipelines; syslog keeps the original's text (auth.log, fail2ban)
  // in every mode, also under systemd, where the text lines otherwise come from stderr.
  const syslog = options.syslog ?? (json || !journal);
  // Lines that journald takes as syslog lines carry the original's syslog text column, so
  // auth.log reads exactly as it did with the C daemon.
  const column = options.format === 'journal' && fd === 2 && journal ? SYSLOG_COLUMN : '';
  // journald reads a `<N>` prefix as the line's priority: JSON lines keep theirs too.
  const jsonPrefix = json && fd === 2 && journal;
  /** Writes one rendered line to fd (and its text to syslog). */
  const emit = (priority: number, line: string, text: string): void => {
    try {
      writeSync(fd, line);
    } catch {
      // A closed or full stderr must never take the daemon down.
    }
    if (syslog) writeSyslog(priority, text);
  };
  const cut = (msg: string): string => (msg.length > MAX_LINE_CHARS ? msg.slice(0, MAX_LINE_CHARS) : msg);
  // JSON: pino hands over one JSON object per call, written as it is.
  const destination = {
    write(serialized: string): void {
      const { level, msg } = JSON.parse(serialized) as { level: number; msg: string };
      const priority = SYSLOG_PRIORITY[level] ?? 6;
      emit(priority, `${jsonPrefix ? `<${priority}>` : ''}${serialized.endsWith('\n') ? serialized : `${serialized}\n`}`, cut(msg));
    },
  };
  // pino serves only `--log-format json`, and is loaded on its first line: the text formats
  // (the default) render their line directly, so a daemon that logs in text never loads it
  // (about 2.4 MB of heap and 17 ms of start-up in the primary, which logs at start).
  let log: PinoLogger | undefined;
  const pinoLogger = (): PinoLogger =>
    // pino's defaults (pid, hostname, epoch-ms time, numeric level), plus a name to route by
    (log ??= loadPino()({ level: 'debug', name: 'saslauthd' }, destination));
  const writeText = (level: 'error' | 'info' | 'debug', message: string): void => {
    const text = cut(message);
    const priority = TEXT_PRIORITY[level];
    emit(priority, options.format === 'foreground' ? `saslauthd[${process.pid}] :${text}\n` : `<${priority}>${column}${text}\n`, text);
  };
  const write = (level: 'error' | 'info' | 'debug', message: string, fields: LogFields | undefined): void => {
    if (!json) writeText(level, message);
    else if (fields) pinoLogger()[level](fields, message);
    else pinoLogger()[level](message);
  };
  return {
    verbose: options.verbose,
    error: (message, fields) => write('error', message, fields),
    info: (message, fields) => write('info', message, fields),
    debug: (message, fields) => {
      if (options.verbose) write('debug', message, fields);
    },
    debugAlways: (message, fields) => write('debug', message, fields),
  };
}

function loadPino(): typeof PinoFactory {
  return (createRequire(import.meta.url)('pino') as { pino: typeof PinoFactory }).pino;
}

/** True when fd 2 is the stream systemd connected to the journal ($JOURNAL_STREAM = "dev:inode"). */
export function stderrIsJournal(): boolean {
  const stream = process.env['JOURNAL_STREAM'];
  if (!stream) return false;
  try {
    const stat = fstatSync(2);
    return stream === `${stat.dev}:${stat.ino}`;
  } catch {
    return false;
  }
}

/** Non-streaming, so one decoder serves every call (replacement characters, never a throw). */
const UTF8 = new TextDecoder('utf-8', { fatal: false });

/**
 * Renders untrusted bytes (a login, a service, a realm) for a log line: printable ASCII and
 * valid UTF-8 stay as they are; control bytes and invalid sequences become `\xNN`, so a
 * login cannot end a line or inject another `auth success:` entry.
 */
export function printable(bytes: Buffer): string {
  let out = '';
  const text = UTF8.decode(bytes);
  if (!text.includes('\uFFFD') || Buffer.from(text, 'utf8').equals(bytes)) {
    for (const char of text) {
      const code = char.codePointAt(0)!;
      out += code < 0x20 || code === 0x7f || (code >= 0x80 && code < 0xa0) ? hexEscape(code) : char;
    }
    return out;
  }
  // Not valid UTF-8: keep ASCII printables, escape every other byte.
  for (const byte of bytes) out += byte >= 0x20 && byte < 0x7f ? String.fromCharCode(byte) : hexEscape(byte);
  return out;
}

function hexEscape(code: number): string {
  return `\\x${code.toString(16).padStart(2, '0')}`;
}
