/**
 * The per-request lines admins and fail2ban read, built once as fields and rendered in the
 * original's text:
 *   auth failure: [user=…] [service=…] [realm=…] [remote=…] [mech=…] [reason=…]
 * The text goes in the message (text formats, syslog); the fields go to `--log-format json`
 * as keys. Values are printable() already; no password ever reaches here.
 */
import { printable, type LogFields } from './logger.js';

/**
 * A client-sent field (user, service, realm, remote) as the line shows it: printable(), and
 * `[` `]` written as `\x5b` `\x5d`, so a login cannot forge a field (`] [remote=victim`)
 * that fail2ban would read as the client's address (fail2ban/saslauthd-ts.conf).
 */
export function fieldText(bytes: Buffer): string {
  return printable(bytes).replace(/[[\]]/g, (bracket) => (bracket === '[' ? '\\x5b' : '\\x5d'));
}

/** Who and where a request came from, as the log shows it. */
export interface RequestFields {
  readonly user: string;
  readonly service: string;
  readonly realm: string;
  /** Empty when the client sent no address (a 4-field request). */
  readonly remote: string;
}

export interface AuthLine {
  readonly text: string;
  readonly fields: LogFields;
}

/** `[user=…] [service=…] [realm=…]` and ` [remote=…]` when there is one. */
export function requestText({ user, service, realm, remote }: RequestFields): string {
  return `[user=${user}] [service=${service}] [realm=${realm}]${remote.length > 0 ? ` [remote=${remote}]` : ''}`;
}

/**
 * `event: [user=…] … [mech=…] [reason=…]`; `mechanism` and `reason` are shown only when
 * given (the cached-success line has neither, as in the original).
 */
export function authLine(event: string, request: RequestFields, mechanism?: string, reason?: string): AuthLine {
  let text = `${event}: ${requestText(request)}`;
  if (mechanism !== undefined) text += ` [mech=${mechanism}]`;
  if (reason !== undefined) text += ` [reason=${reason}]`;
  const fields: LogFields = {
    event,
    user: request.user,
    service: request.service,
    realm: request.realm,
    ...(request.remote.length > 0 ? { remote: request.remote } : {}),
    ...(mechanism !== undefined ? { mechanism } : {}),
    ...(reason !== undefined ? { reason } : {}),
  };
  return { text, fields };
}
