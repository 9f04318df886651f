import {
  type DownloadService,
  type ImageService,
  listAvailableImages,
  MAX_AVAILABLE_PAGE,
} from '@quantix/control-plane';
import { IMAGE_KINDS, IMAGE_PHASES, type ImageCatalog, type Quantix } from '@quantix/core';
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';

const idParams = z.object({ id: z.string().min(1) });
const csv = <T extends string>(values: readonly [T, ...T[]]) =>
  z
    .string()
    .transform((s) => s.split(',').filter(Boolean))
    .pipe(z.array(z.enum(values)));

const listQuery = z.object({
  kind: z.enum(IMAGE_KINDS).optional(),
  phase: csv(IMAGE_PHASES).optional().describe('one phase or several, comma-separated'),
  poolId: z.string().optional(),
  nodeId: z.string().optional().describe('also show each image’s path on this node'),
  catalogId: z.string().optional(),
  text: z.string().optional(),
  label: z
    .string()
    .regex(/^[^=]+=.*$/, 'key=value')
    .optional(),
  limit: z.coerce.number().int().min(1).max(1000).default(100),
  offset: z.coerce.number().int().min(0).default(0),
});

export function imageRoutes(
  app: FastifyInstance,
  deps: { quantix: Quantix; images: ImageService; downloads: DownloadService; catalog: ImageCatalog },
): void {
  const { repositories } = deps.quantix;
  const api = app.withTypeProvider<ZodTypeProvider>();

  api.get(
    '/images',
    { schema: { tags: ['images'], summary: 'List images', querystring: listQuery } },
    async (request) => {
      const { label, nodeId, phase, ...filter } = request.query;
      const labels = label ? Object.fromEntries([label.split(/=(.*)/s).slice(0, 2) as [string, string]]) : undefined;
      return deps.images.list({ ...filter, ...(phase ? { phase } : {}), ...(labels ? { labels } : {}) }, nodeId);
    },
  );

  api.get(
    '/images/available',
    {
      schema: {
        tags: ['images'],
        summary: 'The VM-creation view for a node: catalog entries merged with images, each with its status',
        querystring: z.object({
          nodeId: z.string().min(1),
          kind: z.enum(IMAGE_KINDS).optional(),
          text: z.string().optional().describe('search in name and OS'),
          limit: z.coerce.number().int().min(1).max(MAX_AVAILABLE_PAGE).default(MAX_AVAILABLE_PAGE),
          offset: z.coerce.number().int().min(0).default(0),
        }),
      },
    },
    async (request) => {
      const { nodeId, kind, text, limit, offset } = request.query;
      await repositories.nodes.require(nodeId);
      const page = await listAvailableImages({
        repositories,
        catalog: deps.catalog,
        nodeId,
        limit,
        offset,
        ...(kind ? { kind } : {}),
        ...(text ? { text } : {}),
      });
      return { nodeId, ...page };
    },
  );

  api.get(
    '/catalog',
    { schema: { tags: ['images'], summary: 'Catalog entries that can be downloaded' } },
    async () => ({
      entries: await deps.catalog.list(),
    }),
  );

  api.get(
    '/images/:id',
    { schema: { tags: ['images'], params: idParams, querystring: z.object({ nodeId: z.string().optional() }) } },
    async (request) => deps.images.get(request.params.id, request.query.nodeId),
  );

  api.post(
    '/images/download',
    {
      schema: {
        tags: ['images'],
        summary: 'Download a catalog image into a pool (on a node that holds the pool)',
        body: z.object({
          catalogId: z.string().min(1),
          poolId: z.string().min(1),
          nodeId: z.string().min(1).optional(),
        }),
      },
    },
    async (request, reply) => reply.status(202).send(await deps.downloads.start(request.body)),
  );

  api.post('/images/:id/retry', { schema: { tags: ['images'], params: idParams } }, async (request, reply) =>
    reply.status(202).send((await deps.downloads.retry(request.params.id)).image),
  );

  api.post(
    '/images/rescan',
    {
      schema: {
        tags: ['images'],
        summary: 'Scan pools for ISOs again (all pools, or one)',
        body: z.object({ poolId: z.string().optional() }).default({}),
      },
    },
    async (request) => deps.images.rescan(request.body.poolId),
  );

  api.delete('/images/:id', { schema: { tags: ['images'], params: idParams } }, async (request, reply) => {
    await deps.images.delete(request.params.id);
    return reply.status(204).send();
  });
}
