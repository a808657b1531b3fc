/**
 * A private Debian slapd for a test: scratch slapd.conf (`slapd -f`), an mdb database in a
 * temporary directory loaded with slapadd from LDIF, listening on loopback ports the test
 * names (ldap://, ldaps:// with a throwaway CA) and on an ldapi:// socket in the directory.
 * Started in the foreground (`-d 0`), stopped by its PID only; stop/continue (SIGSTOP,
 * SIGCONT) and restart on the same data for the outage tests.
 */
import { tcpAccepts } from './tcp-probe.js';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { Attribute, Change, Client } from 'ldapts';
import { join } from 'node:path';
import { hostname } from 'node:os';

/** slapd answers within this after start on this machine (mdb open + listeners). */
const START_DEADLINE_MS = 15_000;
const SCHEMA_DIR = '/etc/ldap/schema';
const MODULE_DIR = '/usr/lib/ldap';
export const SUFFIX = 'dc=example,dc=org';
export const SERVICE_DN = `cn=reader,${SUFFIX}`;
/** The database's rootdn, for changes a test makes while the daemons run. */
const ROOT_DN = `cn=admin,${SUFFIX}`;
const ROOT_PASSWORD = 'Root-of-the-test-db-1';

export interface TestCa {
  readonly directory: string;
  /** The CA that signed the server certificate. */
  readonly caFile: string;
  /** Another CA, which signed nothing the server has. */
  readonly otherCaFile: string;
  readonly serverCert: string;
  readonly serverKey: string;
  readonly clientCert: string;
  readonly clientKey: string;
}

function openssl(args: string[], cwd: string): void {
  const result = spawnSync('openssl', args, { cwd, encoding: 'utf8' });
  if (result.status !== 0) throw new Error(`openssl ${args.join(' ')}: ${result.stderr}`);
}

/** A CA, a server certificate for `localhost` and this host's name (no IP), a client certificate, and an unrelated CA. */
export function makeTestCa(): TestCa {
  const directory = mkdtempSync('/tmp/ldap-ca-');
  const ca = (name: string): void => {
    openssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.pem`, '-days', '2', '-subj', `/CN=${name}`], directory);
  };
  ca('test-ca');
  ca('other-ca');
  const leaf = (name: string, extensions: string): void => {
    writeFileSync(join(directory, `${name}.ext`), extensions);
    openssl(['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`], directory);
    openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', 'test-ca.pem', '-CAkey', 'test-ca.key', '-CAcreateserial', '-out', `${name}.pem`, '-days', '2', '-extfile', `${name}.ext`], directory);
  };
  // libldap names a loopback peer by the machine's hostname (ldap_host_connected_to), so the
  // C daemon checks that name; ours checks the URI's `localhost`. No IP address: an
  // ldaps://127.0.0.1 URI is the "wrong name" case.
  leaf('localhost', `subjectAltName=DNS:localhost,DNS:${hostname()}\nextendedKeyUsage=serverAuth\n`);
  leaf('client', 'extendedKeyUsage=clientAuth\n');
  return {
    directory,
    caFile: join(directory, 'test-ca.pem'),
    otherCaFile: join(directory, 'other-ca.pem'),
    serverCert: join(directory, 'localhost.pem'),
    serverKey: join(directory, 'localhost.key'),
    clientCert: join(directory, 'client.pem'),
    clientKey: join(directory, 'client.key'),
  };
}

