/**
 * A TCP connection to a backend named by host and port: the name is resolved for each
 * request (getaddrinfo through dns.lookup, so /etc/hosts and DNS changes apply without a
 * restart, and a DNS outage at boot does not stop the daemon — cyrus-sasl#493), then each
 * address is tried in turn, each connect with a timeout.
 */
import { lookup } from 'node:dns/promises';
import { connect, isIP, type Socket } from 'node:net';
import type { Deadline } from './deadline.js';

export interface ResolvedAddress {
  readonly address: string;
  readonly family: number;
}

/** Resolves `host` (an address resolves to itself); rejects with the resolver's error or a timeout. */
export async function resolveHost(host: string, timeoutMs: number): Promise<ResolvedAddress[]> {
  const family = isIP(host);
  if (family !== 0) return [{ address: host, family }];
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`name lookup timed out after ${timeoutMs} ms`)), timeoutMs);
  });
  try {
    // A lookup cannot be cancelled; when it loses the race its late answer is dropped.
    const addresses = await Promise.race([lookup(host, { all: true }), timeout]);
    if (addresses.length === 0) throw new Error('no address');
    return addresses;
  } finally {
    clearTimeout(timer);
  }
}

/** One TCP connect with a timeout; rejects with the connect error (its message has the errno text). */
export function connectTcp(address: ResolvedAddress, port: number, timeoutMs: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: address.address, port, family: address.family });
    const fail = (error: Error): void => {
      clearTimeout(timer);
      socket.destroy();
      reject(error);
    };
    const timer = setTimeout(() => fail(new Error(`connect timed out after ${timeoutMs} ms`)), timeoutMs);
    socket.once('error', fail);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.removeListener('error', fail);
      socket.on('error', () => {}); // the caller's reader takes errors from here on
      resolve(socket);
    });
  });
}

export type ConnectFailureReporter = (address: ResolvedAddress, error: Error) => void;

/**
 * Connects to the first address of `addresses` that answers; each failure is reported.
 * Undefined when none did (or the request ran out of time).
 */
export async function connectFirst(
  addresses: readonly ResolvedAddress[],
  port: number,
  deadline: Deadline,
  onFailure: ConnectFailureReporter,
): Promise<Socket | undefined> {
  for (const address of addresses) {
    const waitMs = deadline.nextWaitMs();
    if (waitMs === 0) {
      onFailure(address, new Error('request deadline reached'));
      return undefined;
    }
    try {
      return await connectTcp(address, port, waitMs);
    } catch (error) {
      onFailure(address, error as Error);
    }
  }
  return undefined;
}
