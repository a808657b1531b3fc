/**
 * A private PAM world for one test file through Debian's pam_wrapper: service files and a
 * pam_matrix password database in a temp dir, nothing in /etc touched. `env` is what the
 * daemon under test needs (koffi loads libpam_wrapper.so through SASLAUTHD_PAM_LIBRARY,
 * the C daemon gets it through LD_PRELOAD).
 */
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PAM_MATRIX_MODULE, PAM_PERMIT_MODULE, PAM_WRAPPER_LIBRARY } from './paths.js';

export interface PamUser {
  readonly name: string | Buffer;
  readonly password: string | Buffer;
  /** pam_matrix's account stack admits the user only for this service. */
  readonly service: string;
}

export class PamFixture {
  readonly directory: string;
  readonly serviceDirectory: string;
  readonly passdb: string;

  constructor(users: readonly PamUser[], services: Record<string, string> = {}) {
    this.directory = mkdtempSync(join(tmpdir(), 'sts-pam-'));
    this.serviceDirectory = join(this.directory, 'services');
    mkdirSync(this.serviceDirectory);
    this.passdb = join(this.directory, 'passdb');
    this.setUsers(users);
    const standard = 'auth required @MATRIX@\naccount required @MATRIX@\n';
    for (const [name, text] of Object.entries({ imap: standard, smtp: standard, ...services })) this.addService(name, text);
  }

  /**
   * Writes a PAM service file; `@MATRIX@` stands for pam_matrix with this fixture's passdb,
   * `@PERMIT@` for pam_permit (an account stack that admits everyone: pam_matrix's account
   * check admits a user only for the service of the user's first passdb line).
   */
  addService(name: string, text: string): void {
    const expanded = text.replaceAll('@MATRIX@', `${PAM_MATRIX_MODULE} passdb=${this.passdb}`).replaceAll('@PERMIT@', PAM_PERMIT_MODULE);
    writeFileSync(join(this.serviceDirectory, name), expanded);
  }

  /** Rewrites the password database (pam_matrix reads it on every request). */
  setUsers(users: readonly PamUser[]): void {
    const lines = users.map((user) =>
      Buffer.concat([Buffer.from(user.name), Buffer.from(':'), Buffer.from(user.password), Buffer.from(`:${user.service}\n`)]),
    );
    writeFileSync(this.passdb, Buffer.concat(lines));
  }

  /** Environment for our daemon (koffi loads pam_wrapper explicitly). */
  get env(): NodeJS.ProcessEnv {
    return {
      ...process.env,
      SASLAUTHD_PAM_LIBRARY: PAM_WRAPPER_LIBRARY,
      PAM_WRAPPER: '1',
      PAM_WRAPPER_SERVICE_DIR: this.serviceDirectory,
    };
  }

  /** Environment for the C daemon (pam_wrapper by LD_PRELOAD). */
  get cEnv(): NodeJS.ProcessEnv {
    return {
      ...process.env,
      LD_PRELOAD: PAM_WRAPPER_LIBRARY,
      PAM_WRAPPER: '1',
      PAM_WRAPPER_SERVICE_DIR: this.serviceDirectory,
    };
  }

  dispose(): void {
    rmSync(this.directory, { recursive: true, force: true });
  }
}