/** Password hashes as slapd stores them. SHA-2 forms as contrib pw-sha2 writes them. */
export const hash = {
  digest(scheme: string, algorithm: string, password: string, salt?: Buffer): string {
    const digest = createHash(algorithm).update(password, 'utf8').update(salt ?? Buffer.alloc(0)).digest();
    return `{${scheme}}${Buffer.concat([digest, salt ?? Buffer.alloc(0)]).toString('base64')}`;
  },
  salt(): Buffer {
    return randomBytes(8);
  },
  /** Through slappasswd itself (with the pw-sha2 module for the SHA-2 schemes). */
  slappasswd(scheme: string, password: string, cryptFormat?: string): string {
    const format = cryptFormat === undefined ? [] : ['-c', cryptFormat];
    const result = spawnSync('slappasswd', ['-o', `module-path=${MODULE_DIR}`, '-o', 'module-load=pw-sha2', '-h', scheme, ...format, '-s', password], { encoding: 'utf8' });
    if (result.status !== 0) throw new Error(`slappasswd ${scheme}: ${result.stderr}`);
    return result.stdout.trim();
  },
};

export interface SlapdOptions {
  readonly ldapPort: number;
  readonly ldapsPort?: number;
  readonly ca?: TestCa;
  /** LDIF entries below the suffix (the suffix entry itself is added here). */
  readonly ldif: string;
  readonly servicePassword: string;
}

export class Slapd {
  readonly directory: string;
  readonly ldapiPath: string;
  private child: ChildProcess | undefined;
  private output = '';

  private constructor(private readonly options: SlapdOptions) {
    this.directory = mkdtempSync('/tmp/ldap-slapd-');
    this.ldapiPath = join(this.directory, 'ldapi');
  }

  get ldapiUri(): string {
    return `ldapi://${encodeURIComponent(this.ldapiPath)}/`;
  }

  get pid(): number {
    return this.child!.pid!;
  }

  get logs(): string {
    return this.output;
  }

  static async start(options: SlapdOptions): Promise<Slapd> {
    const slapd = new Slapd(options);
    try {
      slapd.writeConfig();
      slapd.load();
      await slapd.run();
    } catch (error) {
      slapd.dispose();
      throw error;
    }
    return slapd;
  }

  private get configPath(): string {
    return join(this.directory, 'slapd.conf');
  }

  private writeConfig(): void {
    const { ca, servicePassword } = this.options;
    mkdirSync(join(this.directory, 'db'));
    const lines = [
      ...['core', 'cosine', 'inetorgperson', 'nis'].map((schema) => `include ${SCHEMA_DIR}/${schema}.schema`),
      `modulepath ${MODULE_DIR}`,
      'moduleload back_mdb',
      'moduleload pw-sha2',
      // SASL PLAIN binds (ldap_use_sasl): Cyrus SASL reads userPassword through slapd's auxprop
      // (cleartext values only) and the authentication id maps to a uid under ou=people.
      'sasl-auxprops slapd',
      `authz-regexp "uid=([^,]*)(,cn=[^,]*)?,cn=plain,cn=auth" "uid=$1,ou=people,${SUFFIX}"`,
      `pidfile ${join(this.directory, 'slapd.pid')}`,
      `argsfile ${join(this.directory, 'slapd.args')}`,
      ...(ca ? [`TLSCACertificateFile ${ca.caFile}`, `TLSCertificateFile ${ca.serverCert}`, `TLSCertificateKeyFile ${ca.serverKey}`, 'TLSVerifyClient allow'] : []),
      'database mdb',
      `suffix "${SUFFIX}"`,
      `rootdn "${ROOT_DN}"`,
      `rootpw ${hash.digest('SSHA', 'sha1', ROOT_PASSWORD, hash.salt())}`,
      `directory ${join(this.directory, 'db')}`,
      'maxsize 104857600',
      'index uid,mail,cn eq',
      'access to attrs=userPassword',
      `  by dn.exact="${SERVICE_DN}" read`,
      '  by anonymous auth',
      '  by self read',
      '  by * none',
      'access to *',
      '  by * read',
    ];
    writeFileSync(this.configPath, `${lines.join('\n')}\n`);
    const base = [
      `dn: ${SUFFIX}`, 'objectClass: dcObject', 'objectClass: organization', 'dc: example', 'o: Example', '',
      `dn: ${SERVICE_DN}`, 'objectClass: organizationalRole', 'objectClass: simpleSecurityObject', 'cn: reader',
      `userPassword: ${hash.digest('SSHA', 'sha1', servicePassword, hash.salt())}`, '',
    ].join('\n');
    writeFileSync(join(this.directory, 'data.ldif'), `${base}\n${this.options.ldif}\n`);
  }

