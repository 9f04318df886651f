import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fastifySwagger from '@fastify/swagger';
import fastifyWebsocket from '@fastify/websocket';
import {
  CatalogRegistry,
  createPoolRootPolicy,
  ErrorCode,
  ImageCatalogToken,
  type PoolRootPolicy,
  type PoolTypeDefinition,
  PoolTypeToken,
  poolTypesByName,
  type Quantix,
} from '@quantix/core';
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import { jsonSchemaTransform, serializerCompiler, validatorCompiler } from 'fastify-type-provider-zod';
import { handleError } from './http/errors.js';
import { imageRoutes } from './http/routes/images.js';
import { nodeRoutes } from './http/routes/nodes.js';
import { poolRoutes } from './http/routes/pools.js';
import { uploadRoutes } from './http/routes/uploads.js';
import { vmRoutes } from './http/routes/vms.js';
import { serveUi } from './http/ui.js';
import { NodeHub } from './hub/node-hub.js';
import { bearerToken, tokenMatches } from './hub/tokens.js';
import { DownloadService } from './services/downloads.js';
import { UploadService } from './services/uploads.js';
import { VmService } from './services/vms.js';

export const API_PREFIX = '/api/v1';
const PUBLIC_ROUTES = new Set([`${API_PREFIX}/healthz`, `${API_PREFIX}/openapi.json`]);

export interface ControlPlaneOptions {
  /** A Quantix instance (its database, repositories, plugins: catalogs). Not closed by the control plane. */
  quantix: Quantix;
  /** The bearer token every API request must carry. */
  apiToken: string;
  host?: string;
  /** 0 picks a free port. */
  port?: number;
  /** How long a busy download waits for a node holding its pool after a restart. */
  resumeGraceMs?: number;
  /** Largest ISO upload, in bytes (default 16 GiB). */
  maxUploadBytes?: number;
  /** Where uploads wait until a node has fetched them (default: a directory under the OS temp dir). */
  stagingDir?: string;
  /** The URL nodes reach this control plane at (default: the listen address). */
  publicUrl?: string;
  /** Pool types pools may have (default: what the instance's plugins provide through PoolTypeToken). */
  poolTypes?: readonly PoolTypeDefinition[];
  /** Where pool roots may be (default: createPoolRootPolicy(): /var/lib/quantix and /srv). */
  poolRoots?: PoolRootPolicy;
}

export interface ControlPlane {
  app: FastifyInstance;
  hub: NodeHub;
  downloads: DownloadService;
  vms: VmService;
  uploads: UploadService;
  /** http://host:port */
  url: string;
  close(): Promise<void>;
}

/**
 * The control plane: HTTP API under /api/v1 (bearer token), OpenAPI document, and the node hub
 * where node daemons connect over WebSocket with their own tokens.
 */
export async function startControlPlane(options: ControlPlaneOptions): Promise<ControlPlane> {
  const { quantix } = options;
  const logger = quantix.logger.child({ component: 'control-plane' });
  const poolTypes = options.poolTypes ?? quantix.getAll(PoolTypeToken);
  poolTypesByName(poolTypes); // two definitions of one type fail start-up
  const poolRoots = options.poolRoots ?? createPoolRootPolicy();
  const catalog = new CatalogRegistry({ catalogs: quantix.getAll(ImageCatalogToken) });
  const hub = new NodeHub({ repositories: quantix.repositories, events: quantix.events, logger });
  const downloads = new DownloadService({
    repositories: quantix.repositories,
    hub,
    catalog,
    events: quantix.events,
    logger,
    ...(options.resumeGraceMs !== undefined ? { resumeGraceMs: options.resumeGraceMs } : {}),
  });
  const vms = new VmService({ repositories: quantix.repositories, hub, events: quantix.events, logger });
  let listenUrl = '';
  const uploads = new UploadService({
    repositories: quantix.repositories,
    hub,
    logger,
    stagingDir: options.stagingDir ?? join(tmpdir(), 'quantix-uploads'),
    publicUrl: () => options.publicUrl ?? listenUrl,
    ...(options.maxUploadBytes !== undefined ? { maxBytes: options.maxUploadBytes } : {}),
  });

  const app = Fastify({ loggerInstance: logger as FastifyBaseLogger, bodyLimit: 1024 * 1024 });
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  app.setErrorHandler(handleError);
  await app.register(fastifySwagger, {
    openapi: {
      info: { title: 'Quantix control plane', version: '1.0.0', description: 'Images, storage pools, nodes and VMs.' },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
      security: [{ bearer: [] }],
    },
    transform: jsonSchemaTransform,
  });
  await app.register(fastifyWebsocket, { options: { maxPayload: 64 * 1024 * 1024 } });

  app.addHook('onRequest', async (request, reply) => {
    const path = request.url.split('?')[0] ?? '';
    // The node socket and staged uploads carry their own tokens.
    if (
      !path.startsWith(API_PREFIX) ||
      PUBLIC_ROUTES.has(path) ||
      path === `${API_PREFIX}/nodes/connect` ||
      path.startsWith(`${API_PREFIX}/uploads/`)
    )
      return;
    const token = bearerToken(request.headers.authorization);
    if (token !== options.apiToken) {
      return reply.status(401).send({
        error: {
          code: ErrorCode.UNAUTHORIZED,
          message: 'Missing or wrong API token: send "Authorization: Bearer <token>"',
          details: {},
        },
      });
    }
  });

  await app.register(
    async (api) => {
      api.get('/healthz', async () => {
        await quantix.database.knex.raw('select 1');
        return { status: 'ok', database: quantix.database.client, connectedNodes: hub.connectedNodeIds().length };
      });
      api.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());
      api.get(
        '/nodes/connect',
        {
          websocket: true,
          schema: { hide: true },
          // The node's token is checked before the upgrade: a wrong token never gets a socket.
          preValidation: async (request, reply) => {
            const nodeId = String(request.headers['x-quantix-node-id'] ?? '');
            const token = bearerToken(request.headers.authorization);
            const digest = nodeId ? await quantix.repositories.nodes.getTokenDigest(nodeId).catch(() => null) : null;
            if (!token || !tokenMatches(token, digest)) {
              return reply.status(401).send({
                error: { code: ErrorCode.UNAUTHORIZED, message: 'unknown node or wrong node token', details: {} },
              });
            }
          },
        },
        (socket, request) => hub.attach(String(request.headers['x-quantix-node-id']), socket),
      );
      poolRoutes(api, { quantix, hub, poolTypes, poolRoots });
      nodeRoutes(api, { quantix, hub });
      imageRoutes(api, { quantix, hub, downloads, catalog });
      vmRoutes(api, { quantix, vms });
      uploadRoutes(api, {
        uploads,
        ...(options.maxUploadBytes !== undefined ? { maxBytes: options.maxUploadBytes } : {}),
      });
    },
    { prefix: API_PREFIX },
  );

  await serveUi(app, { apiPrefix: API_PREFIX });
  await downloads.reconcileOnStart();
  const address = await app.listen({ host: options.host ?? '127.0.0.1', port: options.port ?? 0 });
  listenUrl = address;
  return {
    app,
    hub,
    downloads,
    vms,
    uploads,
    url: address,
    async close() {
      downloads.close();
      await hub.close();
      await app.close();
    },
  };
}
