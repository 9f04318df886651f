import {
  AVAILABILITY,
  COPIED_FROM_LABEL,
  ControlPlaneErrorCode,
  type DownloadService,
  type ImageService,
  listAvailableImages,
  MAX_AVAILABLE_PAGE,
  updateImageSchema,
} from '@quantix/control-plane';
import {
  CHECKSUM_ALGORITHMS,
  ErrorCode,
  FIRMWARE_KINDS,
  IMAGE_FORMATS,
  IMAGE_IMPORT_TARGETS,
  IMAGE_KINDS,
  IMAGE_PHASES,
  IMAGE_PROGRESS_STAGES,
  type ImageCatalog,
  OS_CONFIDENCES,
  OS_FAMILIES,
  POOL_CONTENT_TYPES,
  type Quantix,
} from '@quantix/core';
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { errorResponses, NODE_REQUEST_CODES, noContent } from '../schemas.js';
import { fastSerializerCompiler } from '../serialize.js';

const idParams = z.object({ id: z.string().min(1) });
const csv = <T extends string>(values: readonly [T, ...T[]]) =>
  z
    .string()
    .transform((s) => s.split(',').filter(Boolean))
    .pipe(z.array(z.enum(values)));

// Response schemas: they document the answers in the OpenAPI document and drive their fast
// serializer, which writes only the fields listed here — every field of the types must be in them.
const osInfo = z.object({
  family: z.enum(OS_FAMILIES),
  distribution: z.string().nullable(),
  version: z.string().nullable(),
  arch: z.string().nullable(),
  defaultUser: z.string().nullable(),
  cloudInit: z.boolean(),
  shortId: z.string().nullable().optional(),
  confidence: z.enum(OS_CONFIDENCES).nullable().optional(),
  osinfoVersion: z.string().nullable().optional(),
});
export const progress = z.object({
  bytesDone: z.number(),
  bytesTotal: z.number().nullable(),
  percent: z.number().nullable(),
  stage: z.enum(IMAGE_PROGRESS_STAGES).optional(),
});
const requirements = z.object({
  minCpu: z.number(),
  minMemoryMiB: z.number(),
  minDiskGiB: z.number(),
  firmware: z.enum(FIRMWARE_KINDS),
});
const checksum = z.object({ algorithm: z.enum(CHECKSUM_ALGORITHMS), value: z.string() });
export const imageError = z.object({ code: z.string(), message: z.string(), retryable: z.boolean() });
const imageView = z.object({
  id: z.string(),
  name: z.string(),
  description: z.string(),
  labels: z.record(z.string(), z.string()),
  kind: z.enum(IMAGE_KINDS),
  format: z.enum(IMAGE_FORMATS).nullable(),
  os: osInfo,
  requirements,
  catalogId: z.string().nullable(),
  phase: z.enum(IMAGE_PHASES),
  progress: progress.nullable(),
  sizeBytes: z.number().nullable(),
  virtualSizeBytes: z.number().nullable(),
  checksum: checksum.nullable(),
  error: imageError.nullable(),
  location: z.object({ poolId: z.string(), relPath: z.string() }).nullable(),
  nodeId: z.string().nullable(),
  fileModifiedAt: z.date().nullable(),
  version: z.number().int(),
  createdAt: z.date(),
  updatedAt: z.date(),
  path: z.string().nullable().describe('the file’s path on the node asked about (nodeId); null without one'),
  copiedFrom: z
    .string()
    .nullable()
    .optional()
    .describe('the image this one is a copy of (label quantix.io/copied-from); null when it is none'),
});
/** An image as a write answers it: without a node's path. */
export const imageRecord = imageView.omit({ path: true });
const imagePage = z.object({
  images: z.array(imageView),
  total: z.number().int().describe('images matching the filter, on every page'),
  nextCursor: z.string().nullable().describe('pass as `after` for the next page; null on the last page'),
});
const availableImage = z.object({
  key: z.string(),
  catalogId: z.string().nullable(),
  imageId: z.string().nullable(),
  name: z.string(),
  kind: z.enum(IMAGE_KINDS),
  os: osInfo,
  status: z.enum(AVAILABILITY),
  selectable: z.boolean(),
  reason: z.string().nullable(),
  poolId: z.string().nullable(),
  relPath: z.string().nullable(),
  path: z.string().nullable(),
  progress: progress.nullable(),
  error: imageError.nullable(),
  sizeBytes: z.number().nullable(),
  sourceUrl: z.string().nullable(),
});
const availablePage = z.object({ nodeId: z.string(), images: z.array(availableImage), total: z.number().int() });
const catalogEntry = z.object({
  id: z.string().describe('stable across catalog versions; an image downloaded from it has it as catalogId'),
  name: z.string(),
  description: z.string(),
  kind: z.enum(IMAGE_KINDS),
  format: z.enum(IMAGE_FORMATS),
  os: osInfo,
  requirements,
  sourceUrl: z.string(),
  checksum: checksum.nullable(),
  checksumUrl: z.string().nullable(),
  checksumAlgorithm: z.enum(CHECKSUM_ALGORITHMS).nullable(),
  sizeBytes: z.number().nullable(),
});
const scannedContent = z.enum(POOL_CONTENT_TYPES).describe('what was scanned for: ISOs, or disk images');
const rescanResult = z.object({
  scanned: z.array(
    z.object({
      poolId: z.string(),
      nodeId: z.string(),
      content: scannedContent,
      files: z.number().int().describe('the files of this content type the node found and took'),
      skipped: z
        .array(z.object({ relPath: z.string(), reason: z.string() }))
        .describe(
          'paths the node did not look into (unreadable, too deep, a symbolic link): what is under them is kept',
        ),
      invalid: z
        .array(z.object({ relPath: z.string(), code: z.string(), message: z.string() }))
        .describe(
          'files left out, with why: not what the content type says (a text file named .iso), a disk image naming other files',
        ),
    }),
  ),
  failed: z.array(
    z.object({ poolId: z.string(), nodeId: z.string(), content: scannedContent, code: z.string(), error: z.string() }),
  ),
});

