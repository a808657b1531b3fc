/**
 * Debian's dovecot (dovecot-imapd) as a real IMAP server for tests: a scratch configuration
 * in a temporary directory (its own base_dir, state_dir and log), a passwd-file of test
 * users, plain IMAP and IMAPS listeners on loopback, TLS from a throwaway CA. Nothing of the
 * system's dovecot is used or touched; the server is stopped by its PID.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { tcpAccepts } from './tcp-probe.js';
import { makeThrowawayCa, type ThrowawayCa } from './throwaway-ca.js';

export const DOVECOT = '/usr/sbin/dovecot';
/** How long dovecot may take to listen. */
const START_DEADLINE_MS = 20_000;
const STOP_DEADLINE_MS = 10_000;

export interface DovecotUser {
  readonly name: string;
  /** Any bytes but NUL (stored as a SHA256 digest, so CR, LF and 8-bit bytes are fine). */
  readonly password: string | Buffer;
}

export interface DovecotOptions {
  readonly users: readonly DovecotUser[];
  readonly imapPort: number;
  readonly imapsPort: number;
  /** Names the server certificate carries besides localhost. */
  readonly extraNames?: readonly string[];
}

function uidOf(user: string): { uid: number; gid: number } {
  for (const line of readFileSync('/etc/passwd', 'utf8').split('\n')) {
    const fields = line.split(':');
    if (fields[0] === user) return { uid: Number(fields[2]), gid: Number(fields[3]) };
  }
  throw new Error(`no ${user} user: is dovecot-core installed?`);
}

export class Dovecot {
  readonly directory: string;
  readonly ca: ThrowawayCa;
  private child: ChildProcess | undefined;
  private exited: Promise<void> | undefined;

  private constructor(readonly options: DovecotOptions) {
    if (userInfo().uid !== 0) throw new Error('the dovecot fixture runs as root (dovecot drops to dovenull/dovecot)');
    this.directory = mkdtempSync('/tmp/sts-dovecot-');
    // The login and mail processes (dovenull, dovecot) must reach their sockets and homes.
    chmodSync(this.directory, 0o755);
    this.ca = makeThrowawayCa(join(this.directory, 'tls'), 'dovecot', ['localhost', ...(options.extraNames ?? [])], ['127.0.0.1']);
    const mailUser = uidOf('dovecot');
    const home = join(this.directory, 'home');
    mkdirSync(home);
    chownSync(home, mailUser.uid, mailUser.gid);
    const passwd = options.users
      .map((user) => `${user.name}:{SHA256}${createHash('sha256').update(user.password).digest('base64')}\n`)
      .join('');
    writeFileSync(join(this.directory, 'passwd'), passwd, { mode: 0o600 });
    // The auth worker reads it as default_internal_user.
    chownSync(join(this.directory, 'passwd'), mailUser.uid, mailUser.gid);
    writeFileSync(join(this.directory, 'dovecot.conf'), this.config(home, mailUser.uid));
  }

  /** Writes the configuration, starts dovecot in the foreground and waits for both ports. */
  static async start(options: DovecotOptions): Promise<Dovecot> {
    const dovecot = new Dovecot(options);
    try {
      await dovecot.run();
    } catch (error) {
      await dovecot.dispose();
      throw error;
    }
    return dovecot;
  }

  get log(): string {
    try {
      return readFileSync(join(this.directory, 'dovecot.log'), 'latin1');
    } catch {
      return '';
    }
  }

  private config(home: string, mailUid: number): string {
    const dir = this.directory;
    return [
      `base_dir = ${dir}/run`,
      `state_dir = ${dir}/state`,
      `instance_name = sts-dovecot-${this.options.imapPort}`,
      'protocols = imap',
      'listen = 127.0.0.1',
      'default_login_user = dovenull',
      'default_internal_user = dovecot',
      `log_path = ${dir}/dovecot.log`,
      // Test users are checked at once (the default delays a failure by 2 s).
      'auth_failure_delay = 0',
      'auth_verbose = yes',
      'disable_plaintext_auth = no',
      'auth_mechanisms = plain login',
      `first_valid_uid = ${mailUid}`,
      `last_valid_uid = ${mailUid}`,
      'ssl = yes',
      `ssl_cert = <${this.ca.serverCert}`,
      `ssl_key = <${this.ca.serverKey}`,
      'ssl_dh = </usr/share/dovecot/dh.pem',
      `mail_location = maildir:${home}/%u/Maildir`,
      'passdb {',
      '  driver = passwd-file',
      `  args = ${dir}/passwd`,
      '}',
      'userdb {',
      '  driver = static',
      `  args = uid=dovecot gid=dovecot home=${home}/%u`,
      '}',
      // No anvil penalty (a delay growing to 15 s) for repeated failures from one address:
      // the auth process cannot reach this socket, so the penalty is off.
      'service anvil {\n  unix_listener anvil-auth-penalty {\n    mode = 0\n  }\n}',
      'service imap-login {',
      `  inet_listener imap {\n    address = 127.0.0.1\n    port = ${this.options.imapPort}\n  }`,
      `  inet_listener imaps {\n    address = 127.0.0.1\n    port = ${this.options.imapsPort}\n    ssl = yes\n  }`,
      '}',
      '',
    ].join('\n');
  }

  private async run(): Promise<void> {
    const child = spawn(DOVECOT, ['-F', '-c', join(this.directory, 'dovecot.conf')], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    let output = '';
    child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    this.exited = new Promise((resolve) => child.on('exit', () => resolve()));
    const deadline = Date.now() + START_DEADLINE_MS;
    for (const port of [this.options.imapPort, this.options.imapsPort]) {
      while (!(await tcpAccepts(port))) {
        if (child.exitCode !== null || child.signalCode !== null) throw new Error(`dovecot exited:\n${output}\n${this.log}`);
        if (Date.now() > deadline) throw new Error(`dovecot did not listen on ${port}:\n${output}\n${this.log}`);
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
  }

  /** Stops dovecot (SIGTERM to its PID, SIGKILL after a deadline) and removes its directory. */
  async dispose(): Promise<void> {
    const child = this.child;
    if (child && child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const stopped = await Promise.race([
        this.exited!.then(() => true),
        new Promise<boolean>((resolve) => setTimeout(() => resolve(false), STOP_DEADLINE_MS)),
      ]);
      if (!stopped) {
        child.kill('SIGKILL');
        await this.exited;
      }
    }
    rmSync(this.directory, { recursive: true, force: true });
  }
}

