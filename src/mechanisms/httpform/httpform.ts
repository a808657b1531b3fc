/**
 * The `httpform` mechanism (saslauthd's auth_httpform, which Debian does not build): a
 * password is right when a web form says so. It POSTs `httpform_data` (with %u %p %r
 * URL-escaped) to `httpform_uri` and maps the status: 200/204 → OK, 403 → NO with the
 * reason phrase, anything else → NO [ALERT] Unexpected response…, as the original.
 * Beyond it (see README, "httpform"): Node's own HTTP/HTTPS client, HTTPS with certificate
 * verification, a timeout on every wait, the name resolved per request, a malformed response
 * answered NO with a log line (the original crashed, cyrus-sasl#821), and no password or
 * form body in any log line (the original's verbose mode logged the body).
 */
import { request as httpRequest, type ClientRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { isIP } from 'node:net';
import { checkServerIdentity, type PeerCertificate } from 'node:tls';
import { printable } from '../../log/logger.js';
import type { AuthRequest, AuthResult, Mechanism, MechanismFactory, MechanismLog, MechanismOptions } from '../types.js';
import { Deadline } from '../network/deadline.js';
import { REMOTE_REPLY, markUnavailable } from '../network/replies.js';
import { isLoopbackHost, loadTrustedCas } from '../network/tls-trust.js';
import { expandFormData } from './form-data.js';
import { loadHttpformSettings, type HttpformSettings } from './settings.js';

/** A request may take this many step timeouts in all: 25 s by default, under --job-timeout's 30 s. */
const REQUEST_BUDGET_STEPS = 2.5;

interface Prepared {
  readonly settings: HttpformSettings;
  readonly ca: string | undefined;
}

function prepare(options: MechanismOptions): Prepared {
  const settings = loadHttpformSettings(options.mechOption);
  return { settings, ca: settings.tls ? loadTrustedCas(settings.caFile) : undefined };
}

type Phase = 'connect' | 'tls' | 'response';

function hostHeader(settings: HttpformSettings): string {
  const host = isIP(settings.host) === 6 ? `[${settings.host}]` : settings.host;
  return `${host}:${settings.port}`;
}

/** The reply for a final status, as the original's build_sasl_response. */
export function replyForStatus(status: number, reason: string, log: MechanismLog): string {
  if (status === 200 || status === 204) return REMOTE_REPLY.accepted;
  if (status === 403) return reason === '' ? 'NO' : `NO ${reason}`;
  log.info(`auth_httpform: unexpected response to auth request: ${status} ${reason}`);
  return REMOTE_REPLY.unexpected;
}

function authenticate(prepared: Prepared, request: AuthRequest, log: MechanismLog): Promise<AuthResult> {
  const { settings } = prepared;
  const server = `${settings.host}/${settings.port}`;
  const deadline = new Deadline(settings.stepTimeoutMs * REQUEST_BUDGET_STEPS, settings.stepTimeoutMs);
  const body = expandFormData(settings.data, request);
  log.debug(`auth_httpform: POST ${settings.uri} to ${server}${settings.tls ? ' (HTTPS)' : ''} for [${printable(request.login)}] (form data not logged)`);
  return new Promise<AuthResult>((resolve) => {
    let phase: Phase = 'connect';
    let settled = false;
    let timer: NodeJS.Timeout | undefined;
    const finish = (reply: string): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      body.fill(0);
      outgoing.destroy();
      resolve({ reply });
    };
    const arm = (): void => {
      clearTimeout(timer);
      const waitMs = deadline.nextWaitMs();
      timer = setTimeout(() => {
        if (phase === 'response') {
          log.error(`auth_httpform: read (response) from ${server}: timed out`);
          finish(REMOTE_REPLY.internalError);
        } else {
          log.error(`auth_httpform: ${phase === 'tls' ? 'TLS handshake' : 'connect'} ${server}: timed out`);
          finish(REMOTE_REPLY.couldNotContact);
        }
      }, waitMs);
    };
    const options = {
      host: settings.host,
      port: settings.port,
      method: 'POST',
      path: settings.uri,
      setHost: false,
      agent: false as const,
      headers: {
        Host: hostHeader(settings),
        Connection: 'close',
        'User-Agent': 'saslauthd',
        Accept: '*/*',
        'Content-Type': 'application/x-www-form-urlencoded',
        'Content-Length': String(body.length),
      },
    };
    const outgoing: ClientRequest = settings.tls
      ? httpsRequest({
          ...options,
          ...(isIP(settings.host) === 0 ? { servername: settings.host } : {}),
          ...(prepared.ca === undefined ? {} : { ca: prepared.ca }),
          rejectUnauthorized: true,
          checkServerIdentity: (_name: string, certificate: PeerCertificate) => checkServerIdentity(settings.host, certificate),
        })
      : httpRequest(options);
    arm();
    outgoing.on('socket', (socket) => {
      socket.once('connect', () => {
        phase = settings.tls ? 'tls' : 'response';
        arm();
      });
      socket.once('secureConnect', () => {
        phase = 'response';
        arm();
      });
    });
    outgoing.on('response', (response: IncomingMessage) => {
      const status = response.statusCode ?? 0;
      const reason = response.statusMessage ?? '';
      const safeReason = request.password.length > 0 && Buffer.from(reason, 'latin1').includes(request.password) ? '' : reason;
      log.debug(`auth_httpform: [${printable(request.login)}] HTTP ${status} ${printable(Buffer.from(safeReason, 'latin1'))}`);
      // Destroying the request after its response makes the response emit 'error' (aborted).
      response.on('error', () => {});
      response.resume();
      finish(replyForStatus(status, safeReason, log));
    });
    outgoing.on('error', (error: NodeJS.ErrnoException) => {
      if (settled) return;
      const code = error.code ?? '';
      if (phase === 'connect') {
        log.error(`auth_httpform: connect ${server}: ${error.message}`);
        finish(REMOTE_REPLY.couldNotContact);
      } else if (phase === 'tls') {
        log.error(`auth_httpform: TLS with ${server} failed: ${error.message}`);
        finish(REMOTE_REPLY.couldNotContact);
      } else if (code.startsWith('HPE_') || code === 'ECONNRESET') {
        // A status line Node's parser refuses, or a close before any response.
        log.error(`auth_httpform: invalid response to auth request from ${server}: ${error.message}${code ? ` (${code})` : ''}`);
        finish(REMOTE_REPLY.unexpected);
      } else {
        log.error(`auth_httpform: request to ${server} failed: ${error.message}`);
        finish(REMOTE_REPLY.internalError);
      }
    });
    outgoing.end(body);
  });
}

export const httpformMechanism: MechanismFactory = {
  name: 'httpform',
  check(options: MechanismOptions): void {
    const { settings } = prepare(options);
    if (!settings.tls && !isLoopbackHost(settings.host)) {
      options.log.error(
        `auth_httpform: WARNING: passwords go to ${settings.host}/${settings.port} over plain HTTP, unencrypted; set httpform_tls: yes`,
      );
    }
  },
  create(options: MechanismOptions): Mechanism {
    const prepared = prepare(options);
    return { authenticate: (request) => authenticate(prepared, request, options.log).then(markUnavailable) };
  },
};
