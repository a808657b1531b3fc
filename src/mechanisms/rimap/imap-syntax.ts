/**
 * The few pieces of IMAP4 (RFC 9051 / 3501) syntax rimap needs, as pure functions:
 * how a login or password goes on the wire, the LOGIN command as the chunks to send, the
 * capabilities of a greeting, and the original's classification of the LOGIN reply.
 */

/** The original's command tag: IMAP servers' logs show it, so it is kept. */
export const LOGIN_TAG = 'saslauthd';
/** Tag of our STARTTLS command (not in the original, which had no TLS). */
export const STARTTLS_TAG = 'saslauthd-tls';

const DQUOTE = 0x22;
const BACKSLASH = 0x5c;
/** LITERAL- (RFC 7888) allows non-synchronizing literals up to this size. */
const LITERAL_MINUS_MAX_BYTES = 4096;

/**
 * True when `value` may travel as a quoted string. RFC 9051 allows any 7-bit byte but CR,
 * LF and NUL in one; control bytes are sent as literals as well, which every server takes.
 */
export function canQuote(value: Buffer): boolean {
  for (const byte of value) if (byte < 0x20 || byte > 0x7e) return false;
  return true;
}

/** `"…"` with `"` and `\` escaped; only for values canQuote() accepts. */
export function quoted(value: Buffer): Buffer {
  const out = Buffer.alloc(value.length * 2 + 2);
  let length = 0;
  out[length++] = DQUOTE;
  for (const byte of value) {
    if (byte === DQUOTE || byte === BACKSLASH) out[length++] = BACKSLASH;
    out[length++] = byte;
  }
  out[length++] = DQUOTE;
  const result = Buffer.from(out.subarray(0, length));
  out.fill(0);
  return result;
}

/** How the server takes literals, from its capabilities. */
export function nonSynchronizingLiteralLimit(capabilities: ReadonlySet<string>): number {
  if (capabilities.has('LITERAL+')) return Number.POSITIVE_INFINITY;
  if (capabilities.has('LITERAL-')) return LITERAL_MINUS_MAX_BYTES;
  return 0;
}

/**
 * `TAG LOGIN <login> <password>` CRLF as the chunks to send in order. Each value is a
 * quoted string when it may be, else a literal: `{n+}` inline when the server accepts
 * non-synchronizing literals of that size, else `{n}`, and the chunk ends there: the next
 * one may be sent only after the server's `+` continuation. The caller zeroes the chunks.
 */
export function loginCommandChunks(login: Buffer, password: Buffer, literalLimit: number): Buffer[] {
  const chunks: Buffer[] = [];
  let current: Buffer[] = [Buffer.from(`${LOGIN_TAG} LOGIN `)];
  const values = [login, password];
  values.forEach((value, index) => {
    if (index > 0) current.push(Buffer.from(' '));
    if (canQuote(value)) {
      current.push(quoted(value));
    } else if (value.length <= literalLimit) {
      current.push(Buffer.from(`{${value.length}+}\r\n`), Buffer.from(value));
    } else {
      current.push(Buffer.from(`{${value.length}}\r\n`));
      chunks.push(concatAndWipe(current));
      current = [Buffer.from(value)];
    }
  });
  current.push(Buffer.from('\r\n'));
  chunks.push(concatAndWipe(current));
  return chunks;
}

function concatAndWipe(parts: Buffer[]): Buffer {
  const joined = Buffer.concat(parts);
  for (const part of parts) part.fill(0);
  return joined;
}

/** The `[CAPABILITY …]` response code of a greeting or tagged OK, upper case; empty if none. */
export function capabilitiesOf(line: Buffer): Set<string> {
  const match = /\[CAPABILITY ([^\]]*)\]/i.exec(line.toString('latin1'));
  return new Set(match ? match[1]!.trim().toUpperCase().split(/ +/) : []);
}

export type GreetingKind = 'ok' | 'unavailable' | 'unexpected';

/** The original's greeting check: `* OK` goes on, `* NO` / `* BYE` mean unavailable. */
export function classifyGreeting(line: Buffer): GreetingKind {
  const text = line.toString('latin1');
  if (text.startsWith('* NO') || text.startsWith('* BYE')) return 'unavailable';
  return text.startsWith('* OK') ? 'ok' : 'unexpected';
}

export type LoginLineKind = 'accepted' | 'rejected' | 'more' | 'malformed';

/**
 * One line of the LOGIN reply, classified as the original does (process_login_reply):
 * `saslauthd OK…` accepted, `saslauthd NO…` rejected, `* CAPABILITY…` read on, anything
 * else (`saslauthd BAD`, `* OK [ALERT]…`, `* BYE`) malformed.
 */
export function classifyLoginLine(line: Buffer): LoginLineKind {
  const text = line.toString('latin1');
  if (text.startsWith(`${LOGIN_TAG} OK`)) return 'accepted';
  if (text.startsWith(`${LOGIN_TAG} NO`)) return 'rejected';
  if (text.startsWith('* CAPABILITY')) return 'more';
  return 'malformed';
}

/** A command continuation request (`+ …`): the server waits for the literal. */
export function isContinuation(line: Buffer): boolean {
  return line[0] === 0x2b;
}

/** The tagged completion of a command with `tag`, as `OK`/`NO`/`BAD`, or undefined for other lines. */
export function taggedStatus(line: Buffer, tag: string): string | undefined {
  const match = new RegExp(`^${tag.replace(/[-+]/g, '\\$&')} (OK|NO|BAD)\\b`, 'i').exec(line.toString('latin1'));
  return match ? match[1]!.toUpperCase() : undefined;
}
