import { type NodeHub, newToken, tokenDigest } from '@quantix/control-plane';
import type { Quantix } from '@quantix/core';
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';

const idParams = z.object({ id: z.string().min(1) });

export function nodeRoutes(app: FastifyInstance, deps: { quantix: Quantix; hub: NodeHub }): void {
  const { repositories } = deps.quantix;
  const api = app.withTypeProvider<ZodTypeProvider>();

  api.get(
    '/nodes',
    { schema: { tags: ['nodes'], summary: 'List nodes and whether they are connected' } },
    async () => ({
      nodes: await repositories.nodes.list(),
    }),
  );

  api.post(
    '/nodes',
    {
      schema: {
        tags: ['nodes'],
        summary: 'Register a node; the answer carries its connection token, shown only this once',
        body: z.object({
          id: z.string().min(1).optional(),
          hostname: z.string().min(1),
          address: z.string().nullable().optional(),
          labels: z.record(z.string(), z.string()).optional(),
        }),
      },
    },
    async (request, reply) => {
      const node = await repositories.nodes.create(request.body);
      const token = newToken();
      await repositories.nodes.setTokenDigest(node.id, tokenDigest(token));
      return reply.status(201).send({ node, token });
    },
  );

  api.get('/nodes/:id', { schema: { tags: ['nodes'], params: idParams } }, async (request) => {
    const node = await repositories.nodes.require(request.params.id);
    const pools = await repositories.pools.list({ nodeId: node.id });
    const states = await repositories.pools.listNodeStates({ nodeId: node.id });
    return {
      ...node,
      connected: deps.hub.isConnected(node.id),
      pools: pools.map((pool) => ({ pool, state: states.find((s) => s.poolId === pool.id) ?? null })),
    };
  });

  api.post(
    '/nodes/:id/token',
    { schema: { tags: ['nodes'], summary: 'Issue a new token (the old one stops working)', params: idParams } },
    async (request) => {
      const token = newToken();
      await repositories.nodes.setTokenDigest(request.params.id, tokenDigest(token));
      return { nodeId: request.params.id, token };
    },
  );

  api.delete('/nodes/:id', { schema: { tags: ['nodes'], params: idParams } }, async (request, reply) => {
    await repositories.nodes.delete(request.params.id);
    return reply.status(204).send();
  });
}
