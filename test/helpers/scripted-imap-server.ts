/**
 * A tiny IMAP server on loopback for the cases a real server will not produce on demand:
 * a `* BYE` greeting, no greeting at all, a close or a stall after LOGIN, odd untagged lines,
 * passwords with bytes dovecot refuses (CR, LF, TAB). It parses what a client sends the way
 * a server must (atoms, quoted strings with escapes, `{n}` literals it answers with `+`, and
 * `{n+}`), records every LOGIN's arguments byte for byte, and answers as the test scripts it.
 */
import { createServer, type Server, type Socket } from 'node:net';

/** What the server does with a LOGIN: lines to send (CRLF added), 'close', or 'stall'. */
export type LoginAnswer = readonly string[] | 'close' | 'stall';

export interface ScriptedImapOptions {
  /** Greeting line (CRLF added); null: never greet. */
  readonly greeting?: string | null;
  /** Close right after the greeting (a `* BYE` server). */
  readonly closeAfterGreeting?: boolean;
  /** Answer to LOGIN given its arguments; default: OK when they match `accept`, else NO. */
  readonly onLogin?: (login: Buffer, password: Buffer) => LoginAnswer;
  /** Lines answering STARTTLS (the server never starts TLS); default: `$TAG BAD`. */
  readonly onStartTls?: () => readonly string[];
  /** The one login/password the default answer accepts. */
  readonly accept?: { readonly login: Buffer | string; readonly password: Buffer | string };
}

export interface RecordedLogin {
  readonly login: Buffer;
  readonly password: Buffer;
}

type Parsed =
  | { readonly kind: 'more' }
  | { readonly kind: 'bad'; readonly consumed: number }
  | { readonly kind: 'command'; readonly consumed: number; readonly tag: string; readonly words: Buffer[] };

const CR = 0x0d;
const LF = 0x0a;

/**
 * Parses one command at the start of `data`. `acknowledge(offset)` is called once per
 * synchronizing literal whose data has not arrived yet (the server then sends `+`).
 */
export function parseCommand(data: Buffer, acknowledge: (offset: number) => void): Parsed {
  const words: Buffer[] = [];
  let pos = 0;
  for (;;) {
    if (pos >= data.length) return { kind: 'more' };
    const byte = data[pos]!;
    if (byte === 0x22) {
      const out: number[] = [];
      pos++;
      for (;;) {
        if (pos >= data.length) return { kind: 'more' };
        const c = data[pos]!;
        if (c === CR || c === LF) return badLine(data, pos);
        if (c === 0x5c) {
          if (pos + 1 >= data.length) return { kind: 'more' };
          out.push(data[pos + 1]!);
          pos += 2;
          continue;
        }
        pos++;
        if (c === 0x22) break;
        out.push(c);
      }
      words.push(Buffer.from(out));
    } else if (byte === 0x7b) {
      const close = data.indexOf(0x7d, pos);
      if (close < 0 || close + 2 >= data.length + 1) return { kind: 'more' };
      const spec = data.subarray(pos + 1, close).toString('latin1');
      const match = /^(\d+)(\+?)$/.exec(spec);
      if (!match) return badLine(data, pos);
      if (data.length < close + 3) return { kind: 'more' };
      if (data[close + 1] !== CR || data[close + 2] !== LF) return badLine(data, pos);
      const size = Number(match[1]);
      const start = close + 3;
      if (data.length < start + size) {
        if (match[2] !== '+') acknowledge(start);
        return { kind: 'more' };
      }
      words.push(Buffer.from(data.subarray(start, start + size)));
      pos = start + size;
    } else {
      let end = pos;
      while (end < data.length && data[end] !== 0x20 && data[end] !== CR && data[end] !== LF) end++;
      if (end >= data.length) return { kind: 'more' };
      words.push(Buffer.from(data.subarray(pos, end)));
      pos = end;
    }
    if (pos >= data.length) return { kind: 'more' };
    if (data[pos] === 0x20) {
      pos++;
      continue;
    }
    if (data[pos] === CR && pos + 1 >= data.length) return { kind: 'more' };
    if (data[pos] === CR && data[pos + 1] === LF) pos += 2;
    else if (data[pos] === LF) pos += 1;
    else return badLine(data, pos);
    const [tag, ...rest] = words;
    return { kind: 'command', consumed: pos, tag: tag?.toString('latin1') ?? '', words: rest };
  }
}

