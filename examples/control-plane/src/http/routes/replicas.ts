import type { ReplicaRegistry } from '@quantix/control-plane';
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';

export function replicaRoutes(app: FastifyInstance, deps: { replicas: ReplicaRegistry }): void {
  const api = app.withTypeProvider<ZodTypeProvider>();
  api.get(
    '/replicas',
    {
      schema: {
        tags: ['system'],
        summary: 'Live control-plane replicas, oldest first, with the nodes whose connections each holds',
      },
    },
    async () => ({ self: deps.replicas.replicaId, replicas: await deps.replicas.liveReplicas() }),
  );
}
