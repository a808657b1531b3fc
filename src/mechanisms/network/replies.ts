/**
 * Replies the original's network mechanisms (auth_rimap.c, auth_httpform.c) send, byte for
 * byte: clients and admins' scripts match on them.
 */
import type { AuthResult } from '../types.js';

export const REMOTE_REPLY = {
  accepted: 'OK remote authentication successful',
  internalError: 'NO [ALERT] saslauthd internal error',
  unavailable: 'NO [ALERT] The remote authentication server is currently unavailable',
  unexpected: 'NO [ALERT] Unexpected response from remote authentication server',
  couldNotContact: "NO [ALERT] Couldn't contact remote authentication server",
} as const;

/**
 * Every `NO [ALERT] …` of rimap and httpform is the server's trouble (unreachable, silent,
 * unavailable, unexpected): only their plain `NO …` (rejected credentials, a 403) is a verdict
 * on the password. Marked so the primary does not count it against the login.
 */
export function markUnavailable(result: AuthResult): AuthResult {
  return result.reply.startsWith('NO [ALERT]') ? { ...result, unavailable: true } : result;
}