function badLine(data: Buffer, from: number): Parsed {
  const lf = data.indexOf(LF, from);
  return lf < 0 ? { kind: 'more' } : { kind: 'bad', consumed: lf + 1 };
}

export class ScriptedImapServer {
  readonly logins: RecordedLogin[] = [];
  /** Every byte every client sent, per connection. */
  readonly received: Buffer[] = [];
  private readonly sockets = new Set<Socket>();

  private constructor(
    private readonly server: Server,
    readonly port: number,
  ) {}

  static async start(options: ScriptedImapOptions = {}): Promise<ScriptedImapServer> {
    let instance: ScriptedImapServer | undefined;
    const server = createServer((socket) => instance!.serve(socket, options));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const address = server.address();
    instance = new ScriptedImapServer(server, typeof address === 'object' && address ? address.port : 0);
    return instance;
  }

  get connections(): number {
    return this.received.length;
  }

  async close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private serve(socket: Socket, options: ScriptedImapOptions): void {
    this.sockets.add(socket);
    socket.on('close', () => this.sockets.delete(socket));
    socket.on('error', () => {});
    const index = this.received.push(Buffer.alloc(0)) - 1;
    let pending = Buffer.alloc(0);
    let acknowledged = -1;
    let done = false;
    const greeting = options.greeting === undefined ? '* OK [CAPABILITY IMAP4rev1 LITERAL+] scripted server ready' : options.greeting;
    if (greeting !== null) socket.write(`${greeting}\r\n`);
    if (options.closeAfterGreeting) {
      socket.end();
      return;
    }
    socket.on('data', (chunk: Buffer) => {
      this.received[index] = Buffer.concat([this.received[index]!, chunk]);
      pending = Buffer.concat([pending, chunk]);
      while (!done) {
        const parsed = parseCommand(pending, (offset) => {
          if (offset !== acknowledged) socket.write('+ go ahead\r\n');
          acknowledged = offset;
        });
        if (parsed.kind === 'more') return;
        pending = pending.subarray(parsed.consumed);
        acknowledged = -1;
        if (parsed.kind === 'bad') {
          socket.write('* BAD parse error\r\n');
          continue;
        }
        done = this.answer(socket, parsed.tag, parsed.words, options);
      }
    });
  }

  /** Answers one command; true when the connection is finished with. */
  private answer(socket: Socket, tag: string, words: Buffer[], options: ScriptedImapOptions): boolean {
    const command = words[0]?.toString('latin1').toUpperCase();
    if (command === 'LOGOUT') {
      socket.end(`* BYE logging out\r\n${tag} OK LOGOUT completed\r\n`);
      return true;
    }
    if (command === 'STARTTLS') {
      const lines = options.onStartTls?.() ?? [`${tag} BAD no TLS here`];
      socket.write(lines.map((line) => `${line.replace('$TAG', tag)}\r\n`).join(''));
      return false;
    }
    if (command !== 'LOGIN' || words.length !== 3) {
      socket.write(`${tag} BAD unexpected command\r\n`);
      return false;
    }
    const login = words[1]!;
    const password = words[2]!;
    this.logins.push({ login, password });
    const answer = options.onLogin
      ? options.onLogin(login, password)
      : options.accept && login.equals(Buffer.from(options.accept.login)) && password.equals(Buffer.from(options.accept.password))
        ? [`${tag} OK logged in`]
        : [`${tag} NO [AUTHENTICATIONFAILED] wrong`];
    if (answer === 'close') {
      socket.end();
      return true;
    }
    if (answer === 'stall') return true;
    socket.write(answer.map((line) => `${line.replace('$TAG', tag)}\r\n`).join(''));
    return false;
  }
}