/** The answers of the image routes, for tests that check the serializer keeps every field. */
export const imageResponses = { imageView, imagePage, availableImage, availablePage };

const listQuery = z.strictObject({
  kind: z.enum(IMAGE_KINDS).optional(),
  phase: csv(IMAGE_PHASES).optional().describe('one phase or several, comma-separated'),
  poolId: z.string().optional(),
  nodeId: z.string().optional().describe('also show each image’s path on this node'),
  catalogId: z.string().optional(),
  text: z
    .string()
    .optional()
    .describe(
      'search in name, description, OS distribution, labels and the file’s path in its pool (case-insensitive substring)',
    ),
  label: z
    .string()
    .regex(/^[^=]+=.*$/, 'key=value')
    .optional(),
  limit: z.coerce.number().int().min(1).max(1000).default(100),
  offset: z.coerce.number().int().min(0).default(0),
  after: z
    .string()
    .min(1)
    .max(512)
    .optional()
    .describe('the nextCursor of the previous page: the page after it, as fast at any depth as the first'),
});

/** An image with the image it was copied from, as its label records it. */
function withCopiedFrom<T extends { labels: Record<string, string> }>(image: T): T & { copiedFrom: string | null } {
  return { ...image, copiedFrom: image.labels[COPIED_FROM_LABEL] ?? null };
}

/**
 * withCopiedFrom for the rows of a page, which are this request's own: set on each in place
 * rather than copied (a page of 50 spreads cost a listing more than its serialization).
 */
function withCopiedFromEach<T extends { labels: Record<string, string> }>(
  images: T[],
): (T & { copiedFrom: string | null })[] {
  for (const image of images as (T & { copiedFrom: string | null })[]) {
    image.copiedFrom = image.labels[COPIED_FROM_LABEL] ?? null;
  }
  return images as (T & { copiedFrom: string | null })[];
}

