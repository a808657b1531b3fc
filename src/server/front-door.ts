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

/** A refused client gets this long to read its `NO` and close. */
const REFUSAL_DRAIN_MS = 1_000;
/** At most one "too many open connections" line per this period, with the count. */
const REFUSAL_LOG_PERIOD_MS = 1_000;

export class FrontDoor {
  readonly open = new Set<Socket>();
  private answering = 0;
  /** Refused connections still draining. */
  private refusing = 0;
  /** Refusals since the last log line about them. */
  private refused = 0;
  private refusalLogTimer: NodeJS.Timeout | undefined;
  private whenQuiet: (() => void) | undefined;

  constructor(
    private readonly config: Config,
    private readonly log: Logger,
    private readonly authenticator: Authenticator,
  ) {}

  accept(socket: Socket): void {
    const limit = this.config.limits.maxConnections;
    if (this.open.size >= limit) {
      this.refused++;
      if (this.refusing >= limit) {
        socket.destroy(); // a flood: refusals are bounded too, so descriptors stay bounded
      } else {
        this.refusing++;
        socket.on('close', () => this.refusing--);
        refuseConnection(socket, POOL_REPLY.busy, Math.min(REFUSAL_DRAIN_MS, this.config.deadlines.drainTimeoutMs));
      }
      this.reportRefusals();
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

  /** Logs refusals at most once per period, so a flood of clients cannot flood the log. */
  private reportRefusals(): void {
    if (this.refusalLogTimer) return;
    this.refusalLogTimer = setTimeout(() => {
      this.refusalLogTimer = undefined;
      if (this.refused > 0) this.reportRefusals();
    }, REFUSAL_LOG_PERIOD_MS);
    this.refusalLogTimer.unref();
    this.log.error(
      `too many open connections (${this.config.limits.maxConnections}): ${this.refused} client(s) answered NO server busy`,
    );
    this.refused = 0;
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
