/**
 * A throwaway certificate authority made with openssl for TLS tests: a CA certificate and a
 * server certificate it signed for the names and addresses given (subjectAltName), all in a
 * directory the caller removes. A second, unrelated CA is one more call.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface ThrowawayCa {
  /** PEM of the CA certificate: what a client trusts. */
  readonly caFile: string;
  readonly serverCert: string;
  readonly serverKey: string;
}

function openssl(args: string[]): void {
  execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'], timeout: 60_000 });
}

/** Makes `<directory>/<name>-ca.pem` and a server cert/key for `dnsNames` and `ipAddresses`. */
export function makeThrowawayCa(directory: string, name: string, dnsNames: readonly string[], ipAddresses: readonly string[]): ThrowawayCa {
  mkdirSync(directory, { recursive: true });
  const file = (suffix: string): string => join(directory, `${name}-${suffix}`);
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  openssl(['req', '-x509', ...ec, '-days', '2', '-subj', `/CN=${name} test CA`, '-keyout', file('ca.key'), '-out', file('ca.pem'),
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
  openssl(['req', ...ec, '-subj', `/CN=${dnsNames[0] ?? ipAddresses[0] ?? 'server'}`, '-keyout', file('server.key'), '-out', file('server.csr')]);
  const altNames = [...dnsNames.map((dns) => `DNS:${dns}`), ...ipAddresses.map((ip) => `IP:${ip}`)].join(',');
  writeFileSync(file('server.ext'), `subjectAltName=${altNames}\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n`);
  openssl(['x509', '-req', '-in', file('server.csr'), '-CA', file('ca.pem'), '-CAkey', file('ca.key'), '-CAcreateserial',
    '-days', '2', '-extfile', file('server.ext'), '-out', file('server.pem')]);
  return { caFile: file('ca.pem'), serverCert: file('server.pem'), serverKey: file('server.key') };
}