  private load(): void {
    const result = spawnSync('slapadd', ['-f', this.configPath, '-l', join(this.directory, 'data.ldif')], { encoding: 'utf8' });
    if (result.status !== 0) throw new Error(`slapadd failed: ${result.stderr}`);
  }

  private urls(): string {
    const { ldapPort, ldapsPort } = this.options;
    return [`ldap://127.0.0.1:${ldapPort}/`, ...(ldapsPort ? [`ldaps://127.0.0.1:${ldapsPort}/`] : []), this.ldapiUri].join(' ');
  }

  /** Starts slapd in the foreground (`-d`, level from $SLAPD_DEBUG for a failing run, else 0) and waits until its ldap:// port accepts. */
  async run(): Promise<void> {
    // A slapd left over from another run would answer instead of ours: refuse to go on.
    if (await tcpAccepts(this.options.ldapPort)) throw new Error(`port ${this.options.ldapPort} is already taken`);
    this.child = spawn('slapd', ['-d', process.env['SLAPD_DEBUG'] ?? '0', '-f', this.configPath, '-h', this.urls()], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child.stdout!.on('data', (chunk: Buffer) => (this.output += chunk.toString('latin1')));
    this.child.stderr!.on('data', (chunk: Buffer) => (this.output += chunk.toString('latin1')));
    const started = Date.now();
    while (!(await tcpAccepts(this.options.ldapPort))) {
      if (this.child.exitCode !== null || Date.now() - started > START_DEADLINE_MS) {
        throw new Error(`slapd did not start: ${this.output}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  /** SIGTERM to our slapd by PID, and wait for it to exit. */
  async stop(): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGCONT');
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
    await exited;
    clearTimeout(timer);
  }

  /** Replaces an entry's userPassword, as the rootdn over ldap:// (a password change by the admin). */
  async setPassword(dn: string, stored: string): Promise<void> {
    const client = new Client({ url: `ldap://127.0.0.1:${this.options.ldapPort}`, timeout: 5_000, connectTimeout: 5_000 });
    try {
      await client.bind(ROOT_DN, ROOT_PASSWORD);
      await client.modify(dn, new Change({ operation: 'replace', modification: new Attribute({ type: 'userPassword', values: [stored] }) }));
    } finally {
      await client.unbind();
    }
  }

  pause(): void {
    this.child?.kill('SIGSTOP');
  }

  resume(): void {
    this.child?.kill('SIGCONT');
  }

  async dispose(): Promise<void> {
    await this.stop();
    rmSync(this.directory, { recursive: true, force: true });
  }
}

/** An LDIF line, base64 when the value is not plain printable ASCII (RFC 2849 SAFE-STRING). */
export function ldifLine(attribute: string, value: string): string {
  return /^[\x21-\x39\x3b\x3d-\x7e][\x20-\x7e]*$/.test(value) && !value.endsWith(' ')
    ? `${attribute}: ${value}`
    : `${attribute}:: ${Buffer.from(value, 'utf8').toString('base64')}`;
}

/** The DN of a person made by `person`. */
export function personDn(uid: string, ou: string): string {
  return `uid=${uid.replace(/([,+"\\<>;=])/g, '\\$1')},${ou}`;
}

/** One inetOrgPerson under `ou`. */
export function person(uid: string, ou: string, password: string, extra: string[] = []): string {
  return [
    ldifLine('dn', personDn(uid, ou)),
    'objectClass: inetOrgPerson',
    ldifLine('uid', uid),
    ldifLine('cn', uid),
    ldifLine('sn', uid),
    ...(password === '' ? [] : [ldifLine('userPassword', password)]),
    ...extra,
    '',
  ].join('\n');
}
