/**
 * A Unix datagram socket that records what it receives — what systemd's $NOTIFY_SOCKET and
 * syslog's /dev/log are. Node has no AF_UNIX datagram sockets, so the listener is a small
 * python3 process printing each datagram as a JSON line; it prints "ready" once bound.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createInterface } from 'node:readline';

const LISTENER = `
import json, os, socket, sys
path = sys.argv[1]
sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
sock.bind(path)
os.chmod(path, 0o666)
print("ready", flush=True)
while True:
    data = sock.recv(65536)
    print(json.dumps(data.decode("latin-1")), flush=True)
`;

export class DatagramListener {
  /** Every datagram received so far, in order (decoded as latin1). */
  readonly messages: string[] = [];
  private readonly child: ChildProcess;
  private waiters: (() => void)[] = [];

  private constructor(
    readonly path: string,
    prefix: readonly string[],
  ) {
    const [command, ...args] = [...prefix, 'python3', '-c', LISTENER, path];
    this.child = spawn(command!, args, { stdio: ['ignore', 'pipe', 'inherit'] });
    createInterface({ input: this.child.stdout! }).on('line', (line) => {
      this.messages.push(line === 'ready' ? '\u0000ready' : (JSON.parse(line) as string));
      for (const waiter of this.waiters.splice(0)) waiter();
    });
  }

  /**
   * Binds a listener at `path` (which must not exist) and resolves once it is bound.
   * `prefix` runs the listener through another command (e.g. nsenter into a namespace).
   */
  static async bind(path: string, prefix: readonly string[] = []): Promise<DatagramListener> {
    const listener = new DatagramListener(path, prefix);
    await listener.waitFor((message) => message === '\u0000ready', 10_000);
    listener.messages.length = 0;
    if (prefix.length === 0 && !existsSync(path)) throw new Error(`listener did not bind ${path}`);
    return listener;
  }

  /** Resolves with the first message (past or future) matching `match`. */
  async waitFor(match: (message: string) => boolean, timeoutMs = 10_000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.messages.find(match);
      if (found !== undefined) return found;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no matching datagram within ${timeoutMs} ms; got ${JSON.stringify(this.messages)}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  close(): void {
    this.child.kill('SIGTERM');
  }
}
