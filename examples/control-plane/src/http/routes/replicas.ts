import type { ReplicaRegistry } from '@quantix/control-plane';
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { errorResponses } from '../schemas.js';

const replicaView = z.object({
  id: z.string(),
  url: z.string().nullable().describe('where other replicas reach it; null when it has none'),
  version: z.string(),
  startedAt: z.string(),
  heartbeatAt: z.string(),
  nodeIds: z.array(z.string()).describe('the nodes whose connections it holds'),
  sameKey: z
    .boolean()
    .nullable()
    .describe(
      'whether it was started with the same API token as the replica that answered (false: each refuses the other’s tickets, and a client’s token works on one only); null when either cannot tell',
    ),
});

export function replicaRoutes(app: FastifyInstance, deps: { replicas: ReplicaRegistry }): void {
  const api = app.withTypeProvider<ZodTypeProvider>();
  api.get(
    '/replicas',
    {
      schema: {
        operationId: 'listReplicas',
        tags: ['system'],
        summary: 'Live control-plane replicas, oldest first, with the nodes whose connections each holds',
        response: {
          200: z.object({ self: z.string().describe('the replica that answered'), replicas: z.array(replicaView) }),
          ...errorResponses(),
        },
      },
    },
    async () => ({ self: deps.replicas.replicaId, replicas: await deps.replicas.liveReplicas() }),
  );
}
