/**
 * The backends of the shadow and sasldb scenarios, identical for both daemons:
 *   - shadow (root only): a throwaway local user whose password chpasswd hashes with Debian's
 *     default method, yescrypt; the hash is the cost of every request. Removed at the end.
 *   - sasldb: a scratch database made by saslpasswd2, bind-mounted over /etc/sasldb2 in a
 *     private mount namespace of each daemon (the C daemon's path is compiled in), so the
 *     machine's /etc never changes. The user is in the hostname realm: the load sends no realm.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';

const DEFAULT_SASLDB = '/etc/sasldb2';

/** One backend of a benchmark scenario: the `-a` mechanism and how each daemon is run. */
export interface MechanismWorld {
  readonly mechanism: string;
  readonly login: string;
  readonly password: string;
  readonly service: string;
  /** Command prefix for both daemons, or none. */
  readonly wrap: readonly string[] | undefined;
  dispose(): void;
}

export class ShadowWorld implements MechanismWorld {
  readonly mechanism = 'shadow';
  readonly login = `stsh${process.pid}`;
  readonly password = 'Bench-Shadow-Pass-8';
  readonly service = 'imap';
  readonly wrap = undefined;
  private created = false;

  constructor() {
    execFileSync('useradd', ['--no-create-home', '--no-user-group', '--shell', '/usr/sbin/nologin', this.login]);
    this.created = true;
    execFileSync('chpasswd', [], { input: `${this.login}:${this.password}\n` });
  }

  static available(): boolean {
    return process.getuid?.() === 0;
  }

  dispose(): void {
    if (this.created) execFileSync('userdel', [this.login]);
    this.created = false;
  }
}

export class SasldbWorld implements MechanismWorld {
  readonly mechanism = 'sasldb';
  readonly login = 'benchuser';
  readonly password = 'Bench-Sasldb-Pass-9';
  readonly service = 'imap';
  private readonly directory = mkdtempSync(join(tmpdir(), 'sts-bench-sasldb-'));
  private readonly database = join(this.directory, 'sasldb2');

  constructor() {
    execFileSync('saslpasswd2', ['-f', this.database, '-p', '-c', '-u', hostname(), this.login], { input: this.password });
  }

  static available(): boolean {
    return process.getuid?.() === 0 && existsSync(DEFAULT_SASLDB);
  }

  get wrap(): string[] {
    return ['unshare', '-m', '--propagation', 'private', 'sh', '-c', `mount --bind "$0" ${DEFAULT_SASLDB} && exec "$@"`, this.database];
  }

  dispose(): void {
    rmSync(this.directory, { recursive: true, force: true });
  }
}
