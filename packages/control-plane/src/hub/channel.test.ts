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
});
