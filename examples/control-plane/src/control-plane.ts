import { mkdir } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fastifySwagger from '@fastify/swagger';
import fastifyWebsocket from '@fastify/websocket';
import {
  bearerToken,
  type ControlPlaneServices,
  createControlPlane,
  ticketKeyFrom,
  tokenDigest,
  tokenMatches,
} from '@quantix/control-plane';
import {
  ErrorCode,
  isQuantixError,
  type PoolRootPolicy,
  type PoolTypeDefinition,
  PROTOCOL_LIMITS,
  type Quantix,
  QuantixError,
} from '@quantix/core';
import { createDiskImageInspector } from '@quantix/images-cloud';
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import {
  jsonSchemaTransform,
  jsonSchemaTransformObject,
  serializerCompiler,
  validatorCompiler,
} from 'fastify-type-provider-zod';
import { z } from 'zod';
import { findNul, handleClientError, handleError } from './http/errors.js';
import { idempotentWrites } from './http/idempotency.js';
import { requestLogger } from './http/request-logger.js';
import { consoleRelayRoute, consoleRoutes, consoleTicketRoutes } from './http/routes/consoles.js';
import { type EventStreamSettings, eventStreamRoutes, eventTicketRoutes } from './http/routes/events.js';
import { exportRelayRoute, imageContentRoutes, imageContentTicketRoutes } from './http/routes/exports.js';
import { goldenRoutes } from './http/routes/golden.js';
import { imageRoutes } from './http/routes/images.js';
import { type CheckNodeToken, NODE_SOCKET_PATH, nodeSocketRoute, takeNodeUpgrades } from './http/routes/node-socket.js';
import { nodeRoutes } from './http/routes/nodes.js';
import { poolRoutes } from './http/routes/pools.js';
import { replicaRoutes } from './http/routes/replicas.js';
import { TusUploads, tusRoutes } from './http/routes/tus.js';
import { stagedUploadRoutes, uploadRoutes } from './http/routes/uploads.js';
import { vmRoutes } from './http/routes/vms.js';
import { publicErrorResponses } from './http/schemas.js';
import { serveUi } from './http/ui.js';

export const API_PREFIX = '/api/v1';

/**
 * Connections waiting to be accepted at most (the kernel caps it at net.core.somaxconn). Node's
 * default, 511, is too few for a reconnect storm: 2,000 nodes dialling at once overflowed it,
 * and each dropped SYN costs its node a one-second retransmit.
 */
const LISTEN_BACKLOG = 4096;
export interface ControlPlaneOptions {
  /** A Quantix instance (its database, repositories, plugins: catalogs). Not closed by the control plane. */
  quantix: Quantix;
  /** The bearer token every API request must carry. */
  apiToken: string;
  /** This process as a replica: its id (default a new one per start), its URL, its lease time. */
  replica?: { id?: string; url?: string; leaseSeconds?: number };
  host?: string;
  /** 0 picks a free port. */
  port?: number;
  /** How long a busy download waits for a node holding its pool after a restart. */
  resumeGraceMs?: number;
  /** Largest ISO upload, in bytes (default 16 GiB). */
  maxUploadBytes?: number;
  /** How long a resumable upload that stopped arriving is kept for a resume (default 24 h). */
  tusExpiryMs?: number;
  /** Where uploads wait until a node has fetched them (default: a directory under the OS temp dir). */
  stagingDir?: string;
  /** The URL nodes reach this control plane at (default: the listen address). */
  publicUrl?: string;
  /** Pool types pools may have (default: what the instance's plugins provide through PoolTypeToken). */
  poolTypes?: readonly PoolTypeDefinition[];
  /** Where pool roots may be (default: createPoolRootPolicy(): /var/lib/quantix and /srv). */
  poolRoots?: PoolRootPolicy;
  /** How often due golden-image schedules are looked for (default 30 s). */
  goldenTickSeconds?: number;
  /** How often every ISO pool is scanned again (default 300 s; 0: only after a node's pool sync and on request). */
  rescanSeconds?: number;
  /** How often the health sweep runs (nodes and downloads a lost replica left; default 5 s). */
  sweepSeconds?: number;
  /** How often VMs' records are checked against their nodes' hypervisors (default 30 s; 0: never). */
  vmStateSeconds?: number;
  /** How long a VM stop without a timeout of its own waits for the guest after the ACPI shutdown (default 60 s). */
  vmStopTimeoutSeconds?: number;
  /** The live event stream (GET /api/v1/events): its heartbeat and how far a reader may fall behind. */
  eventStream?: EventStreamSettings;
  /** Least time between two live progress events of one image (default 250 ms). */
  liveProgressIntervalMs?: number;
}

