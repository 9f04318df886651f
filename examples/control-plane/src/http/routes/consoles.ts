import { type Duplex, pipeline } from 'node:stream';
import type { WebSocket } from '@fastify/websocket';
import type { ConsoleService } from '@quantix/control-plane';
import { CONSOLE_TYPES, ErrorCode, NODE_CONSOLE_PATH, QuantixError } from '@quantix/core';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { createWebSocketStream } from 'ws';
import { z } from 'zod';
import { errorResponses } from '../schemas.js';
import type { CheckNodeToken } from './node-socket.js';

const idParams = z.object({ id: z.string().min(1).max(128) });
const consoleType = z.enum(CONSOLE_TYPES).describe('serial: the first serial port; vnc: the graphical display');

/** The authenticated half: a ticket for a VM's console (browsers cannot send the API token on a WebSocket). */
export function consoleTicketRoutes(app: FastifyInstance, deps: { consoles: ConsoleService; apiPrefix: string }): void {
  const api = app.withTypeProvider<ZodTypeProvider>();
  api.post(
    '/vms/:id/console/tickets',
    {
      schema: {
        tags: ['vms'],
        operationId: 'createVmConsoleTicket',
        summary:
          'A single-use ticket (valid 60 s) to open the VM’s serial or VNC console: GET /vms/{id}/console?type=…&ticket=… as a WebSocket',
        params: idParams,
        body: z.strictObject({ type: consoleType }),
        response: {
          201: z.object({
            ticket: z.string(),
            vmId: z.string(),
            type: consoleType,
            expiresAt: z.date(),
            path: z.string().describe('the console WebSocket’s path with its query, to open on this server'),
          }),
          ...errorResponses(ErrorCode.NOT_FOUND),
        },
      },
    },
    async (request, reply) => {
      const issued = await deps.consoles.issueTicket(request.params.id, request.body.type);
      const query = new URLSearchParams({ type: issued.type, ticket: issued.ticket });
      return reply.status(201).send({
        ...issued,
        path: `${deps.apiPrefix}/vms/${encodeURIComponent(issued.vmId)}/console?${query}`,
      });
    },
  );
}

/** How long an opened relay waits for its viewer's upgrade to complete before it is closed. */
const UPGRADE_WAIT_MS = 10_000;

/**
 * The console itself, in a scope of its own: its credential is the ticket in the query (a
 * browser's WebSocket cannot carry headers), checked and spent before the upgrade — no ticket,
 * a wrong, used or expired one never gets a socket (401). The console is opened on the node
 * before the upgrade too, so a console that cannot be opened is an HTTP error in the API's shape
 * (409 CONSOLE_UNAVAILABLE or NODE_NOT_CONNECTED, 404), and an open socket is a live console.
 */
export function consoleRoutes(app: FastifyInstance, deps: { consoles: ConsoleService }): void {
  const relays = new WeakMap<FastifyRequest, Duplex>();
  app.route({
    method: 'GET',
    url: '/vms/:id/console',
    schema: {
      tags: ['vms'],
      operationId: 'openVmConsole',
      summary:
        'The VM’s console as a WebSocket of binary frames: serial bytes, or RFB for a VNC viewer (noVNC); the ticket from POST /vms/{id}/console/tickets',
      security: [{ consoleTicket: [] }],
      params: idParams,
      querystring: z.strictObject({ type: consoleType, ticket: z.string().min(1).max(256) }),
      response: {
        101: z.undefined().describe('Switching protocols: the console is open'),
        ...errorResponses(ErrorCode.NOT_FOUND, ErrorCode.CONSOLE_UNAVAILABLE, ErrorCode.NODE_NOT_CONNECTED),
      },
    },
    preValidation: async (request: FastifyRequest) => {
      const { id } = request.params as { id?: string };
      const { type, ticket } = (request.query ?? {}) as { type?: string; ticket?: string };
      const consoleKind = CONSOLE_TYPES.find((known) => known === type);
      if (
        typeof ticket !== 'string' ||
        !consoleKind ||
        !(await deps.consoles.redeemTicket(ticket, String(id), consoleKind))
      ) {
        throw new QuantixError(
          ErrorCode.UNAUTHORIZED,
          'Missing, wrong, used or expired console ticket: ask POST /vms/{id}/console/tickets for one',
        );
      }
      if (!request.ws) {
        throw new QuantixError(ErrorCode.INVALID_INPUT, 'A console is a WebSocket: connect with an upgrade');
      }
      const relay = await deps.consoles.open(String(id), consoleKind);
      relays.set(request, relay);
      // An upgrade that never completes (the viewer went away) does not keep the console open.
      setTimeout(() => {
        if (relays.get(request) === relay && !relay.readableFlowing) relay.destroy();
      }, UPGRADE_WAIT_MS).unref();
    },
    handler: async () => {
      throw new QuantixError(ErrorCode.INVALID_INPUT, 'A console is a WebSocket: connect with an upgrade');
    },
    wsHandler: (socket: WebSocket, request: FastifyRequest) => {
      const relay = relays.get(request);
      relays.delete(request);
      if (!relay || relay.destroyed) {
        socket.close(1011, 'the console closed before the viewer connected');
        return;
      }
      const viewer = createWebSocketStream(socket);
      const end = () => {
        relay.destroy();
        viewer.destroy();
      };
      pipeline(relay, viewer, end);
      pipeline(viewer, relay, end);
    },
  });
}

/** The node's relay for a console it was asked to open (its token was checked before the upgrade). */
export function consoleRelayRoute(
  app: FastifyInstance,
  deps: { consoles: ConsoleService; checkNodeToken: CheckNodeToken },
): void {
  app.route({
    method: 'GET',
    url: `${NODE_CONSOLE_PATH}/:sessionId`,
    schema: {
      tags: ['nodes'],
      operationId: 'relayNodeConsole',
      summary: 'A node’s relay of a VM console it was asked to open (console.open): binary frames, node token',
      security: [{ nodeToken: [] }],
      params: z.object({ sessionId: z.string().min(1).max(128) }),
      response: {
        101: z.undefined().describe('Switching protocols: the relay is joined to its viewer'),
        ...errorResponses(),
      },
    },
    preValidation: async (request) => {
      await deps.checkNodeToken(request);
    },
    handler: async () => {
      throw new QuantixError(ErrorCode.INVALID_INPUT, 'A console is a WebSocket: connect with an upgrade');
    },
    wsHandler: (socket: WebSocket, request: FastifyRequest) => {
      const nodeId = String(request.headers['x-quantix-node-id']);
      const { sessionId } = request.params as { sessionId: string };
      if (!deps.consoles.attachRelay(nodeId, sessionId, createWebSocketStream(socket))) {
        socket.close(1008, 'no console session waits under this id');
      }
    },
  });
}
