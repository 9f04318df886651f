import type { PoolService } from '@quantix/control-plane';
import { POOL_CONTENT_TYPES } from '@quantix/core';
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

export function poolRoutes(app: FastifyInstance, deps: { pools: PoolService }): void {
  const { pools } = deps;
  const api = app.withTypeProvider<ZodTypeProvider>();

  api.get('/pools', { schema: { tags: ['pools'], summary: 'List pools with their per-node state' } }, async () => ({
    pools: await pools.list(),
  }));

  api.post(
    '/pools',
    { schema: { tags: ['pools'], summary: 'Create a pool', body: poolBody } },
    async (request, reply) => reply.status(201).send(await pools.create(request.body)),
  );

  api.get('/pools/:id', { schema: { tags: ['pools'], params: idParams } }, async (request) =>
    pools.get(request.params.id),
  );

  api.patch(
    '/pools/:id',
    { schema: { tags: ['pools'], summary: 'Update a pool', params: idParams, body: poolPatch } },
    async (request) => {
      const { expectedVersion, ...patch } = request.body;
      return pools.update(request.params.id, patch, expectedVersion === undefined ? {} : { expectedVersion });
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
      return pools.update(request.params.id, { nodeIds }, expectedVersion === undefined ? {} : { expectedVersion });
    },
  );

  api.delete('/pools/:id', { schema: { tags: ['pools'], params: idParams } }, async (request, reply) => {
    await pools.delete(request.params.id);
    return reply.status(204).send();
  });
}
