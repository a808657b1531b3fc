/**
 * KDCs that misbehave, on loopback, for the kerberos5 tests: one that accepts on UDP and TCP
 * and never answers (a hung KDC), and a front for the real one that answers initial-credential
 * requests only (a KDC that hangs half-way, during the keytab check).
 */
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { Socket, connect, createServer, type Server } from 'node:net';

/** Accepts KDC requests on UDP and TCP and never answers them. */
export class SilentKdc {
  private readonly sockets = new Set<Socket>();
  /** Requests received so far (UDP datagrams and TCP connections). */
  requests = 0;

  private constructor(
    private readonly udp: UdpSocket,
    private readonly tcp: Server,
  ) {}

  static async start(port: number): Promise<SilentKdc> {
    const udp = createSocket('udp4');
    const tcp = createServer();
    const silent = new SilentKdc(udp, tcp);
    udp.on('message', () => silent.requests++);
    tcp.on('connection', (socket) => {
      silent.requests++;
      silent.sockets.add(socket);
      socket.on('data', () => {}); // read, never answer
      socket.on('error', () => {});
      socket.on('close', () => silent.sockets.delete(socket));
    });
    await listenOnBoth(udp, tcp, port);
    return silent;
  }

  async stop(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => this.tcp.close(() => resolve()));
    await new Promise<void>((resolve) => this.udp.close(() => resolve()));
  }
}

/** DER tag of a Kerberos AS-REQ ([APPLICATION 10]); a TGS-REQ is [APPLICATION 12], 0x6c. */
const AS_REQ_TAG = 0x6a;
/** Size of the length prefix of Kerberos over TCP (RFC 4120 §7.2.2). */
const TCP_LENGTH_BYTES = 4;

/**
 * A KDC front that passes AS-REQs (initial credentials) to the real KDC and swallows every
 * other request (the TGS-REQ of the keytab check): a KDC that hangs half-way through.
 */
export class AsOnlyKdcProxy {
  private readonly sockets = new Set<Socket | UdpSocket>();

  private constructor(
    private readonly udp: UdpSocket,
    private readonly tcp: Server,
  ) {}

  static async start(port: number, kdcPort: number): Promise<AsOnlyKdcProxy> {
    const udp = createSocket('udp4');
    const tcp = createServer();
    const proxy = new AsOnlyKdcProxy(udp, tcp);
    udp.on('message', (message, client) => {
      if (message[0] !== AS_REQ_TAG) return;
      const upstream = createSocket('udp4');
      proxy.sockets.add(upstream);
      upstream.on('message', (answer) => {
        udp.send(answer, client.port, client.address);
        upstream.close();
        proxy.sockets.delete(upstream);
      });
      upstream.send(message, kdcPort, '127.0.0.1');
    });
    tcp.on('connection', (socket) => {
      proxy.sockets.add(socket);
      socket.on('error', () => {});
      socket.on('close', () => proxy.sockets.delete(socket));
      let received = Buffer.alloc(0);
      const onData = (chunk: Buffer): void => {
        received = Buffer.concat([received, chunk]);
        if (received.length <= TCP_LENGTH_BYTES) return;
        socket.off('data', onData);
        if (received[TCP_LENGTH_BYTES] !== AS_REQ_TAG) {
          socket.on('data', () => {}); // swallowed: never answered
          return;
        }
        const upstream = connect({ host: '127.0.0.1', port: kdcPort });
        proxy.sockets.add(upstream);
        upstream.on('error', () => socket.destroy());
        upstream.on('close', () => proxy.sockets.delete(upstream));
        upstream.write(received);
        socket.pipe(upstream);
        upstream.pipe(socket);
      };
      socket.on('data', onData);
    });
    await listenOnBoth(udp, tcp, port);
    return proxy;
  }

  async stop(): Promise<void> {
    for (const socket of this.sockets) {
      if (socket instanceof Socket) socket.destroy();
      else socket.close();
    }
    await new Promise<void>((resolve) => this.tcp.close(() => resolve()));
    await new Promise<void>((resolve) => this.udp.close(() => resolve()));
  }
}

/** Binds the UDP socket and the TCP server to 127.0.0.1:port (a KDC answers on both). */
async function listenOnBoth(udp: UdpSocket, tcp: Server, port: number): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    udp.once('error', reject);
    udp.bind(port, '127.0.0.1', () => resolve());
  });
  await new Promise<void>((resolve, reject) => {
    tcp.once('error', reject);
    tcp.listen(port, '127.0.0.1', () => resolve());
  });
}
