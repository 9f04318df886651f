import type { PoolService } from '@quantix/control-plane';
import { ErrorCode, POOL_CONTENT_TYPES, POOL_NODE_STATUSES } from '@quantix/core';
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { errorResponses, noContent } from '../schemas.js';

const poolBody = z.strictObject({
  id: z.string().min(1).optional(),
  name: z.string().min(1),
  description: z.string().optional(),
  type: z
    .string()
    .min(1)
    .describe('storage backend: local, nfs, …')
    .meta({ examples: ['local', 'nfs'] }),
  config: z
    .record(z.string(), z.unknown())
    .default({})
    .describe('the backend’s own settings')
    .meta({
      examples: [{ path: '/srv/quantix/images' }, { server: 'nfs.example', export: '/srv/nfs/isos' }],
    }),
  contentTypes: z.array(z.enum(POOL_CONTENT_TYPES)).optional(),
  shared: z.boolean().optional(),
  nodeIds: z.array(z.string()).optional(),
  labels: z.record(z.string(), z.string()).optional(),
});

const poolPatch = poolBody
  .omit({ id: true, type: true })
  .partial()
  .extend({
    // No default here: a patch without `config` leaves the pool's config as it is.
    config: z.record(z.string(), z.unknown()).optional().describe('the backend’s whole new config'),
    expectedVersion: z.number().int().optional().describe('optimistic concurrency: the version you read'),
  });

const idParams = z.object({ id: z.string().min(1) });

/** What one node reports about one pool. */
export const poolNodeStateView = z.object({
  poolId: z.string(),
  nodeId: z.string(),
  status: z.enum(POOL_NODE_STATUSES),
  mountPath: z.string().nullable().describe('the pool’s root on that node'),
  capacityBytes: z.number().nullable(),
  availableBytes: z.number().nullable(),
  lastError: z.string().nullable(),
  syncedGeneration: z.number().int().describe('the pool-set generation the node had applied when it reported this'),
  checkedAt: z.date(),
  updatedAt: z.date(),
});

/** A pool's definition with what each of its nodes reports about it. */
export const poolView = z.object({
  id: z.string(),
  name: z.string(),
  description: z.string(),
  type: z.string(),
  config: z.record(z.string(), z.unknown()),
  contentTypes: z.array(z.enum(POOL_CONTENT_TYPES)),
  shared: z.boolean().describe('every assigned node sees the same files (NFS)'),
  nodeIds: z.array(z.string()),
  labels: z.record(z.string(), z.string()),
  version: z.number().int(),
  createdAt: z.date(),
  updatedAt: z.date(),
  nodeStates: z.array(poolNodeStateView),
});

/** Codes of a pool definition that its type or root policy refuses. */
const POOL_DEFINITION_CODES = [
  ErrorCode.ALREADY_EXISTS,
  ErrorCode.NOT_FOUND,
  ErrorCode.PATH_ESCAPES_POOL,
  ErrorCode.POOL_ROOT_NOT_ALLOWED,
  ErrorCode.POOL_ROOT_OVERLAPS,
];

export function poolRoutes(app: FastifyInstance, deps: { pools: PoolService }): void {
  const { pools } = deps;
  const api = app.withTypeProvider<ZodTypeProvider>();

  api.get(
    '/pools',
    {
      schema: {
        operationId: 'listPools',
        tags: ['pools'],
        summary: 'List pools with their per-node state',
        response: { 200: z.object({ pools: z.array(poolView) }), ...errorResponses() },
      },
    },
    async () => ({ pools: await pools.list() }),
  );

  api.post(
    '/pools',
    {
      schema: {
        operationId: 'createPool',
        tags: ['pools'],
        summary: 'Create a pool',
        body: poolBody,
        response: { 201: poolView, ...errorResponses(...POOL_DEFINITION_CODES) },
      },
    },
    async (request, reply) => reply.status(201).send(await pools.create(request.body)),
  );

  api.get(
    '/pools/:id',
    {
      schema: {
        operationId: 'getPool',
        tags: ['pools'],
        summary: 'A pool with its per-node state',
        params: idParams,
        response: { 200: poolView, ...errorResponses(ErrorCode.NOT_FOUND) },
      },
    },
    async (request) => pools.get(request.params.id),
  );

  api.patch(
    '/pools/:id',
    {
      schema: {
        operationId: 'updatePool',
        tags: ['pools'],
        summary: 'Update a pool',
        params: idParams,
        body: poolPatch,
        response: {
          200: poolView,
          ...errorResponses(...POOL_DEFINITION_CODES, ErrorCode.IN_USE, ErrorCode.VERSION_CONFLICT),
        },
      },
    },
    async (request) => {
      const { expectedVersion, ...patch } = request.body;
      return pools.update(request.params.id, patch, expectedVersion === undefined ? {} : { expectedVersion });
    },
  );

  api.put(
    '/pools/:id/nodes',
    {
      schema: {
        operationId: 'assignPoolNodes',
        tags: ['pools'],
        summary:
          'Assign the pool to exactly these nodes (IN_USE while VMs on a node it would leave keep disks or ISOs in it)',
        params: idParams,
        body: z.strictObject({ nodeIds: z.array(z.string().min(1)), expectedVersion: z.number().int().optional() }),
        response: {
          200: poolView,
          ...errorResponses(
            ErrorCode.NOT_FOUND,
            ErrorCode.POOL_ROOT_OVERLAPS,
            ErrorCode.IN_USE,
            ErrorCode.VERSION_CONFLICT,
          ),
        },
      },
    },
    async (request) => {
      const { nodeIds, expectedVersion } = request.body;
      return pools.update(request.params.id, { nodeIds }, expectedVersion === undefined ? {} : { expectedVersion });
    },
  );

  api.delete(
    '/pools/:id',
    {
      schema: {
        operationId: 'deletePool',
        tags: ['pools'],
        summary: 'Delete a pool (refused while images or VMs use it)',
        params: idParams,
        response: { 204: noContent, ...errorResponses(ErrorCode.NOT_FOUND, ErrorCode.IN_USE) },
      },
    },
    async (request, reply) => {
      await pools.delete(request.params.id);
      return reply.status(204).send();
    },
  );
}
