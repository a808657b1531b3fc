/**
 * Replies the original's network mechanisms (auth_rimap.c, auth_httpform.c) send, byte for
 * byte: clients and admins' scripts match on them.
 */
export const REMOTE_REPLY = {
  accepted: 'OK remote authentication successful',
  internalError: 'NO [ALERT] saslauthd internal error',
  unavailable: 'NO [ALERT] The remote authentication server is currently unavailable',
  unexpected: 'NO [ALERT] Unexpected response from remote authentication server',
  couldNotContact: "NO [ALERT] Couldn't contact remote authentication server",
} as const;
