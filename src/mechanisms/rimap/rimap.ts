/**
 * The `rimap` mechanism (saslauthd's auth_rimap): a password is right when an IMAP server
 * accepts `LOGIN` with it. Same `-O host[/port]`, replies and classification as the original;
 * beyond it (see README, "rimap"):
 *  - the host is resolved for each request, so a DNS outage at boot does not stop the daemon;
 *  - every wait has a timeout and the whole request a budget below the default --job-timeout;
 *  - login and password are sent as IMAP literals when a quoted string cannot carry them
 *    (the original sent CR, LF and 8-bit bytes raw inside quotes: command injection);
 *  - IMAPS and STARTTLS with certificate verification (`-O imaps://…`, `imap+starttls://…`);
 *  - the password never reaches a log line (the original's verbose mode logged LOGIN).
 */
import type { AuthRequest, AuthResult, Mechanism, MechanismFactory, MechanismLog, MechanismOptions } from '../types.js';
import { connectFirst, resolveHost } from '../network/connect.js';
import { Deadline } from '../network/deadline.js';
import { markUnavailable } from '../network/replies.js';
import { isLoopbackHost, loadTrustedCas } from '../network/tls-trust.js';
import { ImapExchange, RIMAP_REPLY } from './imap-exchange.js';
import { describeTarget, parseRimapOption, type RimapTarget } from './target.js';

/**
 * A request may take this many step timeouts in all (lookup, connect, handshake, greeting,
 * LOGIN reply…): 25 s with the default 10 s steps, under the daemon's default --job-timeout
 * of 30 s, so a stalled server gets the mechanism's own NO and the worker stays.
 */
export const REQUEST_BUDGET_STEPS = 2.5;

interface Prepared {
  readonly target: RimapTarget;
  /** CA certificates for TLS; undefined: Node's bundled roots (plain IMAP: unused). */
  readonly ca: string | undefined;
}

/** Parses `-O` and loads the CAs; throws with the reason (for check() and each worker). */
function prepare(options: MechanismOptions): Prepared {
  const target = parseRimapOption(options.mechOption);
  const ca = target.security === 'plain' ? undefined : loadTrustedCas(target.caFile);
  return { target, ca };
}

async function authenticate(prepared: Prepared, request: AuthRequest, log: MechanismLog): Promise<AuthResult> {
  const { target } = prepared;
  const deadline = new Deadline(target.stepTimeoutMs * REQUEST_BUDGET_STEPS, target.stepTimeoutMs);
  let addresses;
  try {
    addresses = await resolveHost(target.host, deadline.nextWaitMs());
  } catch (error) {
    log.error(`auth_rimap: getaddrinfo ${target.host}/${target.port}: ${(error as Error).message}`);
    return { reply: RIMAP_REPLY.couldNotContact };
  }
  const socket = await connectFirst(addresses, target.port, deadline, (address, error) =>
    log.error(`auth_rimap: connect ${target.host}[${address.address}]/${target.port}: ${error.message}`),
  );
  if (socket === undefined) {
    log.error(`auth_rimap: couldn't connect to ${describeTarget(target)}`);
    return { reply: RIMAP_REPLY.couldNotContact };
  }
  const exchange = new ImapExchange(socket, { target, ca: prepared.ca, deadline, log });
  try {
    if (target.security === 'imaps') {
      const secured = await exchange.handshake();
      if ('reply' in secured) return { reply: secured.reply };
    }
    const greeting = await exchange.greeting();
    if ('reply' in greeting) return { reply: greeting.reply };
    let capabilities = greeting.value;
    if (target.security === 'starttls') {
      const secured = await exchange.startTls();
      if ('reply' in secured) return { reply: secured.reply };
      capabilities = new Set();
    }
    return { reply: await exchange.login(request.login, request.password, capabilities) };
  } finally {
    exchange.close();
  }
}

export const rimapMechanism: MechanismFactory = {
  name: 'rimap',
  check(options: MechanismOptions): void {
    const { target } = prepare(options);
    if (target.security === 'plain' && !isLoopbackHost(target.host)) {
      options.log.error(
        `auth_rimap: WARNING: passwords go to ${describeTarget(target)} over plain IMAP, unencrypted; ` +
          `use -O imaps://${target.host} or -O imap+starttls://${target.host}`,
      );
    }
  },
  create(options: MechanismOptions): Mechanism {
    const prepared = prepare(options);
    return {
      authenticate: (request) => authenticate(prepared, request, options.log).then(markUnavailable),
    };
  },
};
