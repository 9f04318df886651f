/**
 * A TCP proxy (on loopback unless told another address) that a test puts between two real processes to break the network
 * between them the ways networks break:
 * - freeze: connections stay open and new ones are accepted, but no byte moves either way —
 *   nothing refused, nothing answered (a database behind a network that stopped forwarding);
 *   thawed, the bytes held back flow;
 * - cut: both sides of every connection closed at once, or one connection at a chosen moment
 *   (right after the client's hello, instead of the server's next frame);
 * - slow: the client's bytes paced to a rate (an upload over a slow link), and counted.
 */
import { once } from 'node:events';
import { type AddressInfo, connect, createServer, type Server, type Socket } from 'node:net';

interface Pair {
  client: Socket;
  upstream: Socket;
}

export class TcpProxy {
  private readonly pairs = new Set<Pair>();
  private server: Server | undefined;
  private frozen = false;
  /** Connections accepted so far. */
  accepted = 0;
  /** Cut the next connection right after its client sent this many chunks (1: the HTTP upgrade, 2: a hello). */
  cutNextAfterClientChunks = 0;
  /** Cut, instead of passing on, the next chunk a server sends (a request is left in flight). */
  cutOnNextServerData = false;
  /** Pace of the bytes clients send (bytes per second); 0 passes them at once. Read per chunk. */
  clientBytesPerSecond = 0;
  /** Bytes clients sent through the proxy so far. */
  clientBytes = 0;

  /** `target` is read for every new connection, so the server behind may move. */
  constructor(private readonly target: () => { host: string; port: number }) {}

  /** `host`: the address to listen on (default loopback; a bridge address for network namespaces). */
  async listen(host = '127.0.0.1'): Promise<number> {
    this.server = createServer((client) => {
      this.accepted++;
      const { host, port } = this.target();
      const upstream = connect(port, host);
      const pair = { client, upstream };
      this.pairs.add(pair);
      if (this.frozen) {
        client.pause();
        upstream.pause();
      }
      const cutAfter = this.cutNextAfterClientChunks;
      this.cutNextAfterClientChunks = 0;
      let chunks = 0;
      client.on('data', (data) => {
        this.clientBytes += data.length;
        upstream.write(data);
        if (this.clientBytesPerSecond > 0) {
          client.pause();
          setTimeout(
            () => {
              if (!this.frozen) client.resume();
            },
            (data.length / this.clientBytesPerSecond) * 1000,
          );
        }
        if (cutAfter > 0 && ++chunks === cutAfter) setImmediate(() => this.cut(pair));
      });
      upstream.on('data', (data) => {
        if (this.cutOnNextServerData) {
          this.cutOnNextServerData = false;
          this.cut(pair);
          return;
        }
        client.write(data);
      });
      const end = () => this.cut(pair);
      for (const socket of [client, upstream]) socket.on('close', end).on('error', end);
    });
    this.server.listen(0, host);
    await once(this.server, 'listening');
    return (this.server.address() as AddressInfo).port;
  }

  /** Connections open on both sides. */
  get live(): number {
    return [...this.pairs].filter((p) => !p.client.destroyed && !p.upstream.destroyed).length;
  }

  freeze(): void {
    this.frozen = true;
    for (const { client, upstream } of this.pairs) {
      client.pause();
      upstream.pause();
    }
  }

  thaw(): void {
    this.frozen = false;
    for (const { client, upstream } of this.pairs) {
      client.resume();
      upstream.resume();
    }
  }

  cutAll(): void {
    for (const pair of [...this.pairs]) this.cut(pair);
  }

  private cut(pair: Pair): void {
    pair.client.destroy();
    pair.upstream.destroy();
    this.pairs.delete(pair);
  }

  async close(): Promise<void> {
    this.cutAll();
    await new Promise((resolve) => this.server?.close(resolve));
  }
}
