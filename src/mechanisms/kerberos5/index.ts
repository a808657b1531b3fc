/**
 * The `kerberos5` mechanism (saslauthd's auth_krb5, MIT libkrb5): a password is right when
 * the KDC issues initial credentials for it AND those credentials verify against this host's
 * keytab (verification.ts); the principal is formed by principal.ts, settings come from the
 * `-O` file else /etc/saslauthd.conf (settings.ts). Replies are the original's.
 *
 * Deadline: libkrb5 1.20 offers no timeout for its KDC exchanges (against a KDC that accepts
 * and never answers it gives up after ~27 s per KDC). The network calls therefore run on
 * libuv's thread pool and the worker's event loop answers `NO …` when krb5_timeout passes.
 * The abandoned call keeps its own context and frees it when it returns; until then it holds
 * a pool thread, so at most maxAbandonedCalls() may be pending: past that, a request is
 * answered NO at once rather than queued behind hung calls (the KDC is not answering anyway).
 */
import { loadLibKrb5 } from '../../native/libkrb5.js';
import type { AuthRequest, AuthResult, Mechanism, MechanismFactory, MechanismOptions } from '../types.js';
import { formPrincipalName } from './principal.js';
import { readKrb5Settings } from './settings.js';
import { REPLY_PRINCIPAL_ERROR, Verification, timeoutReply } from './verification.js';

/** libuv's thread pool size when UV_THREADPOOL_SIZE does not set it. */
const DEFAULT_POOL_THREADS = 4;

/**
 * Abandoned libkrb5 calls a worker lets run on: all of libuv's pool threads but one, which
 * stays free for the next request's own call (a worker runs one request at a time and does
 * no other pool work).
 */
export function maxAbandonedCalls(env: NodeJS.ProcessEnv = process.env): number {
  const configured = Number(env['UV_THREADPOOL_SIZE']);
  const threads = Number.isInteger(configured) && configured > 0 ? configured : DEFAULT_POOL_THREADS;
  return Math.max(threads - 1, 1);
}

export const kerberos5Mechanism: MechanismFactory = {
  name: 'kerberos5',
  check(options: MechanismOptions): void {
    loadLibKrb5();
    readKrb5Settings(options.mechOption);
  },
  create(options: MechanismOptions): Mechanism {
    const krb5 = loadLibKrb5();
    const settings = readKrb5Settings(options.mechOption);
    const log = options.log;
    const maxAbandoned = maxAbandonedCalls();
    let abandonedCalls = 0;

    return {
      async authenticate(request: AuthRequest): Promise<AuthResult> {
        const principal = formPrincipalName(request.login, request.service, request.realm, settings);
        if (principal === null) {
          log.error('auth_krb5: form_principal_name');
          return { reply: REPLY_PRINCIPAL_ERROR };
        }
        if (abandonedCalls >= maxAbandoned) {
          log.error(`auth_krb5: ${abandonedCalls} earlier KDC calls have not returned yet: request not sent`);
          return { reply: timeoutReply('start'), unavailable: true };
        }
        const verification = new Verification(krb5, settings, log);
        const run = verification.run(principal, request.password);
        let timer: NodeJS.Timeout | undefined;
        const deadline = new Promise<null>((resolve) => {
          timer = setTimeout(() => resolve(null), settings.timeoutMs);
        });
        const reply = await Promise.race([run, deadline]);
        clearTimeout(timer);
        if (reply !== null) return { reply };

        const stage = verification.stage;
        verification.abandon();
        abandonedCalls += 1;
        void run.finally(() => {
          abandonedCalls -= 1;
        });
        log.error(`auth_krb5: no answer from the KDC within ${settings.timeoutMs} ms (${stage})`);
        // The KDC said nothing about the password: not an authentication failure.
        return { reply: timeoutReply(stage), unavailable: true };
      },
    };
  },
};
