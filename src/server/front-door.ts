/**
 * The front door: admits connections (up to --max-connections; past it an immediate
 * `NO server busy`), serves each one (connection.ts), and counts requests in flight so a
 * shutdown can wait for them.
 */
import type { Socket } from 'node:net';
import type { Config } from '../config.js';
import type { Logger } from '../log/logger.js';
import { POOL_REPLY } from '../workers/pool.js';
import type { Authenticator } from './authenticator.js';
import { refuseConnection, serveConnection } from './connection.js';

export class FrontDoor {
  readonly open = new Set<Socket>();
  private answering = 0;
  private whenQuiet: (() => void) | undefined;

  constructor(
    private readonly config: Config,
    private readonly log: Logger,
    private readonly authenticator: Authenticator,
  ) {}

  accept(socket: Socket): void {
    if (this.open.size >= this.config.limits.maxConnections) {
      this.log.error(`too many open connections (${this.config.limits.maxConnections}): client answered NO`);
      refuseConnection(socket, POOL_REPLY.busy, this.config.deadlines.drainTimeoutMs);
      return;
    }
    this.open.add(socket);
    socket.on('close', () => this.open.delete(socket));
    serveConnection(socket, {
      deadlines: this.config.deadlines,
      log: this.log,
      answer: async (request) => {
        this.answering++;
        try {
          return await this.authenticator.authenticate(request);
        } finally {
          this.answering--;
          if (this.answering === 0) this.whenQuiet?.();
        }
      },
    });
  }

  /** Resolves when no request is being answered, or after `ms`. */
  quiet(ms: number): Promise<void> {
    if (this.answering === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, ms);
      this.whenQuiet = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }
}
