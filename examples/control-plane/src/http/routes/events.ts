import { EventFeed, type LiveEvent, type LiveEvents } from '@quantix/control-plane';
import { ErrorCode, IMAGE_PHASES, POOL_NODE_STATUSES, QuantixError, VM_STATES } from '@quantix/core';
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { errorResponses } from '../schemas.js';
import { imageError, progress } from './images.js';

/** How the stream behaves; the defaults suit a browser behind a proxy. */
export interface EventStreamSettings {
  /** A comment line this often keeps proxies from closing a quiet stream (default 15 s). */
  heartbeatMs?: number;
  /** Events waiting for a backed-up reader before its stream is cut (default 1000). */
  maxQueuedEvents?: number;
}

/** What EventSource waits before it reconnects by itself; the UI reconnects with a new ticket. */
const RETRY_MS = 3000;
/**
 * What a stream may hold in its own write buffer before its reader counts as backed up: a burst
 * of events in one turn of the event loop is not mistaken for a slow reader.
 */
const WRITE_BUFFER_BYTES = 256 * 1024;
/** How long a stream ended at shutdown may take to flush before its socket is closed. */
const SHUTDOWN_FLUSH_MS = 500;

/** One event of the stream: the JSON of a `data:` line. */
export const liveEventSchema = z
  .discriminatedUnion('type', [
    z
      .object({
        type: z.literal('image.progress'),
        kind: z.literal('image'),
        id: z.string(),
        progress,
        bytesPerSecond: z.number().nullable(),
        etaSeconds: z.number().nullable(),
      })
      .describe('A download’s figures, at most 4 a second per image'),
    z
      .object({
        type: z.literal('image.phase'),
        kind: z.literal('image'),
        id: z.string(),
        phase: z.enum(IMAGE_PHASES),
        error: imageError.nullable(),
      })
      .describe('An image’s new phase (an unknown id is a new image: fetch it)'),
    z
      .object({ type: z.literal('image.changed'), kind: z.literal('image'), id: z.string(), deleted: z.boolean() })
      .describe('An image changed by a user (name, labels, requirements), or deleted: fetch it again'),
    z
      .object({
        type: z.literal('pool.state'),
        kind: z.literal('pool'),
        id: z.string(),
        nodeId: z.string(),
        status: z.enum(POOL_NODE_STATUSES),
        reason: z.string().nullable(),
      })
      .describe('A pool’s state on one node'),
    z
      .object({
        type: z.literal('node.connection'),
        kind: z.literal('node'),
        id: z.string(),
        connected: z.boolean(),
        reason: z.string().nullable(),
      })
      .describe('A node connected or disconnected'),
    z
      .object({ type: z.literal('vm.state'), kind: z.literal('vm'), id: z.string(), state: z.enum(VM_STATES) })
      .describe('A VM’s new state'),
    z
      .object({ type: z.literal('resync'), kind: z.literal('all'), id: z.literal('') })
      .describe('Events may have been missed: fetch what is shown again'),
  ])
  .meta({
    id: 'LiveEvent',
    description:
      'An event of GET /events: it names the resource kind and id and carries the fields that changed; fetch the rest of a record when needed',
  }) satisfies z.ZodType<LiveEvent>;

/** The authenticated half: a ticket for the stream (a browser's EventSource cannot send the API token). */
export function eventTicketRoutes(app: FastifyInstance, deps: { live: LiveEvents; apiPrefix: string }): void {
  app.withTypeProvider<ZodTypeProvider>().post(
    '/events/tickets',
    {
      schema: {
        tags: ['system'],
        operationId: 'createEventTicket',
        summary: 'A single-use ticket (valid 60 s) to open the live event stream: GET /events?ticket=…',
        response: {
          201: z.object({
            ticket: z.string(),
            expiresAt: z.date(),
            path: z.string().describe('the stream’s path with its query, to open on this server'),
          }),
          ...errorResponses(),
        },
      },
    },
    async (_request, reply) => {
      const issued = await deps.live.issueTicket();
      const query = new URLSearchParams({ ticket: issued.ticket });
      return reply.status(201).send({ ...issued, path: `${deps.apiPrefix}/events?${query}` });
    },
  );
}

