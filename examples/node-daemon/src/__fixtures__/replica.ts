/**
 * A stand-in control-plane replica for the connection's failover tests: a real WebSocket server
 * on /api/v1/nodes/connect that answers a hello with a welcome, as the node hub does, and
 * records who said hello. The hub itself is tested with real nodes in the control-plane
 * package; here only which replica a node reaches matters.
 */
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { PROTOCOL_VERSION } from '@quantix/core';
import { type WebSocket, WebSocketServer } from 'ws';

export interface Replica {
  url: string;
  address: string;
  port: number;
  /** Node ids in the order their hellos arrived. */
  hellos: string[];
  /** Node ids currently connected. */
  connected(): number;
  /**
   * Down or up while keeping the port: a down replica resets every TCP connection at once, as a
   * host whose port is closed does. Releasing the port instead would let another test's
   * ephemeral listener take it before the replica comes back.
   */
  setDown(down: boolean): void;
  /** Dies as a crashed process does: every connection cut, the port closed. */
  kill(): Promise<void>;
}

export async function startReplica(address = '127.0.0.1', port = 0): Promise<Replica> {
  const server: Server = createServer((_request, response) => response.writeHead(404).end());
  const wss = new WebSocketServer({ server, path: '/api/v1/nodes/connect' });
  const hellos: string[] = [];
  const sockets = new Set<WebSocket>();
  let down = false;
  server.on('connection', (socket) => {
    if (down) socket.resetAndDestroy();
  });
  wss.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('message', (data) => {
      const message = JSON.parse(data.toString()) as { type: string; nodeId?: string };
      if (message.type !== 'hello' || !message.nodeId) return;
      hellos.push(message.nodeId);
      socket.send(
        JSON.stringify({
          v: PROTOCOL_VERSION,
          type: 'welcome',
          nodeId: message.nodeId,
          serverTime: new Date().toISOString(),
          protocol: PROTOCOL_VERSION,
        }),
      );
    });
  });
  server.listen(port, address);
  await once(server, 'listening');
  const bound = (server.address() as AddressInfo).port;
  return {
    url: `http://${address}:${bound}`,
    address,
    port: bound,
    hellos,
    connected: () => sockets.size,
    setDown(value) {
      down = value;
    },
    async kill() {
      for (const socket of sockets) socket.terminate();
      wss.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
