/**
 * One LDAP connection of a worker, over ldapts: the servers of `ldap_servers` tried in order
 * (the first that connects, and completes StartTLS when asked, is used), TLS set up the way
 * libldap does it (certificate and name checked unless ldap_tls_check_peer is off), and every
 * step bounded by `ldap_timeout` and by the request's own deadline. When a bound is hit the
 * socket is destroyed, so a stalled server costs one request, never the worker.
 *
 * The socket is made by our own factory (ldapts' createConnection/createSecureConnection) so
 * that we can destroy it at once, and so that ldapi:// (a Unix socket, which ldapts' URL
 * parser does not know) is an ordinary stream under an ldap:// client.
 */
import { connect as netConnect, isIP, type Socket } from 'node:net';
import { connect as tlsConnect, createSecureContext, type ConnectionOptions, type SecureContext, type TLSSocket } from 'node:tls';
import { Client, ResultCodeError, type SearchOptions, type SearchResult } from 'ldapts';
import type { LdapConfig, ServerAddress } from './config.js';

/** RFC 4532 "Who am I?" extended operation. */
const WHO_AM_I_OID = '1.3.6.1.4.1.4203.1.11.3';

/** The connection failed, broke or timed out: the original's LDAP_SERVER_DOWN (retry once). */
export class ServerDownError extends Error {
  override name = 'ServerDownError';
}

/** An LDAP result code other than success (invalidCredentials, noSuchObject…). */
export function resultCodeOf(error: unknown): number | undefined {
  return error instanceof ResultCodeError ? error.code : undefined;
}

/** The moment a request must have its answer by. */
export class Deadline {
  constructor(private readonly at: number) {}
  static after(ms: number): Deadline {
    return new Deadline(Date.now() + ms);
  }
  remainingMs(): number {
    return Math.max(0, this.at - Date.now());
  }
}

/** One OpenSSL context per configuration: parsing the CA bundle costs milliseconds per connection otherwise. */
const secureContexts = new WeakMap<LdapConfig, SecureContext>();

function secureContextFor(config: LdapConfig): SecureContext {
  let context = secureContexts.get(config);
  if (context === undefined) {
    const { tls } = config;
    context = createSecureContext({
      ...(tls.ca === undefined ? {} : { ca: tls.ca as Buffer[] }),
      ...(tls.cert === undefined ? {} : { cert: tls.cert, key: tls.key }),
      ...(tls.ciphers === undefined ? {} : { ciphers: tls.ciphers }),
    });
    secureContexts.set(config, context);
  }
  return context;
}

export class LdapConnection {
  private client: Client | undefined;
  private socket: Socket | undefined;
  /** Which server of the list the connection goes to (for log lines). */
  private server: ServerAddress | undefined;

  constructor(
    private readonly config: LdapConfig,
    private readonly debug: (message: string) => void,
  ) {}

  get connected(): boolean {
    return this.client !== undefined && this.socket !== undefined && !this.socket.destroyed;
  }

  /** Connects to the first server of the list that answers; ServerDownError when none does. */
  async connect(deadline: Deadline): Promise<void> {
    if (this.connected) return;
    this.destroy();
    const failures: string[] = [];
    for (const server of this.config.servers) {
      if (deadline.remainingMs() === 0) break;
      try {
        await this.connectTo(server, deadline);
        return;
      } catch (error) {
        this.destroy();
        failures.push(`${server.uri}: ${(error as Error).message}`);
        this.debug(`ldap: cannot connect to ${server.uri}: ${(error as Error).message}`);
      }
    }
    throw new ServerDownError(failures.length > 0 ? failures.join('; ') : 'no time left to connect');
  }

  private tlsOptions(host: string): ConnectionOptions {
    return {
      host,
      // SNI takes a name, never an address; the certificate check still uses `host`.
      ...(isIP(host) === 0 ? { servername: host } : {}),
      rejectUnauthorized: this.config.tls.checkPeer,
      secureContext: secureContextFor(this.config),
    };
  }