/**
 * The stream itself, in a scope of its own: its credential is the ticket in the query, spent
 * before anything is sent — no ticket, a wrong, used or expired one is a 401. Server-sent events
 * rather than a WebSocket: the traffic is one-way, EventSource is built into browsers, and plain
 * HTTP passes every proxy. No replay of missed events (no Last-Event-ID): a view fetches what it
 * shows when it (re)connects, and the database holds the truth.
 */
export function eventStreamRoutes(
  app: FastifyInstance,
  deps: { live: LiveEvents; settings?: EventStreamSettings },
): void {
  const heartbeatMs = deps.settings?.heartbeatMs ?? 15_000;
  const maxQueued = deps.settings?.maxQueuedEvents ?? 1000;
  app.withTypeProvider<ZodTypeProvider>().get(
    '/events',
    {
      schema: {
        tags: ['system'],
        operationId: 'streamEvents',
        summary:
          'Live events as server-sent events (text/event-stream): each `data:` line is one LiveEvent; the ticket from POST /events/tickets',
        description: `Starts with \`retry: ${RETRY_MS}\`; a comment line every ${heartbeatMs / 1000} s keeps it open. Progress for a reader that falls behind is coalesced to the latest per image; one that falls too far behind is cut off and should reconnect with a new ticket and fetch what it shows.`,
        security: [{ eventTicket: [] }],
        querystring: z.strictObject({ ticket: z.string().min(1).max(256) }),
        response: {
          200: {
            description: 'The stream, open until the client or the server closes it',
            content: { 'text/event-stream': { schema: liveEventSchema } },
          },
          ...errorResponses(),
        },
      },
      // Before validation, like every other credential check: no ticket is 401 whatever else is wrong.
      onRequest: async (request) => {
        const { ticket } = (request.query ?? {}) as { ticket?: unknown };
        if (typeof ticket !== 'string' || !(await deps.live.redeemTicket(ticket))) {
          throw new QuantixError(
            ErrorCode.UNAUTHORIZED,
            'Missing, wrong, used or expired event-stream ticket: ask POST /events/tickets for one',
          );
        }
      },
    },
    async (request, reply) => {
      reply.hijack();
      const raw = reply.raw;
      raw.writeHead(200, {
        'content-type': 'text/event-stream; charset=utf-8',
        'cache-control': 'no-cache, no-transform',
        // Proxies that buffer responses (nginx) pass this one through as it comes.
        'x-accel-buffering': 'no',
      });
      raw.write(`retry: ${RETRY_MS}\n\n`);
      let ended = false;
      let unsubscribe = () => {};
      const feed = new EventFeed({
        send: (event) => raw.write(`data: ${JSON.stringify(event)}\n\n`) || raw.writableLength < WRITE_BUFFER_BYTES,
        maxQueued,
        onOverflow: () => {
          request.log.warn({ maxQueued }, 'an event-stream reader fell too far behind; its stream is cut');
          stop();
          raw.destroy();
        },
      });
      const heartbeat = setInterval(() => {
        // A backed-up stream needs no keep-alive: bytes are already waiting.
        if (!raw.writableNeedDrain) raw.write(': keep-alive\n\n');
      }, heartbeatMs);
      heartbeat.unref();
      const onDrain = () => feed.drained();
      const stop = () => {
        if (ended) return;
        ended = true;
        clearInterval(heartbeat);
        unsubscribe();
        raw.off('drain', onDrain);
      };
      unsubscribe = deps.live.subscribe(
        (event) => feed.push(event),
        () => {
          // Shutdown: the stream ends; a reader that does not take the end is not waited for.
          stop();
          raw.end();
          setTimeout(() => raw.destroy(), SHUTDOWN_FLUSH_MS).unref();
        },
      );
      raw.on('drain', onDrain);
      raw.on('close', stop);
    },
  );
}
