/**
 * A real MIT KDC (Debian's krb5-kdc) for one test file: a scratch realm with its own
 * kdc.conf, krb5.conf and database in a temporary directory, principals and keytabs made
 * with kadmin.local, and krb5kdc in the foreground on a loopback port. Nothing outside the
 * directory is read or written: every tool and the daemons under test get KRB5_CONFIG,
 * KRB5_KDC_PROFILE and KRB5RCACHEDIR pointing into it (`env`).
 * KDCs that misbehave are in fake-kdcs.ts.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tcpAccepts } from './tcp-probe.js';

/** kdb5_util and kadmin.local take well under a second; this is only a backstop. */
const TOOL_DEADLINE_MS = 30_000;
/** How long krb5kdc may take to listen. */
const START_DEADLINE_MS = 15_000;
const STOP_DEADLINE_MS = 10_000;
const KDC_BINARY = '/usr/sbin/krb5kdc';
const KDB5_UTIL = '/usr/sbin/kdb5_util';
const KADMIN_LOCAL = '/usr/sbin/kadmin.local';

export interface KdcOptions {
  readonly realm: string;
  /** UDP and TCP port of the KDC on 127.0.0.1. */
  readonly port: number;
  /** Other realms named in krb5.conf: realm → `kdc =` value (host:port). */
  readonly otherRealms?: Readonly<Record<string, string>>;
}

export class MitKdc {
  readonly directory: string;
  readonly env: NodeJS.ProcessEnv;
  private child: ChildProcess | undefined;
  private exited: Promise<void> | undefined;

  private constructor(readonly options: KdcOptions) {
    this.directory = mkdtempSync('/tmp/sts-kdc-');
    const dir = this.directory;
    const { realm, port } = options;
    writeFileSync(
      join(dir, 'kdc.conf'),
      [
        '[kdcdefaults]',
        ` kdc_ports = ${port}`,
        ` kdc_tcp_ports = ${port}`,
        '[realms]',
        ` ${realm} = {`,
        `  database_name = ${dir}/principal`,
        `  key_stash_file = ${dir}/stash`,
        `  acl_file = ${dir}/kadm5.acl`,
        `  kdc_ports = ${port}`,
        `  kdc_tcp_ports = ${port}`,
        '  max_life = 1h',
        ' }',
        '[logging]',
        ` kdc = FILE:${dir}/kdc.log`,
        ` admin_server = FILE:${dir}/kadmin.log`,
        '',
      ].join('\n'),
    );
    const realms = { [realm]: `127.0.0.1:${port}`, ...(options.otherRealms ?? {}) };
    writeFileSync(
      join(dir, 'krb5.conf'),
      [
        '[libdefaults]',
        ` default_realm = ${realm}`,
        ' dns_lookup_kdc = false',
        ' dns_lookup_realm = false',
        // Service principals use this host's name as gethostname() gives it, not DNS's.
        ' dns_canonicalize_hostname = false',
        ' rdns = false',
        ` default_keytab_name = FILE:${dir}/default.keytab`,
        '[realms]',
        ...Object.entries(realms).map(([name, kdc]) => ` ${name} = {\n  kdc = ${kdc}\n }`),
        '',
      ].join('\n'),
    );
    this.env = {
      ...process.env,
      KRB5_CONFIG: join(dir, 'krb5.conf'),
      KRB5_KDC_PROFILE: join(dir, 'kdc.conf'),
      KRB5RCACHEDIR: dir,
    };
  }

  /** Creates the realm's database and starts krb5kdc; resolves once it accepts TCP. */
  static async start(options: KdcOptions): Promise<MitKdc> {
    const kdc = new MitKdc(options);
    try {
      kdc.run(KDB5_UTIL, ['create', '-s', '-r', options.realm, '-P', 'scratch-master-key']);
      kdc.child = spawn(KDC_BINARY, ['-n', '-r', options.realm], { env: kdc.env, stdio: ['ignore', 'ignore', 'pipe'] });
      let stderr = '';
      kdc.child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
      kdc.exited = new Promise((resolve) => kdc.child!.once('exit', () => resolve()));
      const deadline = Date.now() + START_DEADLINE_MS;
      while (!(await tcpAccepts(options.port))) {
        if (kdc.child.exitCode !== null) throw new Error(`krb5kdc exited: ${stderr}`);
        if (Date.now() > deadline) throw new Error(`krb5kdc not listening within ${START_DEADLINE_MS} ms: ${stderr}`);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      return kdc;
    } catch (error) {
      await kdc.stop();
      throw error;
    }
  }

  /** Path of a file in the scratch directory. */
  path(name: string): string {
    return join(this.directory, name);
  }

  /** A principal with a password (`name` without realm: the scratch realm). */
  addPrincipal(name: string, password: string): void {
    this.kadmin(`addprinc -pw ${password} ${name}`);
  }

  /** A service principal with a random key. */
  addServicePrincipal(name: string): void {
    this.kadmin(`addprinc -randkey ${name}`);
  }

  /** Writes the current keys of `principals` to a keytab file. */
  exportKeytab(file: string, principals: readonly string[]): void {
    for (const principal of principals) this.kadmin(`ktadd -k ${file} ${principal}`);
  }

  /** Stops krb5kdc and removes the scratch directory. */
  async stop(): Promise<void> {
    if (this.child && this.child.exitCode === null && this.child.signalCode === null) {
      this.child.kill('SIGTERM');
      const timer = setTimeout(() => this.child!.kill('SIGKILL'), STOP_DEADLINE_MS);
      await this.exited;
      clearTimeout(timer);
    }
    rmSync(this.directory, { recursive: true, force: true });
  }

  private kadmin(query: string): void {
    this.run(KADMIN_LOCAL, ['-r', this.options.realm, '-q', query]);
  }

  private run(command: string, args: string[]): void {
    const result = spawnSync(command, args, { env: this.env, encoding: 'utf8', timeout: TOOL_DEADLINE_MS });
    // kadmin.local exits 0 even when a query fails: its complaints go to stderr.
    if (result.status !== 0 || /error|cannot|failed|not found/i.test(result.stderr)) {
      throw new Error(`${command} ${args[0]} failed (${result.status}): ${result.stderr}`);
    }
  }
}