export function imageRoutes(
  app: FastifyInstance,
  deps: { quantix: Quantix; images: ImageService; downloads: DownloadService; catalog: ImageCatalog },
): void {
  const { repositories } = deps.quantix;
  const api = app.withTypeProvider<ZodTypeProvider>();

  api.get(
    '/images',
    {
      schema: {
        operationId: 'listImages',
        tags: ['images'],
        summary: 'List images',
        querystring: listQuery,
        response: { 200: imagePage, ...errorResponses() },
      },
      serializerCompiler: fastSerializerCompiler,
    },
    async (request) => {
      const { label, nodeId, phase, ...filter } = request.query;
      const labels = label ? Object.fromEntries([label.split(/=(.*)/s).slice(0, 2) as [string, string]]) : undefined;
      const page = await deps.images.list(
        { ...filter, ...(phase ? { phase } : {}), ...(labels ? { labels } : {}) },
        nodeId,
      );
      return { ...page, images: withCopiedFromEach(page.images) };
    },
  );

  api.get(
    '/images/available',
    {
      schema: {
        operationId: 'listAvailableImages',
        tags: ['images'],
        summary: 'The VM-creation view for a node: catalog entries merged with images, each with its status',
        querystring: z.strictObject({
          nodeId: z.string().min(1),
          kind: z.enum(IMAGE_KINDS).optional(),
          text: z
            .string()
            .optional()
            .describe(
              'search in name, description, OS distribution, labels and the file’s path in its pool (case-insensitive substring)',
            ),
          limit: z.coerce.number().int().min(1).max(MAX_AVAILABLE_PAGE).default(MAX_AVAILABLE_PAGE),
          offset: z.coerce.number().int().min(0).default(0),
        }),
        response: { 200: availablePage, ...errorResponses(ErrorCode.NOT_FOUND) },
      },
      serializerCompiler: fastSerializerCompiler,
    },
    async (request) => {
      const { nodeId, kind, text, limit, offset } = request.query;
      const { nodeFound, ...page } = await listAvailableImages({
        repositories,
        catalog: deps.catalog,
        nodeId,
        limit,
        offset,
        ...(kind ? { kind } : {}),
        ...(text ? { text } : {}),
      });
      // The view's statement says whether the node exists; the repository says how it is missing.
      if (!nodeFound) await repositories.nodes.require(nodeId);
      return { nodeId, ...page };
    },
  );

  api.get(
    '/catalog',
    {
      schema: {
        operationId: 'listCatalog',
        tags: ['images'],
        summary: 'Catalog entries that can be downloaded',
        response: { 200: z.object({ entries: z.array(catalogEntry) }), ...errorResponses() },
      },
    },
    async () => ({
      entries: await deps.catalog.list(),
    }),
  );

  api.get(
    '/images/:id',
    {
      schema: {
        operationId: 'getImage',
        tags: ['images'],
        summary: 'An image, with its path on a node when one is named',
        params: idParams,
        querystring: z.strictObject({
          nodeId: z.string().optional().describe('also show the image’s path on this node'),
        }),
        response: { 200: imageView, ...errorResponses(ErrorCode.NOT_FOUND) },
      },
      serializerCompiler: fastSerializerCompiler,
    },
    async (request) => withCopiedFrom(await deps.images.get(request.params.id, request.query.nodeId)),
  );

  api.patch(
    '/images/:id',
    {
      schema: {
        operationId: 'updateImage',
        tags: ['images'],
        summary: 'Change an image’s name, description, labels or requirements; what is left out stays',
        description:
          'A merge patch: a label given as null is removed, each requirement left out stays. Requirements bind VMs made after (422 BELOW_IMAGE_REQUIREMENTS below them). 409 IMAGE_BUSY while the image waits for its download, is downloaded, verified or deleted; 400 INVALID_INPUT for a label of Quantix’s own (quantix.io); 409 VERSION_CONFLICT when expectedVersion is not the image’s.',
        params: idParams,
        body: updateImageSchema,
        response: {
          200: imageRecord.describe('The image as changed'),
          ...errorResponses(
            ErrorCode.INVALID_INPUT,
            ErrorCode.NOT_FOUND,
            ErrorCode.VERSION_CONFLICT,
            ControlPlaneErrorCode.IMAGE_BUSY,
          ),
        },
      },
    },
    async (request) => withCopiedFrom(await deps.images.update(request.params.id, request.body)),
  );

  api.post(
    '/images/download',
    {
      schema: {
        operationId: 'downloadImage',
        tags: ['images'],
        summary: 'Download a catalog image into a pool (on a node that holds the pool)',
        body: z.strictObject({
          catalogId: z.string().min(1),
          poolId: z.string().min(1),
          nodeId: z.string().min(1).optional(),
        }),
        response: {
          202: imageRecord.describe('The image, downloading: follow its phase and progress with getImage'),
          ...errorResponses(
            ErrorCode.NOT_FOUND,
            ErrorCode.ALREADY_EXISTS,
            ErrorCode.POOL_NOT_ACTIVE_ON_NODE,
            ErrorCode.UNSUPPORTED_OPERATION,
            ...NODE_REQUEST_CODES,
          ),
        },
      },
    },
    async (request, reply) => reply.status(202).send(withCopiedFrom(await deps.downloads.start(request.body))),
  );

  api.post(
    '/images/:id/copy',
    {
      schema: {
        operationId: 'copyImage',
        tags: ['images'],
        summary:
          'Copy a ready image into another pool: on the node when it reaches both pools, else fetched by the target node from this control plane (resumable, verified against the checksum)',
        params: idParams,
        body: z.strictObject({
          poolId: z.string().min(1),
          nodeId: z.string().min(1).optional(),
          name: z.string().min(1).max(255).optional(),
        }),
        response: {
          202: imageRecord.describe(
            'The copy, pending: a new image (copiedFrom names the source); follow it with getImage',
          ),
          ...errorResponses(
            ErrorCode.INVALID_INPUT,
            ErrorCode.NOT_FOUND,
            ErrorCode.IMAGE_NOT_READY,
            ErrorCode.IMAGE_NO_LOCATION,
            ErrorCode.IMAGE_NO_CHECKSUM,
            ErrorCode.ALREADY_EXISTS,
            ErrorCode.POOL_NOT_ACTIVE_ON_NODE,
            ErrorCode.POOL_NO_SPACE,
            ErrorCode.UNSUPPORTED_OPERATION,
            ...NODE_REQUEST_CODES,
          ),
        },
      },
    },
    async (request, reply) => {
      const { poolId, nodeId, name } = request.body;
      const image = await deps.downloads.start({
        copyOf: request.params.id,
        poolId,
        ...(nodeId ? { nodeId } : {}),
        ...(name ? { name } : {}),
      });
      return reply.status(202).send(withCopiedFrom(image));
    },
  );

  api.post(
    '/images/import',
    {
      schema: {
        operationId: 'importImage',
        tags: ['images'],
        summary:
          'Import a disk image (VMDK, VHD, VHDX, VDI, raw, qcow2, maybe xz/gzip/zstd/bzip2-compressed) or an OVA from a URL into a pool, converted to qcow2 or raw on the node',
        body: z.strictObject({
          url: z.string().url().max(8192),
          /** The SHA-256 of the file as downloaded (before conversion): nodes refuse a download they cannot verify. */
          sha256: z
            .string({
              error: 'an import is verified: give the SHA-256 of the file as downloaded (sha256sum prints it)',
            })
            .regex(/^[0-9a-fA-F]{64}$/, 'must be 64 hex digits'),
          poolId: z.string().min(1),
          format: z.enum(IMAGE_IMPORT_TARGETS).default('qcow2'),
          /** What the file is, in qemu-img's names; the content must match. Default: what the URL's file name says. */
          sourceFormat: z.enum(['raw', 'qcow2', 'vmdk', 'vhdx', 'vpc', 'vdi']).optional(),
          keepOriginal: z.boolean().default(false),
          name: z.string().min(1).max(255).optional(),
          nodeId: z.string().min(1).optional(),
        }),
        response: {
          202: imageRecord.describe(
            'The image, downloading then converting: follow its phase and progress with getImage',
          ),
          ...errorResponses(
            ErrorCode.INVALID_INPUT,
            ErrorCode.NOT_FOUND,
            ErrorCode.ALREADY_EXISTS,
            ErrorCode.POOL_NOT_ACTIVE_ON_NODE,
            ErrorCode.UNSUPPORTED_OPERATION,
            ...NODE_REQUEST_CODES,
          ),
        },
      },
    },
    async (request, reply) => {
      const { url, sha256, poolId, format, sourceFormat, keepOriginal, name, nodeId } = request.body;
      const image = await deps.downloads.start({
        poolId,
        ...(nodeId ? { nodeId } : {}),
        ...(name ? { name } : {}),
        source: {
          url,
          checksum: { algorithm: 'sha256', value: sha256.toLowerCase() },
          import: { format, keepOriginal, claimedFormat: sourceFormat ?? null },
        },
      });
      return reply.status(202).send(image);
    },
  );

  api.post(
    '/images/:id/retry',
    {
      schema: {
        operationId: 'retryImageDownload',
        tags: ['images'],
        summary: 'Download an image that failed again, resuming from what is already there',
        params: idParams,
        response: {
          202: imageRecord.describe('The image, downloading again'),
          ...errorResponses(
            ErrorCode.NOT_FOUND,
            ErrorCode.VERSION_CONFLICT,
            ErrorCode.POOL_NOT_ACTIVE_ON_NODE,
            ...NODE_REQUEST_CODES,
          ),
        },
      },
    },
    async (request, reply) => reply.status(202).send((await deps.downloads.retry(request.params.id)).image),
  );

  api.post(
    '/images/:id/cancel',
    {
      schema: {
        operationId: 'cancelImageDownload',
        tags: ['images'],
        summary:
          'Stop a download, import or copy: the image becomes error DOWNLOAD_CANCELLED; what arrived stays for a retry to resume from, or goes when the image is deleted',
        description:
          'An image that is not being downloaded is answered as it is. Whichever replica runs the download, it stops: at once on the replica that answers, at its next progress write on another.',
        params: idParams,
        response: {
          200: imageRecord.describe('The image: error DOWNLOAD_CANCELLED, or as it was when it was not downloading'),
          ...errorResponses(ErrorCode.NOT_FOUND, ErrorCode.VERSION_CONFLICT),
        },
      },
    },
    async (request) => withCopiedFrom(await deps.downloads.cancel(request.params.id)),
  );

  api.post(
    '/images/rescan',
    {
      schema: {
        operationId: 'rescanImages',
        tags: ['images'],
        summary: 'Scan pools again for ISOs and disk images added or removed by hand (all pools, or one)',
        body: z.strictObject({ poolId: z.string().optional() }).default({}),
        response: {
          200: rescanResult.describe('Each pool, node and content type scanned, and each that failed with its code'),
          ...errorResponses(ErrorCode.NOT_FOUND),
        },
      },
    },
    async (request) => deps.images.rescan(request.body.poolId),
  );

  api.post(
    '/images/:id/verify',
    {
      schema: {
        operationId: 'verifyImage',
        tags: ['images'],
        summary:
          'Read a ready image’s file whole on its node and hold it to the recorded checksum: recorded when there was none, else compared',
        description:
          'The answer waits for the whole read. A file that is not the one recorded is answered `mismatch` and the image goes to `error` (IMAGE_FILE_MISMATCH): no VM is made from it until a verify finds the recorded bytes again (the file put back), `accept` records the file’s checksum in its place, or a retry downloads it again; either verify makes it ready. A copy of an image with no checksum (a file a scan found) does this first.',
        params: idParams,
        body: z
          .strictObject({
            accept: z
              .boolean()
              .optional()
              .describe('true: a file whose checksum is not the one recorded has its own recorded instead'),
          })
          .default({}),
        response: {
          200: z.object({
            image: imageRecord.describe('The image, as it is after the verify'),
            outcome: z
              .enum(['recorded', 'matches', 'mismatch', 'accepted'])
              .describe(
                'recorded: none was, the file’s is now; matches: the file is the one recorded; mismatch: it is not (the image is in error now); accepted: it was not, the file’s is recorded now',
              ),
            checksum: checksum.describe('the file’s checksum, read now'),
            recorded: checksum.nullable().describe('the checksum recorded before (null: none was)'),
            nodeId: z.string().describe('the node that read the file'),
          }),
          ...errorResponses(
            ErrorCode.NOT_FOUND,
            ErrorCode.IMAGE_NOT_READY,
            ErrorCode.IMAGE_NO_LOCATION,
            ErrorCode.IMAGE_FILE_MISSING,
            ErrorCode.IMAGE_FILE_CHANGED,
            ErrorCode.VERSION_CONFLICT,
            ErrorCode.POOL_NOT_ACTIVE_ON_NODE,
            ErrorCode.UNSUPPORTED_OPERATION,
            ...NODE_REQUEST_CODES,
          ),
        },
      },
    },
    async (request) => {
      const verified = await deps.images.verify(request.params.id, { accept: request.body.accept === true });
      return { ...verified, image: withCopiedFrom(verified.image) };
    },
  );

  api.delete(
    '/images/:id',
    {
      schema: {
        operationId: 'deleteImage',
        tags: ['images'],
        summary: 'Delete an image and its file (refused while a VM uses it)',
        params: idParams,
        querystring: z.strictObject({
          keepFile: z
            .enum(['true', 'false'])
            .optional()
            .describe(
              'true: forget the image and leave its file where it is (a pool no node can reach); a VM using it still refuses',
            ),
        }),
        response: {
          204: noContent,
          ...errorResponses(
            ErrorCode.NOT_FOUND,
            ErrorCode.IN_USE,
            ErrorCode.DELETE_FAILED,
            ErrorCode.POOL_NOT_ACTIVE_ON_NODE,
            ...NODE_REQUEST_CODES,
          ),
        },
      },
    },
    async (request, reply) => {
      await deps.images.delete(request.params.id, { keepFile: request.query.keepFile === 'true' });
      return reply.status(204).send();
    },
  );
}
