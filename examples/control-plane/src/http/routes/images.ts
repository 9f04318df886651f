import {
  type DownloadService,
  listAvailableImages,
  MAX_AVAILABLE_PAGE,
  type NodeHub,
  pathOnNode,
} from '@quantix/control-plane';
import {
  ErrorCode,
  IMAGE_KINDS,
  IMAGE_PHASES,
  type Image,
  type ImageCatalog,
  type Quantix,
  QuantixError,
  vmsUsingImage,
} from '@quantix/core';
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
  deps: { quantix: Quantix; hub: NodeHub; downloads: DownloadService; catalog: ImageCatalog },
): void {
  const { repositories } = deps.quantix;
  const api = app.withTypeProvider<ZodTypeProvider>();

  /** The image with its path on `nodeId` when its pool is active there. */
  const withPath = async (images: Image[], nodeId: string | undefined) => {
    if (!nodeId) return images.map((image) => ({ ...image, path: null as string | null }));
    const states = new Map((await repositories.pools.listNodeStates({ nodeId })).map((s) => [s.poolId, s]));
    return images.map((image) => {
      const state = image.location ? states.get(image.location.poolId) : undefined;
      const onThisNode = !image.nodeId || image.nodeId === nodeId;
      const path =
        image.location && state?.status === 'active' && state.mountPath && onThisNode
          ? pathOnNode(state.mountPath, image.location.relPath)
          : null;
      return { ...image, path };
    });
  };

  api.get(
    '/images',
    { schema: { tags: ['images'], summary: 'List images', querystring: listQuery } },
    async (request) => {
      const { label, nodeId, phase, limit, offset, ...filter } = request.query;
      const labels = label ? Object.fromEntries([label.split(/=(.*)/s).slice(0, 2) as [string, string]]) : undefined;
      const query = { ...filter, ...(phase ? { phase } : {}), ...(labels ? { labels } : {}) };
      const [images, total] = await Promise.all([
        repositories.images.list({ ...query, limit, offset }),
        repositories.images.count(query),
      ]);
      return { images: await withPath(images, nodeId), total };
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
    async (request) => {
      const [image] = await withPath([await repositories.images.require(request.params.id)], request.query.nodeId);
      return image;
    },
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
    async (request) => {
      const pools = request.body.poolId
        ? [await repositories.pools.require(request.body.poolId)]
        : await repositories.pools.list();
      const scanned: { poolId: string; nodeId: string }[] = [];
      const failed: { poolId: string; nodeId: string; error: string }[] = [];
      for (const pool of pools.filter((p) => p.contentTypes.includes('iso'))) {
        const states = await repositories.pools.listNodeStates({ poolId: pool.id });
        const targets = states
          .filter((s) => s.status === 'active' && deps.hub.isConnected(s.nodeId))
          .map((s) => s.nodeId);
        // A shared pool has the same files everywhere: one node is enough.
        for (const nodeId of pool.shared ? targets.slice(0, 1) : targets) {
          try {
            await deps.hub.request(
              nodeId,
              { op: 'pool.scan', poolId: pool.id, content: 'iso' },
              { timeoutMs: 300_000 },
            );
            scanned.push({ poolId: pool.id, nodeId });
          } catch (error) {
            failed.push({ poolId: pool.id, nodeId, error: (error as Error).message });
          }
        }
      }
      return { scanned, failed };
    },
  );

  api.delete('/images/:id', { schema: { tags: ['images'], params: idParams } }, async (request, reply) => {
    const image = await repositories.images.require(request.params.id);
    if (deps.downloads.isRunning(image.id)) {
      throw new QuantixError(
        ErrorCode.IN_USE,
        `Image ${image.name} is being downloaded; wait for it to finish or fail`,
      );
    }
    // Any VM that boots from it, is backed by it, holds it in a drive, or owns its file.
    const users = vmsUsingImage(await repositories.vms.list(), image);
    if (users.length > 0) {
      throw new QuantixError(
        ErrorCode.IN_USE,
        `Image ${image.name} is in use by ${users.length} VM(s): ${users.map((u) => `${u.vm.name} (${u.uses.join(', ')})`).join('; ')}; delete them or detach it first`,
        { details: { vms: users.map((u) => ({ id: u.vm.id, name: u.vm.name, uses: u.uses })) } },
      );
    }
    const deleting = await repositories.images.update(
      image.id,
      { phase: 'deleting' },
      { expectedVersion: image.version },
    );
    if (image.location && image.phase !== 'missing') {
      const states = await repositories.pools.listNodeStates({ poolId: image.location.poolId });
      const nodeId = states.find(
        (s) => s.status === 'active' && deps.hub.isConnected(s.nodeId) && (!image.nodeId || s.nodeId === image.nodeId),
      )?.nodeId;
      try {
        if (!nodeId)
          throw new QuantixError(
            ErrorCode.NODE_NOT_CONNECTED,
            `No connected node holds pool ${image.location.poolId}; the file cannot be removed now`,
          );
        await deps.hub.request(nodeId, { op: 'image.remove', ...image.location }, { timeoutMs: 60_000 });
      } catch (error) {
        await repositories.images.update(image.id, {
          phase: 'error',
          error: {
            code: (error as QuantixError).code ?? ErrorCode.DELETE_FAILED,
            message: `could not remove the file: ${(error as Error).message}`,
            retryable: true,
          },
        });
        throw error;
      }
    }
    await repositories.images.delete(image.id, { expectedVersion: deleting.version });
    return reply.status(204).send();
  });
}
