/**
 * Which certificate authorities a network mechanism trusts, and the TLS client handshake
 * with certificate and name verification always on.
 *
 * Trust: a CA file named in the mechanism's settings (PEM, one or more certificates), else
 * the system's bundle (Debian's /etc/ssl/certs/ca-certificates.crt, kept by
 * update-ca-certificates), else Node's own Mozilla bundle when the system has none.
 */
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { isIP, type Socket } from 'node:net';
import { checkServerIdentity, connect as tlsConnect, type PeerCertificate, type TLSSocket } from 'node:tls';

/** Debian's (and most distributions') bundle of the system's trusted CAs. */
export const SYSTEM_CA_BUNDLE = '/etc/ssl/certs/ca-certificates.crt';

/** A CA file is a few hundred KB at most (the whole system bundle is ~200 KB). */
const MAX_CA_FILE_BYTES = 4 * 1024 * 1024;

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/**
 * The CA certificates (PEM text) to trust: those of `caFile` if given — every certificate in
 * it must parse, and there must be one — else the system bundle, else undefined (Node's
 * bundled roots). Throws an Error naming the file when it cannot be used.
 */
export function loadTrustedCas(caFile: string | undefined): string | undefined {
  if (caFile === undefined) {
    try {
      return readFileSync(SYSTEM_CA_BUNDLE, 'latin1');
    } catch {
      return undefined;
    }
  }
  let text: string;
  try {
    const bytes = readFileSync(caFile);
    if (bytes.length > MAX_CA_FILE_BYTES) throw new Error(`larger than ${MAX_CA_FILE_BYTES} bytes`);
    text = bytes.toString('latin1');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new Error(`CA file ${caFile} cannot be read (${code ?? (error as Error).message})`);
  }
  const certificates = text.match(PEM_CERTIFICATE) ?? [];
  if (certificates.length === 0) throw new Error(`CA file ${caFile} holds no PEM certificate`);
  for (const pem of certificates) {
    try {
      new X509Certificate(pem);
    } catch (error) {
      throw new Error(`CA file ${caFile} holds a certificate that does not parse (${(error as Error).message})`);
    }
  }
  return certificates.join('\n');
}

/** True for names and addresses that stay on this machine (no password crosses a network). */
export function isLoopbackHost(host: string): boolean {
  const lower = host.toLowerCase();
  if (lower === 'localhost' || lower.endsWith('.localhost')) return true;
  if (isIP(lower) === 4) return lower.startsWith('127.');
  if (isIP(lower) === 6) return lower === '::1' || /^::ffff:127\./.test(lower) || /^0*:(0*:){6}0*1$/.test(lower);
  return false;
}

export interface TlsClientSettings {
  /** The configured host name or address: what the certificate must name. */
  readonly host: string;
  /** PEM CA certificates to trust; undefined: Node's bundled roots. */
  readonly ca: string | undefined;
  readonly timeoutMs: number;
}

export class TlsHandshakeError extends Error {}

/**
 * Runs a TLS client handshake over a connected socket (IMAPS at once, or after STARTTLS)
 * and resolves with the secure socket once the peer's chain and name are verified.
 * Rejects with a TlsHandshakeError saying why (the socket is destroyed then).
 */
export function startTls(socket: Socket, settings: TlsClientSettings): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    const secure = tlsConnect({
      socket,
      // SNI carries names only; an address is checked against the certificate's IP entries.
      ...(isIP(settings.host) === 0 ? { servername: settings.host } : {}),
      ...(settings.ca === undefined ? {} : { ca: settings.ca }),
      rejectUnauthorized: true,
      checkServerIdentity: (_name: string, certificate: PeerCertificate) => checkServerIdentity(settings.host, certificate),
    });
    const fail = (message: string): void => {
      clearTimeout(timer);
      secure.destroy();
      socket.destroy();
      reject(new TlsHandshakeError(message));
    };
    const timer = setTimeout(() => fail(`TLS handshake timed out after ${settings.timeoutMs} ms`), settings.timeoutMs);
    const onError = (error: Error): void => fail(error.message);
    secure.once('secureConnect', () => {
      clearTimeout(timer);
      secure.removeListener('error', onError);
      // The caller's reader listens for errors from here on; never an unhandled 'error'.
      secure.on('error', () => {});
      resolve(secure);
    });
    secure.once('error', onError);
  });
}
