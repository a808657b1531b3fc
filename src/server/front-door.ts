/**
 * The front door: admits connections (up to --max-connections; past it an immediate
 * `NO server busy`), serves each one (connection.ts), and counts requests in flight so a
 * shutdown can wait for them.
 */
import type { Config } from '../config.js';
import type { Logger } from '../log/logger.js';
import { RateLimitedReport } from '../log/rate-limited-report.js';
import { POOL_REPLY } from '../workers/pool.js';
import { closeFd } from '../native/posix-sockets.js';
import type { Authenticator, HandedOverAnswer } from './authenticator.js';
import type { WireRequest } from '../protocol/codec.js';
import type { Handoff } from '../workers/fast-path-frames.js';
import { ClientConnection, type ConnectionContext } from './connection.js';
import type { SocketPoller } from '../native/socket-poller.js';

/** A refused client gets this long to read its `NO` and close. */
const REFUSAL_DRAIN_MS = 1_000;
/** At most one "too many open connections" line per this period, with the count. */
const REFUSAL_LOG_PERIOD_MS = 1_000;

export class FrontDoor {
  readonly open = new Set<ClientConnection>();
  /** Connections answered `NO server busy` (or closed, in a flood) because too many were open. */
  refused = 0;
  private answering = 0;
  /** Refused connections still draining. */
  private readonly refusing = new Set<ClientConnection>();
  /** One line per period for refusals, however many clients are refused. */
  private readonly refusalLog: RateLimitedReport;
  private whenQuiet: (() => void) | undefined;
  private readonly servedContext: ConnectionContext;
  private readonly refusedContext: ConnectionContext;

  constructor(
    private readonly config: Config,
    log: Logger,
    private readonly authenticator: Authenticator,
    poller: SocketPoller,
    /** Told how many connections are open whenever that changes (workers read it). */
    private readonly publishOpen: (count: number) => void = () => {},
  ) {
    const counted = async (answering: () => Promise<string>): Promise<string> => {
      this.answering++;
      try {
        return await answering();
      } finally {
        this.answering--;
        if (this.answering === 0) this.whenQuiet?.();
      }
    };
    const base = {
      poller,
      deadlines: config.deadlines,
      log,
      answer: (request: WireRequest) => counted(() => this.authenticator.authenticate(request)),
      answerChecked: (request: WireRequest, checked: HandedOverAnswer) => counted(() => this.authenticator.answerChecked(request, checked)),
    };
    this.servedContext = {
      ...base,
      onClosed: (connection) => {
        this.open.delete(connection);
        this.publishOpen(this.open.size);
      },
    };
    this.refusedContext = { ...base, onClosed: (connection) => this.refusing.delete(connection) };
    this.refusalLog = new RateLimitedReport(REFUSAL_LOG_PERIOD_MS, (count) =>
      log.error(`too many open connections (${config.limits.maxConnections}): ${count} client(s) answered NO server busy`),
    );
  }

  /** Takes a connection a worker handed over, with what it read (and its answer, if it checked). */
  adopt(fd: number, handoff: Handoff): void {
    this.accept(fd, handoff);
  }

  /**
   * Answers a client `text` without reading from it (a worker read its request, then ran
   * past its deadline and was killed; the primary took its connection), then drains.
   */
  answerAtOnce(fd: number, text: string): void {
    const connection = new ClientConnection(fd, this.servedContext);
    this.open.add(connection);
    this.publishOpen(this.open.size);
    connection.refuse(text, this.config.deadlines.drainTimeoutMs);
  }

  /** Takes a freshly accepted descriptor. */
  accept(fd: number, handoff?: Handoff): void {
    const limit = this.config.limits.maxConnections;
    // A connection handed over with a worker's answer is always taken: its check happened,
    // and its failure must be logged and counted against the login (at most one per worker).
    if (this.open.size >= limit && !handoff?.answer) {
      this.refused++;
      if (this.refusing.size >= limit) {
        closeFd(fd); // a flood: refusals are bounded too, so descriptors stay bounded
      } else {
        const refusal = new ClientConnection(fd, this.refusedContext);
        this.refusing.add(refusal);
        refusal.refuse(POOL_REPLY.busy, Math.min(REFUSAL_DRAIN_MS, this.config.deadlines.drainTimeoutMs));
      }
      this.refusalLog.note();
      return;
    }
    const connection = new ClientConnection(fd, this.servedContext);
    this.open.add(connection);
    this.publishOpen(this.open.size);
    connection.serve(handoff?.received, handoff?.answer);
  }

  /** Closes every connection still open (the end of a shutdown). */
  closeAll(): void {
    for (const connection of [...this.open, ...this.refusing]) connection.close();
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
