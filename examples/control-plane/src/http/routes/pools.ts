import { POOL_CONTENT_TYPES, type Quantix } from '@quantix/core';
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { NodeHub } from '../../hub/node-hub.js';

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
    expectedVersion: z.number().int().optional().describe('optimistic concurrency: the version you read'),
  });

const idParams = z.object({ id: z.string().min(1) });

export function poolRoutes(app: FastifyInstance, deps: { quantix: Quantix; hub: NodeHub }): void {
  const { repositories } = deps.quantix;
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
      const pool = await repositories.pools.create(request.body);
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
