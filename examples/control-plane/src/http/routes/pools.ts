import type { NodeHub } from '@quantix/control-plane';
import {
  checkPoolDefinition,
  newId,
  POOL_CONTENT_TYPES,
  type PoolRootPolicy,
  type PoolTypeDefinition,
  type Quantix,
  validateNewPool,
  validatePoolPatch,
} from '@quantix/core';
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';

const poolBody = z.object({
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

export interface PoolRouteDeps {
  quantix: Quantix;
  hub: NodeHub;
  /** The pool types the control plane knows (from the storage plugins' PoolTypeToken). */
  poolTypes: readonly PoolTypeDefinition[];
  /** Where pool roots may be; every root a pool's config names is checked against it. */
  poolRoots: PoolRootPolicy;
}

export function poolRoutes(app: FastifyInstance, deps: PoolRouteDeps): void {
  const { repositories } = deps.quantix;
  /**
   * A pool definition before it is stored: a known type, a config its schema accepts (INVALID_INPUT
   * naming the field) and roots inside the policy (POOL_ROOT_NOT_ALLOWED). Nodes check again.
   */
  const check = (pool: { id: string; type: string; config: unknown }) =>
    checkPoolDefinition({ types: deps.poolTypes, policy: deps.poolRoots, pool });
  const api = app.withTypeProvider<ZodTypeProvider>();
  const withStates = async (poolId: string) => ({
    ...(await repositories.pools.require(poolId)),
    nodeStates: await repositories.pools.listNodeStates({ poolId }),
  });

  api.get('/pools', { schema: { tags: ['pools'], summary: 'List pools with their per-node state' } }, async () => {
    const pools = await repositories.pools.list();
    const states = await repositories.pools.listNodeStates({});
    return { pools: pools.map((pool) => ({ ...pool, nodeStates: states.filter((s) => s.poolId === pool.id) })) };
  });

  api.post(
    '/pools',
    { schema: { tags: ['pools'], summary: 'Create a pool', body: poolBody } },
    async (request, reply) => {
      // The id first: an NFS pool's default mount point is named after it.
      const id = request.body.id ?? newId();
      validateNewPool({ ...request.body, id }); // the common fields first (name, id, …), then the config
      check({ id, type: request.body.type, config: request.body.config });
      const pool = await repositories.pools.create({ ...request.body, id });
      await deps.hub.pushPoolsToAll();
      return reply.status(201).send(await withStates(pool.id));
    },
  );

  api.get('/pools/:id', { schema: { tags: ['pools'], params: idParams } }, async (request) =>
    withStates(request.params.id),
  );

  api.patch(
    '/pools/:id',
    { schema: { tags: ['pools'], summary: 'Update a pool', params: idParams, body: poolPatch } },
    async (request) => {
      const { expectedVersion, ...patch } = request.body;
      if (patch.config !== undefined) {
        validatePoolPatch(patch);
        const current = await repositories.pools.require(request.params.id);
        check({ id: current.id, type: current.type, config: patch.config });
      }
      await repositories.pools.update(
        request.params.id,
        patch,
        expectedVersion === undefined ? {} : { expectedVersion },
      );
      await deps.hub.pushPoolsToAll();
      return withStates(request.params.id);
    },
  );

  api.put(
    '/pools/:id/nodes',
    {
      schema: {
        tags: ['pools'],
        summary: 'Assign the pool to exactly these nodes',
        params: idParams,
        body: z.object({ nodeIds: z.array(z.string().min(1)), expectedVersion: z.number().int().optional() }),
      },
    },
    async (request) => {
      const { nodeIds, expectedVersion } = request.body;
      await repositories.pools.update(
        request.params.id,
        { nodeIds },
        expectedVersion === undefined ? {} : { expectedVersion },
      );
      await deps.hub.pushPoolsToAll();
      return withStates(request.params.id);
    },
  );

  api.delete('/pools/:id', { schema: { tags: ['pools'], params: idParams } }, async (request, reply) => {
    await repositories.pools.delete(request.params.id);
    await deps.hub.pushPoolsToAll();
    return reply.status(204).send();
  });
}