/** This app's version, as /healthz and /replicas report it. */
export const CONTROL_PLANE_VERSION: string = (createRequire(import.meta.url)('../package.json') as { version: string })
  .version;

/** Who may call a route: the scope it was registered in, as its OpenAPI `security` declares. */
export type RouteAuth = 'public' | 'api' | 'node' | 'upload' | 'console' | 'events';

export interface RouteInfo {
  method: string;
  /** The route as registered, with its prefix: `/api/v1/pools/:id`. */
  url: string;
  auth: RouteAuth;
  websocket: boolean;
}

export interface ControlPlane extends ControlPlaneServices {
  app: FastifyInstance;
  /** Every route the server answers (HEAD twins left out): what the adversarial suite probes. */
  routes: readonly RouteInfo[];
  /** http://host:port */
  url: string;
  close(): Promise<void>;
}

/** The document without the component schemas nothing refers to. */
function withoutUnusedSchemas(
  document: ReturnType<typeof jsonSchemaTransformObject>,
): ReturnType<typeof jsonSchemaTransformObject> {
  const schemas = 'components' in document ? document.components?.schemas : undefined;
  if (!schemas) return document;
  const text = JSON.stringify(document);
  for (const id of Object.keys(schemas)) {
    if (!text.includes(`"#/components/schemas/${id}"`)) delete schemas[id];
  }
  return document;
}

/**
 * The control plane: HTTP API under /api/v1 (bearer token), OpenAPI document, and the node hub
 * where node daemons connect over WebSocket with their own tokens.
 */
