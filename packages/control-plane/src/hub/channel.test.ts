import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import WebSocket, { WebSocketServer } from 'ws';
import { webSocketChannel } from './channel.js';

// A real `ws` server and client on loopback; the server's TCP socket is watched for its writes.
describe('webSocketChannel', () => {
  const closers: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const close of closers.splice(0).reverse()) await close();
  });

  /** Sends two messages in one turn over a fresh connection; returns the socket writes they took and what arrived. */
  async function sendTwo(corked: boolean): Promise<{ writes: number; received: string[] }> {
    const server = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    await new Promise<void>((resolve) => server.once('listening', resolve));
    closers.push(
      () =>
        new Promise<void>((resolve) => {
          for (const socket of server.clients) socket.terminate();
          server.close(() => resolve());
        }),
    );
    const { port } = server.address() as AddressInfo;
    const client = new WebSocket(`ws://127.0.0.1:${port}`);
    closers.push(async () => client.terminate());
    const received: string[] = [];
    const bothArrived = new Promise<void>((resolve) =>
      client.on('message', (data) => {
        received.push(String(data));
        if (received.length === 2) resolve();
      }),
    );
    const writes = await new Promise<number>((resolve) =>
      server.once('connection', (socket, request) => {
        const tcp = request.socket as unknown as { _write: unknown; _writev: unknown };
        let count = 0;
        for (const method of ['_write', '_writev'] as const) {
          const original = tcp[method] as (...args: unknown[]) => unknown;
          tcp[method] = function (this: unknown, ...args: unknown[]) {
            count++;
            return original.apply(this, args);
          };
        }
        const channel = webSocketChannel(socket, corked ? { transport: request.socket } : {});
        channel.send('{"type":"welcome"}');
        channel.send('{"type":"pools.desired"}');
        setImmediate(() => resolve(count));
      }),
    );
    await bothArrived;
    return { writes, received };
  }

  it('sends the messages of one turn in one write when given its transport', async () => {
    const corked = await sendTwo(true);
    expect(corked.received).toEqual(['{"type":"welcome"}', '{"type":"pools.desired"}']);
    expect(corked.writes).toBe(1);
    // Without the transport each message is a write of its own (what the one write saves).
    const plain = await sendTwo(false);
    expect(plain.received).toEqual(corked.received);
    expect(plain.writes).toBe(2);
  });

  it('pings every node and drops one that stops answering, one heartbeat for all channels', async () => {
    const server = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    await new Promise<void>((resolve) => server.once('listening', resolve));
    closers.push(() => new Promise<void>((resolve) => server.close(() => resolve())));
    const { port } = server.address() as AddressInfo;
    const closedAt = new Map<string, number>();
    server.on('connection', (socket, request) => {
      const name = String(request.url).slice(1);
      webSocketChannel(socket, { heartbeatMs: 100 }).onClose(() => closedAt.set(name, Date.now()));
    });
    const connect = async (name: string) => {
      const client = new WebSocket(`ws://127.0.0.1:${port}/${name}`);
      closers.push(async () => client.terminate());
      await new Promise((resolve) => client.once('open', resolve));
      return client;
    };
    const [answering, silent] = await Promise.all([connect('answering'), connect('silent')]);
    let pings = 0;
    answering.on('ping', () => pings++);
    // A node that stops reading answers no ping (ws answers each ping it reads with a pong).
    const start = Date.now();
    (silent as unknown as { _socket: { pause(): void } })._socket.pause();
    while (!closedAt.has('silent') && Date.now() - start < 5_000) await new Promise((r) => setTimeout(r, 20));
    // Dropped at the second beat after it fell silent at the latest (a ping, then no answer).
    expect(closedAt.get('silent')).toBeDefined();
    expect((closedAt.get('silent') as number) - start).toBeLessThan(2_000);
    // The one answering is pinged at each beat and kept.
    while (pings < 3 && Date.now() - start < 5_000) await new Promise((r) => setTimeout(r, 20));
    expect(pings).toBeGreaterThanOrEqual(3);
    expect(closedAt.has('answering')).toBe(false);
    expect(answering.readyState).toBe(WebSocket.OPEN);
  });
});
