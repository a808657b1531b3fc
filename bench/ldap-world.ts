/**
 * The directory both daemons are benchmarked against for `-a ldap`: one private slapd (the
 * tests' scratch slapd.conf + mdb + LDIF, test/helpers/slapd.ts) on a loopback port, and one
 * saslauthd.conf both daemons read with `-O` (ldap_auth_method bind: a search as the service
 * account, then a bind as the user, per request).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Slapd } from '../test/helpers/slapd.js';
import { ALICE, SERVICE_PASSWORD, directoryLdif, writeLdapConfig } from '../test/helpers/ldap-fixture.js';
import type { MechanismWorld } from './local-worlds.js';

/** The bench's slapd port (the ldap part of the project's 21000-21999 range). */
const BENCH_LDAP_PORT = 21_900;

export class LdapWorld implements MechanismWorld {
  readonly mechanism = 'ldap';
  readonly login = ALICE.login;
  readonly password = ALICE.password;
  readonly service = 'imap';
  readonly wrap = undefined;
  get args(): readonly string[] {
    return ['-O', this.configPath];
  }

  private constructor(
    private readonly slapd: Slapd,
    private readonly directory: string,
    /** The `-O` file of both daemons. */
    readonly configPath: string,
  ) {}

  /** True when Debian's slapd is installed (apt-get install slapd). */
  static available(): boolean {
    return spawnSync('slapd', ['-VV'], { encoding: 'utf8' }).error === undefined;
  }

  static async start(): Promise<LdapWorld> {
    // No scheme users: slappasswd per scheme is test material, not load.
    const slapd = await Slapd.start({ ldapPort: BENCH_LDAP_PORT, ldif: directoryLdif([]), servicePassword: SERVICE_PASSWORD });
    const directory = mkdtempSync(join(tmpdir(), 'sts-bench-ldap-'));
    const configPath = writeLdapConfig(directory, 'saslauthd.conf', { ldap_servers: `ldap://127.0.0.1:${BENCH_LDAP_PORT}/`, ldap_auth_method: 'bind' });
    return new LdapWorld(slapd, directory, configPath);
  }

  async dispose(): Promise<void> {
    await this.slapd.dispose();
    rmSync(this.directory, { recursive: true, force: true });
  }
}
