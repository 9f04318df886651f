import type { GoldenImageService } from '@quantix/control-plane';
import { ErrorCode } from '@quantix/core';
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { errorResponses, NODE_REQUEST_CODES, noContent } from '../schemas.js';
import { imageRecord } from './images.js';

const idParams = z.object({ id: z.string().min(1) });

const removedRevision = z.object({ revision: z.number().int(), imageId: z.string() });
const goldenCheck = z.object({
  outcome: z
    .enum(['unchanged', 'new-revision', 'not-listed', 'failed'])
    .describe('not-listed: the sums file no longer lists the entry’s file (nothing was downloaded or removed)'),
  message: z.string(),
  checksum: z.string().nullable().describe('what the sums file lists now, `sha256:<hex>`'),
  revision: z.number().int().nullable().describe('the revision this check started downloading'),
  imageId: z.string().nullable(),
  code: z.string().nullable().describe('the error code of a failed or not-listed check'),
  removed: z.array(removedRevision).describe('revisions pruned once the new one was ready'),
});
const goldenFollow = z.object({
  id: z.string().describe('the golden image: the id of the image it was first followed on'),
  catalogId: z.string(),
  poolId: z.string(),
  schedule: z.string().describe('cron, in UTC'),
  keep: z.number().int(),
  nextRunAt: z.date(),
  lastCheckAt: z.date().nullable(),
  lastCheck: goldenCheck.nullable(),
  latestRevision: z.number().int(),
  keptInUse: z
    .array(
      z.object({
        revision: z.number().int(),
        imageId: z.string(),
        vms: z.array(z.object({ id: z.string(), name: z.string(), uses: z.array(z.string()) })),
      }),
    )
    .describe('revisions beyond `keep` that stay because VMs use them'),
  createdAt: z.date(),
  updatedAt: z.date(),
});
const goldenRevision = z.object({
  revision: z.number().int(),
  imageId: z.string(),
  checksum: z.string().nullable(),
  createdAt: z.date(),
  image: imageRecord,
});

/** Golden images that follow upstream: the follow setting, its checks and its revisions. */
export function goldenRoutes(app: FastifyInstance, deps: { golden: GoldenImageService }): void {
  const api = app.withTypeProvider<ZodTypeProvider>();

  api.put(
    '/images/:id/follow',
    {
      schema: {
        operationId: 'followImage',
        tags: ['images'],
        summary:
          'Follow upstream: check the catalog entry’s checksum file on a schedule and download new builds as revisions',
        params: idParams,
        body: z.strictObject({
          schedule: z
            .string()
            .min(1)
            .max(200)
            .describe('cron in UTC: five fields (`0 3 * * *`), or six with seconds first'),
          keep: z.number().int().min(1).max(100).describe('how many ready revisions to keep'),
        }),
        response: {
          200: goldenFollow,
          ...errorResponses(
            ErrorCode.NOT_FOUND,
            ErrorCode.IMAGE_NOT_READY,
            ErrorCode.IMAGE_NO_CHECKSUM,
            ErrorCode.UNSUPPORTED_OPERATION,
          ),
        },
      },
    },
    async (request) => deps.golden.follow(request.params.id, request.body),
  );

  api.get(
    '/golden-images',
    {
      schema: {
        operationId: 'listGoldenImages',
        tags: ['images'],
        summary: 'Every golden image that follows upstream, oldest first, each as GET /images/{id}/follow gives it',
        response: { 200: z.object({ goldenImages: z.array(goldenFollow) }), ...errorResponses() },
      },
    },
    async () => ({ goldenImages: await deps.golden.list() }),
  );

  api.get(
    '/images/:id/follow',
    {
      schema: {
        operationId: 'getImageFollow',
        tags: ['images'],
        summary: 'How an image follows upstream: schedule, next run, last check, revisions kept because VMs use them',
        params: idParams,
        response: { 200: goldenFollow, ...errorResponses(ErrorCode.NOT_FOUND) },
      },
    },
    async (request) => deps.golden.status(request.params.id),
  );

  api.delete(
    '/images/:id/follow',
    {
      schema: {
        operationId: 'unfollowImage',
        tags: ['images'],
        summary: 'Stop following upstream (every revision stays)',
        params: idParams,
        response: { 204: noContent, ...errorResponses(ErrorCode.NOT_FOUND) },
      },
    },
    async (request, reply) => {
      await deps.golden.unfollow(request.params.id);
      return reply.status(204).send();
    },
  );

  api.post(
    '/images/:id/follow/check',
    {
      schema: {
        operationId: 'checkImageUpstream',
        tags: ['images'],
        summary: 'Check upstream now; a new build starts downloading as the next revision',
        params: idParams,
        response: {
          200: goldenCheck,
          ...errorResponses(ErrorCode.NOT_FOUND, ErrorCode.POOL_NOT_ACTIVE_ON_NODE, ...NODE_REQUEST_CODES),
        },
      },
    },
    async (request) => deps.golden.check(request.params.id),
  );

  api.get(
    '/images/:id/revisions',
    {
      schema: {
        operationId: 'listImageRevisions',
        tags: ['images'],
        summary: 'The revisions of a golden image, newest first',
        params: idParams,
        response: { 200: z.object({ revisions: z.array(goldenRevision) }), ...errorResponses(ErrorCode.NOT_FOUND) },
      },
    },
    async (request) => ({ revisions: await deps.golden.revisions(request.params.id) }),
  );
}