  private async connectTo(server: ServerAddress, deadline: Deadline): Promise<void> {
    this.server = server;
    const remember = <T extends Socket>(socket: T): T => {
      this.socket = socket;
      return socket;
    };
    if (server.kind === 'ldapi') {
      this.client = new Client({
        url: 'ldap://localhost',
        createConnection: (() => remember(netConnect({ path: server.path }))) as unknown as typeof netConnect,
      });
    } else {
      const tlsOptions = this.tlsOptions(server.host);
      this.client = new Client({
        url: `${server.tls ? 'ldaps' : 'ldap'}://${server.host.includes(':') ? `[${server.host}]` : server.host}:${server.port}`,
        createConnection: (() => remember(netConnect({ host: server.host, port: server.port }))) as unknown as typeof netConnect,
        // ldaps:// (port, host, options) and StartTLS (options with the plain socket).
        createSecureConnection: ((...args: unknown[]) => {
          const extra = args.find((arg): arg is ConnectionOptions => typeof arg === 'object' && arg !== null) ?? {};
          const options: ConnectionOptions = { ...tlsOptions, ...(extra.socket ? { socket: extra.socket } : { port: server.port }) };
          return remember(tlsConnect(options) as TLSSocket);
        }) as unknown as typeof tlsConnect,
      });
    }
    if (server.kind === 'tcp' && !server.tls && this.config.startTls) {
      // startTLS() connects first, then upgrades.
      await this.bounded(deadline, 'StartTLS', () => this.client!.startTLS(this.tlsOptions(server.host)));
      return;
    }
    // ldapts connects lazily on the first operation; connect now, so that a server that is
    // down is found here and the next one of the list tried (ldapts 8's connect step).
    const lazy = this.client as unknown as { _connect?: () => Promise<void> | void };
    if (typeof lazy._connect === 'function') await this.bounded(deadline, 'connect', () => lazy._connect!.call(this.client));
  }

  /** Runs one step within ldap_timeout and the request's deadline; on expiry the socket goes. */
  private async bounded<T>(deadline: Deadline, what: string, step: () => Promise<T> | T): Promise<T> {
    const limit = Math.min(this.config.timeoutMs, deadline.remainingMs());
    if (limit <= 0) {
      this.destroy();
      throw new ServerDownError(`${what}: no time left`);
    }
    let timer: NodeJS.Timeout | undefined;
    const expiry = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        this.destroy();
        reject(new ServerDownError(`${what}: no answer within ${limit} ms`));
      }, limit);
    });
    try {
      return await Promise.race([Promise.resolve().then(step), expiry]);
    } catch (error) {
      if (error instanceof ServerDownError || resultCodeOf(error) !== undefined) throw error;
      // A socket error, a closed connection, a TLS failure: the server is down for us.
      this.destroy();
      throw new ServerDownError(`${what}: ${(error as Error).message.split('\n')[0]}`);
    } finally {
      clearTimeout(timer);
    }
  }

  private requireClient(): Client {
    if (!this.connected) throw new ServerDownError('not connected');
    return this.client!;
  }

  /** Simple bind; rejects with the server's result code (49 = wrong password). */
  async bind(dn: string, password: string, deadline: Deadline): Promise<void> {
    const client = this.requireClient();
    await this.bounded(deadline, 'bind', () => client.bind(dn, password));
  }

  /** SASL PLAIN bind (RFC 4616: authzid NUL authcid NUL password). */
  async bindSaslPlain(authzId: string, authcId: string, password: string, deadline: Deadline): Promise<void> {
    const client = this.requireClient();
    await this.bounded(deadline, 'SASL PLAIN bind', () => client.bindSASL('PLAIN', `${authzId}\0${authcId}\0${password}`));
  }

  /** The bound identity's DN by the "Who am I?" operation (RFC 4532), or undefined. */
  async whoAmI(deadline: Deadline): Promise<string | undefined> {
    const client = this.requireClient();
    const result = await this.bounded(deadline, 'whoami', () => client.exop(WHO_AM_I_OID));
    const value = result.value ?? '';
    return value.startsWith('dn:') ? value.slice(3) : undefined;
  }

  async search(base: string, options: SearchOptions, deadline: Deadline): Promise<SearchResult> {
    const client = this.requireClient();
    return this.bounded(deadline, 'search', () => client.search(base, options));
  }

  async compare(dn: string, attribute: string, value: string, deadline: Deadline): Promise<boolean> {
    const client = this.requireClient();
    return this.bounded(deadline, 'compare', () => client.compare(dn, attribute, value));
  }

  /** Which server this connection talks to, for log lines. */
  get serverUri(): string {
    return this.server?.uri ?? '(none)';
  }

  /** Drops the connection at once (no unbind round trip: the server may be the problem). */
  destroy(): void {
    this.socket?.destroy();
    this.socket = undefined;
    this.client = undefined;
  }
}
