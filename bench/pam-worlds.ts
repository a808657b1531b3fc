/**
 * The PAM configurations both daemons are benchmarked against, identical for both:
 *   - pam_matrix through pam_wrapper: a module that costs almost nothing, so the daemon's own
 *     overhead is what is measured. Ours loads libpam_wrapper.so through SASLAUTHD_PAM_LIBRARY
 *     (koffi is not reached by LD_PRELOAD); the C daemon gets it by LD_PRELOAD.
 *   - the real pam_unix stack (root only): a throwaway user, and a scratch PAM directory
 *     bind-mounted over /etc/pam.d in a private mount namespace of each daemon, so nothing on
 *     the machine changes. The user is removed at the end.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { DaemonKind } from './daemons.js';

const PAM_WRAPPER_LIBRARY = '/usr/lib/x86_64-linux-gnu/libpam_wrapper.so';
const PAM_MATRIX_MODULE = '/usr/lib/x86_64-linux-gnu/pam_wrapper/pam_matrix.so';

export const MATRIX_USER = { login: 'benchuser', password: 'bench-secret', service: 'imap' } as const;
/** The many-users scenario: MANY_USERS_PREFIX<i> with password MANY_PASSWORD_PREFIX<i>. */
export const MANY_USERS = 1000;
export const MANY_USERS_PREFIX = 'u';
export const MANY_PASSWORD_PREFIX = 'pw';

/** Environment without what would make one daemon load the other's PAM. */
function baseEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  delete env['LD_PRELOAD'];
  delete env['SASLAUTHD_PAM_LIBRARY'];
  delete env['NODE_OPTIONS'];
  return env;
}

export class MatrixWorld {
  readonly directory = mkdtempSync(join(tmpdir(), 'sts-bench-pam-'));
  private readonly services = join(this.directory, 'services');

  constructor() {
    mkdirSync(this.services);
    const passdb = join(this.directory, 'passdb');
    const lines = [`${MATRIX_USER.login}:${MATRIX_USER.password}:${MATRIX_USER.service}`];
    for (let i = 0; i < MANY_USERS; i++) lines.push(`${MANY_USERS_PREFIX}${i}:${MANY_PASSWORD_PREFIX}${i}:imap`);
    writeFileSync(passdb, `${lines.join('\n')}\n`);
    const stack = `auth required ${PAM_MATRIX_MODULE} passdb=${passdb}\naccount required ${PAM_MATRIX_MODULE} passdb=${passdb}\n`;
    writeFileSync(join(this.services, 'imap'), stack);
  }

  env(kind: DaemonKind): NodeJS.ProcessEnv {
    const wrapper = { PAM_WRAPPER: '1', PAM_WRAPPER_SERVICE_DIR: this.services };
    return kind === 'ours'
      ? { ...baseEnv(), ...wrapper, SASLAUTHD_PAM_LIBRARY: PAM_WRAPPER_LIBRARY }
      : { ...baseEnv(), ...wrapper, LD_PRELOAD: PAM_WRAPPER_LIBRARY };
  }

  dispose(): void {
    rmSync(this.directory, { recursive: true, force: true });
  }
}

export class UnixWorld {
  readonly user = `stsb${process.pid}`;
  /** A second account: the one that is not under attack in the guessing scenarios. */
  readonly otherUser = `stsc${process.pid}`;
  readonly password = 'Bench-Unix-Pass-7';
  /** pam_unix with its 2 s failure delay, as Debian's common-auth has it. */
  readonly service = 'sts-bench';
  /** pam_unix `nodelay`: the hash is the whole cost of a wrong password. */
  readonly nodelayService = 'sts-bench-nodelay';
  private readonly pamDirectory = mkdtempSync(join(tmpdir(), 'sts-bench-pamd-'));
  private readonly created: string[] = [];

  constructor() {
    writeFileSync(join(this.pamDirectory, this.service), 'auth required pam_unix.so\naccount required pam_unix.so\n');
    writeFileSync(join(this.pamDirectory, this.nodelayService), 'auth required pam_unix.so nodelay\naccount required pam_unix.so\n');
    writeFileSync(join(this.pamDirectory, 'other'), 'auth required pam_deny.so\naccount required pam_deny.so\n');
    for (const user of [this.user, this.otherUser]) {
      execFileSync('useradd', ['--no-create-home', '--shell', '/usr/sbin/nologin', user]);
      this.created.push(user);
      execFileSync('chpasswd', ['-c', 'YESCRYPT'], { input: `${user}:${this.password}\n` });
    }
  }

  static available(): boolean {
    return process.getuid?.() === 0;
  }

  env(): NodeJS.ProcessEnv {
    return baseEnv();
  }

  /** Runs the daemon with the scratch PAM directory over /etc/pam.d, in its own mount namespace. */
  get wrap(): string[] {
    return ['unshare', '-m', '--propagation', 'private', 'sh', '-c', 'mount --bind "$0" /etc/pam.d && exec "$@"', this.pamDirectory];
  }

  dispose(): void {
    for (const user of this.created.splice(0)) execFileSync('userdel', [user]);
    rmSync(this.pamDirectory, { recursive: true, force: true });
  }
}
