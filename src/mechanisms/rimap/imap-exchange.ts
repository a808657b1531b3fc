/**
 * One conversation with the IMAP server for one request: greeting, optional STARTTLS,
 * LOGIN, LOGOUT. Every step maps what went wrong to the original's reply for that case
 * (auth_rimap.c) and logs why; nothing here ever logs the password.
 */
import type { Socket } from 'node:net';
import { printable } from '../../log/logger.js';
import type { MechanismLog } from '../types.js';
import type { Deadline } from '../network/deadline.js';
import { REMOTE_REPLY } from '../network/replies.js';
import { TlsHandshakeError, startTls } from '../network/tls-trust.js';
import {
  LOGIN_TAG,
  STARTTLS_TAG,
  canQuote,
  capabilitiesOf,
  classifyGreeting,
  classifyLoginLine,
  isContinuation,
  loginCommandChunks,
  nonSynchronizingLiteralLimit,
  taggedStatus,
} from './imap-syntax.js';
import { LineReader, type ReadOutcome } from './line-reader.js';
import { describeTarget, type RimapTarget } from './target.js';

export const RIMAP_REPLY = {
  ...REMOTE_REPLY,
  rejected: 'NO remote server rejected your credentials',
  syncError: 'NO [ALERT] error synchronizing with remote authentication server',
} as const;

/**
 * Longest server line read. The original read whole responses into 1000 bytes; a greeting
 * with a long capability list fits in far less than this, a runaway server does not.
 */
const MAX_LINE_BYTES = 8 * 1024;
/** How long LOGOUT may take to leave before the socket is destroyed (nothing waits on it). */
const LOGOUT_GRACE_MS = 1_000;

export interface ExchangeContext {
  readonly target: RimapTarget;
  readonly ca: string | undefined;
  readonly deadline: Deadline;
  readonly log: MechanismLog;
}

/** A reply string (the exchange ended) or the greeting's capabilities (go on). */
type Step<T> = { readonly reply: string } | { readonly value: T };

export class ImapExchange {
  private reader: LineReader;
  private readonly pendingSecrets: Buffer[] = [];

  constructor(
    private socket: Socket,
    private readonly context: ExchangeContext,
  ) {
    this.reader = new LineReader(socket, MAX_LINE_BYTES);
  }

  /** Reads the greeting; its capabilities when it is `* OK`. */
  async greeting(): Promise<Step<Set<string>>> {
    const outcome = await this.reader.nextLine(this.context.deadline.nextWaitMs());
    if (outcome.kind !== 'line') {
      this.context.log.error(`auth_rimap: read (banner) from ${this.server}: ${describeOutcome(outcome)}`);
      // The original: a timeout or EOF leaves an empty banner (unexpected); a read error or
      // a full buffer is an error synchronizing.
      return { reply: outcome.kind === 'timeout' || outcome.kind === 'closed' ? RIMAP_REPLY.unexpected : RIMAP_REPLY.syncError };
    }
    const kind = classifyGreeting(outcome.line);
    if (kind === 'unavailable') {
      this.context.log.error(`auth_rimap: ${this.server} is unavailable: ${printable(outcome.line)}`);
      return { reply: RIMAP_REPLY.unavailable };
    }
    if (kind === 'unexpected') {
      this.context.log.error(`auth_rimap: unexpected response during initial handshake: ${printable(outcome.line)}`);
      return { reply: RIMAP_REPLY.unexpected };
    }
    return { value: capabilitiesOf(outcome.line) };
  }

  /**
   * STARTTLS, then the TLS handshake with verification. Capabilities learnt before it are
   * void (RFC 9051 §6.2.1), so the caller forgets them.
   */
  async startTls(): Promise<Step<null>> {
    const sent = await this.send(Buffer.from(`${STARTTLS_TAG} STARTTLS\r\n`));
    if (sent !== undefined) {
      this.context.log.error(`auth_rimap: write STARTTLS to ${this.server}: ${sent}`);
      return { reply: RIMAP_REPLY.internalError };
    }
    for (;;) {
      const outcome = await this.reader.nextLine(this.context.deadline.nextWaitMs());
      if (outcome.kind !== 'line') {
        this.context.log.error(`auth_rimap: read (STARTTLS) from ${this.server}: ${describeOutcome(outcome)}`);
        return { reply: outcome.kind === 'timeout' || outcome.kind === 'closed' ? RIMAP_REPLY.unexpected : RIMAP_REPLY.syncError };
      }
      const status = taggedStatus(outcome.line, STARTTLS_TAG);
      if (status === undefined) continue; // untagged data (e.g. * CAPABILITY)
      if (status !== 'OK') {
        this.context.log.error(`auth_rimap: STARTTLS refused by ${this.server}: ${printable(outcome.line)}`);
        return { reply: RIMAP_REPLY.unexpected };
      }
      break;
    }
    // Bytes after the tagged OK arrived in clear text and would be read as if protected.
    if (this.reader.pendingBytes > 0) {
      this.context.log.error(`auth_rimap: ${this.server} sent data after its STARTTLS reply, before TLS: refused`);
      return { reply: RIMAP_REPLY.unexpected };
    }
    this.reader.detach();
    const upgraded = await this.handshake();
    return 'reply' in upgraded ? upgraded : { value: null };
  }

