import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import { type NodeHub, type NodeTokenRead, webSocketChannel } from '@quantix/control-plane';
import { ErrorCode, QuantixError } from '@quantix/core';
import type { FastifyBaseLogger, FastifyInstance } from 'fastify';
import type { WebSocket } from 'ws';
import { z } from 'zod';
import { errorResponses } from '../schemas.js';

/** The node daemon's WebSocket, under the API prefix. */
export const NODE_SOCKET_PATH = '/nodes/connect';

/** A node authenticated by its token: its id, and the read of its token's digest that matched (for NodeHub.attach). */
export interface AuthenticatedNode {
  nodeId: string;
  token: NodeTokenRead;
}

/** A node's token and id, from its headers: the node when they match, else UNAUTHORIZED (or the database's error). */
export type CheckNodeToken = (request: { headers: IncomingHttpHeaders }) => Promise<AuthenticatedNode>;

interface NodeSocketDeps {
  hub: NodeHub;
  checkNodeToken: CheckNodeToken;
  logger: FastifyBaseLogger;
}

/** The node each upgrade the route let through was authenticated as, from its check to its handler. */
const authenticated = new WeakMap<IncomingMessage, AuthenticatedNode>();

/** Hands an upgraded node socket, its node authenticated, to the hub. */
function attachNode(
  { hub, logger }: NodeSocketDeps,
  { nodeId, token }: AuthenticatedNode,
  socket: WebSocket,
  transport: Socket,
): void {
  // What the upgrade leaves attached would live as long as the node's socket (2,000 in a storm,
  // each carried through its GCs): @fastify/websocket's error listener holds the request, its
  // reply and child logger; the TCP socket holds the upgrade's response, and through it the
  // request. The link's own error listener is enough; the response is over.
  socket.removeAllListeners('error');
  (transport as { _httpMessage?: { detachSocket(socket: unknown): void } | null })._httpMessage?.detachSocket(
    transport,
  );
  hub.attach(
    nodeId,
    webSocketChannel(socket, { transport, onError: (err) => logger.debug({ nodeId, err }, 'node socket error') }),
    { token },
  );
}

/**
 * GET /nodes/connect, the route: documented, probed with the rest of the API, and the way every
 * upgrade `takeNodeUpgrades` does not accept outright goes (a wrong token, another spelling of
 * the URL): its errors are the API's.
 */
export function nodeSocketRoute(scope: FastifyInstance, deps: NodeSocketDeps): void {
  scope.route({
    method: 'GET',
    url: NODE_SOCKET_PATH,
    schema: {
      operationId: 'connectNode',
      tags: ['nodes'],
      summary: 'The node daemon’s WebSocket (node token and X-Quantix-Node-Id; never the API token)',
      description: 'Answers only a WebSocket upgrade; a plain GET is refused with INVALID_INPUT.',
      security: [{ nodeToken: [] }],
      response: {
        101: z.undefined().describe('Switching protocols: the node socket is open'),
        ...errorResponses(),
      },
    },
    // The node's token is checked before the upgrade: a wrong token never gets a socket.
    preValidation: async (request) => {
      authenticated.set(request.raw, await deps.checkNodeToken(request));
    },
    handler: async () => {
      throw new QuantixError(ErrorCode.INVALID_INPUT, 'The node socket is a WebSocket: connect with an upgrade');
    },
    wsHandler: (socket, request) => {
      const node = authenticated.get(request.raw) as AuthenticatedNode;
      attachNode(deps, node, socket, request.raw.socket as Socket);
    },
  });
}

/**
 * Node upgrades to `path` itself whose token checks out are accepted here, straight off the HTTP
 * server, without fastify's request, reply, hooks and routing: a reconnect storm of 2,000 nodes
 * costs the control plane about 10% less CPU (bench/pool-sync, paired rounds). Every other
 * upgrade — another path, another spelling, a token that does not check out, a database that
 * cannot answer — goes to @fastify/websocket's listener as before, and so through
 * `nodeSocketRoute`, which checks again and answers with the API's error. Call it after
 * @fastify/websocket is registered (its `upgrade` listener is the one wrapped).
 */
export function takeNodeUpgrades(app: FastifyInstance, path: string, deps: NodeSocketDeps): void {
  const server = app.server;
  const routed = server.listeners('upgrade') as ((request: IncomingMessage, socket: Socket, head: Buffer) => void)[];
  server.removeAllListeners('upgrade');
  const route = (request: IncomingMessage, socket: Socket, head: Buffer) => {
    for (const listener of routed) listener.call(server, request, socket, head);
  };
  // @fastify/websocket's own `ws` server, with the options it was registered with (the frame limit).
  const sockets = app.websocketServer;
  // Node removes its own error listener before 'upgrade': a reset while the token is checked destroys the socket.
  const destroyOnError = function (this: Socket) {
    this.destroy();
  };
  const onUpgrade = (request: IncomingMessage, socket: Socket, head: Buffer) => {
    if (request.method !== 'GET' || request.url !== path) {
      route(request, socket, head);
      return;
    }
    socket.on('error', destroyOnError);
    deps.checkNodeToken(request).then(
      (node) => {
        socket.removeListener('error', destroyOnError);
        sockets.handleUpgrade(request, socket, head, (ws) => attachNode(deps, node, ws, socket));
      },
      () => {
        socket.removeListener('error', destroyOnError);
        route(request, socket, head);
      },
    );
  };
  server.on('upgrade', onUpgrade);
  app.addHook('preClose', (done) => {
    server.removeListener('upgrade', onUpgrade);
    done();
  });
}