export async function startControlPlane(options: ControlPlaneOptions): Promise<ControlPlane> {
  const { quantix } = options;
  const logger = quantix.logger.child({ component: 'control-plane' });
  let listenUrl = '';
  // Every workflow is the library's; this app adds HTTP, the node WebSocket and the UI.
  const stagingDir = options.stagingDir ?? join(tmpdir(), 'quantix-uploads');
  const services = createControlPlane({
    quantix,
    logger,
    ...(options.poolTypes ? { poolTypes: options.poolTypes } : {}),
    ...(options.poolRoots ? { poolRoots: options.poolRoots } : {}),
    stagingDir,
    // Disk-image uploads are read with qemu-img here; scans on nodes do not run it on every file.
    uploadInspectors: [createDiskImageInspector()],
    publicUrl: () => options.publicUrl ?? listenUrl,
    // Replicas share the API token: tickets signed with a key made from it are good on all of them.
    ticketKey: ticketKeyFrom(options.apiToken),
    ...(options.maxUploadBytes !== undefined ? { maxUploadBytes: options.maxUploadBytes } : {}),
    ...(options.resumeGraceMs !== undefined ? { resumeGraceMs: options.resumeGraceMs } : {}),
    ...(options.goldenTickSeconds !== undefined ? { goldenTickSeconds: options.goldenTickSeconds } : {}),
    ...(options.rescanSeconds !== undefined ? { rescanSeconds: options.rescanSeconds } : {}),
    ...(options.sweepSeconds !== undefined ? { sweepSeconds: options.sweepSeconds } : {}),
    ...(options.vmStateSeconds !== undefined ? { vmStateSeconds: options.vmStateSeconds } : {}),
    ...(options.vmStopTimeoutSeconds !== undefined ? { vmStopTimeoutSeconds: options.vmStopTimeoutSeconds } : {}),
    ...(options.liveProgressIntervalMs !== undefined ? { liveProgressIntervalMs: options.liveProgressIntervalMs } : {}),
    replica: {
      version: CONTROL_PLANE_VERSION,
      ...(options.replica?.id ? { replicaId: options.replica.id } : {}),
      ...(options.replica?.url ? { url: options.replica.url } : {}),
      ...(options.replica?.leaseSeconds ? { leaseSeconds: options.replica.leaseSeconds } : {}),
    },
  });
  const { hub } = services;

  const app = Fastify({
    loggerInstance: logger as FastifyBaseLogger,
    childLoggerFactory: requestLogger,
    bodyLimit: 1024 * 1024,
    // Long enough for any id (128) to reach its schema and be refused there by name.
    routerOptions: { maxParamLength: 1024 },
    frameworkErrors: (error, request, reply) => handleError(error, request, reply),
    clientErrorHandler: handleClientError,
  });
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  app.setErrorHandler(handleError);
  // A NUL byte is never valid in Quantix (PostgreSQL text cannot hold one): refused before any
  // handler or database sees it. preValidation runs after each scope's credential check.
  app.addHook('preValidation', async (request) => {
    // A request that sends no body at all (no Content-Length, no Transfer-Encoding) to a route that
    // takes one is read as `{}` (fastify would validate null): a body whose fields are all optional
    // (a rescan, a verify) need not be sent, and a missing field is named. A JSON `null` is refused.
    const { 'content-length': length, 'transfer-encoding': chunked } = request.headers;
    const noPayload = (length === undefined || length === '0') && chunked === undefined;
    if (request.body === undefined && noPayload && request.routeOptions.schema?.body !== undefined) {
      request.body = {};
    }
    const where = findNul({ params: request.params, query: request.query, body: request.body });
    if (where) {
      throw new QuantixError(ErrorCode.INVALID_INPUT, `A NUL byte is not allowed (in ${where})`, {
        details: { issues: [{ path: where, message: 'contains a NUL byte' }] },
      });
    }
  });
  const routes: RouteInfo[] = [];
  app.addHook('onRoute', (route) => {
    // A query parameter a route does not have is refused by name, as a body field is: a route
    // of the API without parameters of its own gets an empty strict query (a typo never passes).
    if (route.url.startsWith(API_PREFIX) && route.schema?.querystring === undefined) {
      route.schema = { ...route.schema, querystring: z.strictObject({}) };
    }
    const methods = Array.isArray(route.method) ? route.method : [route.method];
    const security = (route.schema as { security?: Record<string, unknown>[] } | undefined)?.security;
    // Outside the API prefix there are only the UI's static files, served to anyone.
    const auth: RouteAuth = !route.url.startsWith(API_PREFIX)
      ? 'public'
      : security === undefined
        ? 'api'
        : security.length === 0
          ? 'public'
          : 'nodeToken' in (security[0] ?? {})
            ? 'node'
            : 'uploadToken' in (security[0] ?? {})
              ? 'upload'
              : 'consoleTicket' in (security[0] ?? {})
                ? 'console'
                : 'eventTicket' in (security[0] ?? {})
                  ? 'events'
                  : 'api';
    // A HEAD route of its own (documented: tus's offset query) is probed; GET's HEAD twins are not.
    const ownHead = (route.config as { swagger?: { exposeHeadRoute?: boolean } } | undefined)?.swagger?.exposeHeadRoute;
    for (const method of methods) {
      if (method === 'HEAD' && !ownHead) continue;
      const websocket = Boolean(
        (route as { websocket?: boolean }).websocket || (route as { wsHandler?: unknown }).wsHandler,
      );
      routes.push({ method, url: route.url, auth, websocket });
    }
  });
  await app.register(fastifySwagger, {
    openapi: {
      info: {
        title: 'Quantix control plane',
        version: '1.0.0',
        description: 'Images, storage pools, nodes and VMs.',
        license: { name: 'Apache-2.0', url: 'https://www.apache.org/licenses/LICENSE-2.0' },
      },
      // Paths carry their /api/v1 prefix: the server is the host this document came from.
      servers: [{ url: '/', description: 'This control plane' }],
      components: {
        securitySchemes: {
          bearer: { type: 'http', scheme: 'bearer', description: 'The API token' },
          nodeToken: { type: 'http', scheme: 'bearer', description: 'A node’s own token, with X-Quantix-Node-Id' },
          uploadToken: { type: 'apiKey', in: 'query', name: 'token', description: 'A staged upload’s one-time token' },
          consoleTicket: {
            type: 'apiKey',
            in: 'query',
            name: 'ticket',
            description: 'A VM console’s single-use ticket, from POST /vms/{id}/console/tickets',
          },
          eventTicket: {
            type: 'apiKey',
            in: 'query',
            name: 'ticket',
            description: 'The live event stream’s single-use ticket, from POST /events/tickets',
          },
          downloadTicket: {
            type: 'apiKey',
            in: 'query',
            name: 'ticket',
            description: 'An image download ticket, from POST /images/{id}/content/tickets',
          },
        },
      },
      security: [{ bearer: [] }],
    },
    transform: jsonSchemaTransform,
    // Schemas with an `id` (the error shape) become components, referenced by `$ref`; the
    // transform makes an input and an output twin of each, and only the twins in use are kept.
    transformObject: (document) => withoutUnusedSchemas(jsonSchemaTransformObject(document)),
  });
  // WebSockets: the node's, its console relays and console viewers'; a larger frame closes one with 1009.
  await app.register(fastifyWebsocket, { options: { maxPayload: PROTOCOL_LIMITS.maxNodeMessageBytes } });

  // Authentication belongs to the route scope, never to a test of the URL's spelling: the
  // router decodes and matches what it is given, and every route it can reach is registered in
  // exactly one of three scopes below, each with its own check. Public routes are the only ones
  // outside a checked scope, on purpose.
  await app.register(
    async (publicScope) => {
      publicScope.get(
        '/healthz',
        {
          schema: {
            operationId: 'getHealth',
            tags: ['system'],
            summary: 'Liveness and database reachability (no token)',
            security: [],
            response: {
              200: z.object({
                status: z.literal('ok'),
                database: z.string().describe('the database client: pg or pglite'),
                replica: z.object({
                  id: z.string(),
                  version: z.string(),
                  nodes: z.number().int().describe('node connections this replica holds'),
                }),
                connectedNodes: z.number().int(),
              }),
              ...publicErrorResponses(),
            },
          },
        },
        async () => {
          await quantix.database.knex.raw('select 1');
          return {
            status: 'ok',
            database: quantix.database.client,
            // `nodes`: how many node leases this replica holds, the count /replicas lists under its id.
            replica: {
              id: services.replicas.replicaId,
              version: CONTROL_PLANE_VERSION,
              nodes: services.replicas.heldNodeIds().length,
            },
            connectedNodes: hub.connectedNodeIds().length,
          };
        },
      );
      publicScope.get(
        '/openapi.json',
        {
          schema: {
            operationId: 'getOpenApiDocument',
            tags: ['system'],
            summary: 'This document (no token)',
            security: [],
            response: {
              200: z
                .looseObject({ openapi: z.string(), info: z.looseObject({}), paths: z.record(z.string(), z.unknown()) })
                .describe('An OpenAPI 3.0 document'),
              ...publicErrorResponses(),
            },
          },
        },
        async () => app.swagger(),
      );
    },
    { prefix: API_PREFIX },
  );

  /** A node's token and id, from its headers; the node's id and the token read it matched (else UNAUTHORIZED). */
  const checkNodeToken: CheckNodeToken = async (request) => {
    const nodeId = String(request.headers['x-quantix-node-id'] ?? '');
    const token = bearerToken(request.headers.authorization);
    // An unknown node is a wrong credential; a database that cannot answer is not: that is a
    // 503, and the node dials again soon (or another replica) instead of waiting as if refused.
    const read = nodeId
      ? await hub.tokenDigestOf(nodeId).catch((error: unknown) => {
          if (isQuantixError(error, ErrorCode.NOT_FOUND)) return null;
          throw error;
        })
      : null;
    if (!token || !read || !tokenMatches(token, read.digest)) {
      throw new QuantixError(ErrorCode.UNAUTHORIZED, 'Unknown node or wrong node token');
    }
    return { nodeId, token: read };
  };

  const nodeSocket = { hub, checkNodeToken, logger: logger as FastifyBaseLogger };
  takeNodeUpgrades(app, `${API_PREFIX}${NODE_SOCKET_PATH}`, nodeSocket);

  const apiTokenDigest = tokenDigest(options.apiToken);
  // Node daemons, staged-upload fetches, console viewers, event streams and image downloads carry
  // credentials of their own (or the API token), checked per route.
  await app.register(
    async (nodeScope) => {
      nodeSocketRoute(nodeScope, nodeSocket);
      stagedUploadRoutes(nodeScope, { uploads: services.uploads });
      consoleRelayRoute(nodeScope, { consoles: services.consoles, checkNodeToken });
      consoleRoutes(nodeScope, { consoles: services.consoles });
      eventStreamRoutes(nodeScope, {
        live: services.live,
        ...(options.eventStream ? { settings: options.eventStream } : {}),
      });
      await exportRelayRoute(nodeScope, { exports: services.exports, checkNodeToken });
      imageContentRoutes(nodeScope, {
        exports: services.exports,
        isApiToken: (token) => tokenMatches(token, apiTokenDigest),
      });
    },
    { prefix: API_PREFIX },
  );

  // Resumable uploads: partial files in the staging directory (never in a pool, so no scan lists them).
  const tus = new TusUploads({
    uploads: services.uploads,
    directory: join(stagingDir, 'tus'),
    path: `${API_PREFIX}/uploads/tus`,
    logger,
    ...(options.tusExpiryMs !== undefined ? { expiryMs: options.tusExpiryMs } : {}),
    replica: {
      id: services.replicas.replicaId,
      urlOf: async (replicaId) => (await services.replicas.liveReplicas()).find((r) => r.id === replicaId)?.url,
    },
  });
  await app.register(
    async (api) => {
      api.addHook('onRequest', async (request) => {
        const token = bearerToken(request.headers.authorization);
        if (!token || !tokenMatches(token, apiTokenDigest)) {
          throw new QuantixError(
            ErrorCode.UNAUTHORIZED,
            'Missing or wrong API token: send "Authorization: Bearer <token>"',
          );
        }
      });
      idempotentWrites(api, services.idempotency);
      poolRoutes(api, services);
      nodeRoutes(api, {
        quantix,
        hub,
        replicas: services.replicas,
        vms: services.vms,
        nodes: services.nodes,
      });
      replicaRoutes(api, { replicas: services.replicas });
      imageRoutes(api, { quantix, ...services });
      goldenRoutes(api, { golden: services.golden });
      vmRoutes(api, { quantix, vms: services.vms });
      consoleTicketRoutes(api, { consoles: services.consoles, apiPrefix: API_PREFIX });
      eventTicketRoutes(api, { live: services.live, apiPrefix: API_PREFIX });
      imageContentTicketRoutes(api, { exports: services.exports, apiPrefix: API_PREFIX });
      uploadRoutes(api, {
        uploads: services.uploads,
        ...(options.maxUploadBytes !== undefined ? { maxBytes: options.maxUploadBytes } : {}),
      });
      tusRoutes(api, { tus, uploads: services.uploads });
    },
    { prefix: API_PREFIX },
  );

  await serveUi(app, { apiPrefix: API_PREFIX });
  await services.start();
  await mkdir(join(stagingDir, 'tus'), { recursive: true, mode: 0o700 });
  await tus.start();
  let address: string;
  try {
    address = await app.listen({ host: options.host ?? '127.0.0.1', port: options.port ?? 0, backlog: LISTEN_BACKLOG });
  } catch (error) {
    // A port in use (EADDRINUSE) or not ours to bind: nothing is left running behind the error.
    tus.close();
    await services.close();
    await app.close();
    throw error;
  }
  listenUrl = address;
  return {
    ...services,
    app,
    routes,
    url: address,
    async close() {
      tus.close();
      await services.close();
      await app.close();
    },
  };
}