  /** The TLS handshake on the current socket (IMAPS at once, or after STARTTLS). */
  async handshake(): Promise<Step<null>> {
    const { target, ca, deadline } = this.context;
    this.reader.detach(); // the TLS socket gets a reader of its own
    try {
      this.socket = await startTls(this.socket, { host: target.host, ca, timeoutMs: deadline.nextWaitMs() });
    } catch (error) {
      if (!(error instanceof TlsHandshakeError)) throw error;
      this.context.log.error(`auth_rimap: TLS with ${this.server} failed: ${error.message}`);
      return { reply: RIMAP_REPLY.couldNotContact };
    }
    this.reader = new LineReader(this.socket, MAX_LINE_BYTES);
    return { value: null };
  }

  /** LOGIN, its reply classified as the original does, then LOGOUT. */
  async login(login: Buffer, password: Buffer, capabilities: ReadonlySet<string>): Promise<string> {
    const chunks = loginCommandChunks(login, password, nonSynchronizingLiteralLimit(capabilities));
    this.pendingSecrets.push(...chunks);
    const form = canQuote(login) && canQuote(password) ? 'quoted strings' : 'literals where needed';
    this.context.log.debug(`auth_rimap: sending ${LOGIN_TAG} LOGIN for [${printable(login)}] to ${this.server} (${form}; password not logged)`);
    for (let index = 0; index < chunks.length; index++) {
      const failed = await this.send(chunks[index]!);
      if (failed !== undefined) {
        this.context.log.error(`auth_rimap: writev ${LOGIN_TAG} LOGIN to ${this.server}: ${failed}`);
        return RIMAP_REPLY.internalError;
      }
      if (index === chunks.length - 1) break;
      // A synchronizing literal follows: the server must ask for it first.
      const outcome = await this.reader.nextLine(this.context.deadline.nextWaitMs());
      if (outcome.kind === 'line' && isContinuation(outcome.line)) continue;
      return this.finish(await this.loginReply(login, password, outcome));
    }
    return this.finish(await this.loginReply(login, password));
  }

  /** Destroys the connection and wipes every buffer that held the password. */
  close(): void {
    for (const secret of this.pendingSecrets) secret.fill(0);
    this.pendingSecrets.length = 0;
    if (!this.socket.destroyed) {
      this.socket.end();
      setTimeout(() => this.socket.destroy(), LOGOUT_GRACE_MS).unref();
    }
  }

  private get server(): string {
    return describeTarget(this.context.target);
  }

  private async loginReply(login: Buffer, password: Buffer, first?: ReadOutcome): Promise<string> {
    for (let outcome = first; ; outcome = undefined) {
      outcome ??= await this.reader.nextLine(this.context.deadline.nextWaitMs());
      if (outcome.kind !== 'line') {
        this.context.log.error(`auth_rimap: read (response) from ${this.server}: ${describeOutcome(outcome)}`);
        // The original: timeout or EOF → an empty reply (unexpected); error or overflow → internal error.
        return outcome.kind === 'timeout' || outcome.kind === 'closed' ? RIMAP_REPLY.unexpected : RIMAP_REPLY.internalError;
      }
      const kind = classifyLoginLine(outcome.line);
      if (kind === 'more') continue;
      const line = withoutSecret(outcome.line, password);
      if (kind === 'malformed') {
        this.context.log.error(`auth_rimap: unexpected response to auth request: ${line}`);
        return RIMAP_REPLY.unexpected;
      }
      this.context.log.debug(`auth_rimap: [${printable(login)}] ${line}`);
      return kind === 'accepted' ? RIMAP_REPLY.accepted : RIMAP_REPLY.rejected;
    }
  }

  /** LOGOUT, as the original, without waiting for its answer. */
  private finish(reply: string): string {
    if (!this.socket.destroyed && this.socket.writable) {
      this.context.log.debug(`auth_rimap: sending ${LOGIN_TAG} LOGOUT`);
      this.socket.write(`${LOGIN_TAG} LOGOUT\r\n`);
    }
    return reply;
  }

  /** Writes `bytes`; resolves with an error text, or undefined once the bytes left. */
  private send(bytes: Buffer): Promise<string | undefined> {
    return new Promise((resolve) => {
      if (this.socket.destroyed || !this.socket.writable) {
        resolve('connection closed');
        return;
      }
      const timer = setTimeout(() => resolve('write timed out'), this.context.deadline.nextWaitMs());
      this.socket.write(bytes, (error) => {
        clearTimeout(timer);
        resolve(error ? error.message : undefined);
      });
    });
  }
}

function describeOutcome(outcome: Exclude<ReadOutcome, { kind: 'line' }>): string {
  switch (outcome.kind) {
    case 'timeout':
      return 'timed out';
    case 'closed':
      return 'connection closed';
    case 'overflow':
      return `buffer overflow (a line longer than ${MAX_LINE_BYTES} bytes)`;
    case 'error':
      return outcome.message;
  }
}

/** A server line for a log; withheld if it echoes the password (some servers echo commands). */
function withoutSecret(line: Buffer, password: Buffer): string {
  return password.length > 0 && line.includes(password) ? '(line withheld: it contains the password)' : printable(line);
}
