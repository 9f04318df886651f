import { DEFAULT_MAX_UPLOAD_BYTES, type UploadService } from '@quantix/control-plane';
import { ErrorCode, QuantixError } from '@quantix/core';
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';

/** Parses a single `bytes=a-b` range; multi-range requests get the whole file. */
function parseRange(header: string | undefined, size: number): { start: number; end: number } | null {
  const match = /^bytes=(\d*)-(\d*)$/.exec(header ?? '');
  if (!match) return null;
  const [, from, to] = match;
  if (from === '' && to === '') return null;
  const start = from === '' ? Math.max(0, size - Number(to)) : Number(from);
  const end = from === '' || to === '' ? size - 1 : Math.min(size - 1, Number(to));
  return start <= end && start < size ? { start, end } : null;
}

export function uploadRoutes(app: FastifyInstance, deps: { uploads: UploadService; maxBytes?: number }): void {
  const api = app.withTypeProvider<ZodTypeProvider>();
  const maxBytes = deps.maxBytes ?? DEFAULT_MAX_UPLOAD_BYTES;

  // The body stays a stream: an ISO is never held in memory.
  app.addContentTypeParser('application/octet-stream', { bodyLimit: maxBytes }, (_request, payload, done) =>
    done(null, payload),
  );

  api.post(
    '/images/upload',
    {
      bodyLimit: maxBytes,
      schema: {
        tags: ['images'],
        summary: 'Upload an ISO (raw bytes as application/octet-stream) into a pool',
        description:
          'With `sha256`, the bytes must have that SHA-256 (CHECKSUM_MISMATCH, 422, otherwise). Fewer bytes than Content-Length, or a dropped connection, is UPLOAD_INCOMPLETE. Nothing is kept from a refused upload.',
        querystring: z.object({
          poolId: z.string().min(1),
          name: z.string().min(1),
          sha256: z
            .string()
            .regex(/^[0-9a-fA-F]{64}$/, 'must be 64 hexadecimal digits')
            .optional(),
        }),
      },
    },
    async (request, reply) => {
      if (request.headers['content-type'] !== 'application/octet-stream') {
        throw new QuantixError(
          ErrorCode.INVALID_INPUT,
          'Send the ISO as the raw request body with Content-Type: application/octet-stream',
        );
      }
      const length = request.headers['content-length'];
      const image = await deps.uploads.receive({
        poolId: request.query.poolId,
        fileName: request.query.name,
        body: request.body as NodeJS.ReadableStream as import('node:stream').Readable,
        ...(length ? { expectedSize: Number(length) } : {}),
        ...(request.query.sha256 ? { expectedSha256: request.query.sha256 } : {}),
      });
      return reply.status(201).send(image);
    },
  );
}

/** Nodes fetch staged uploads here with the one-time token in the URL (no API token). */
export function stagedUploadRoutes(app: FastifyInstance, deps: { uploads: UploadService }): void {
  const api = app.withTypeProvider<ZodTypeProvider>();
  api.get(
    '/uploads/:id',
    {
      schema: {
        tags: ['images'],
        summary: 'A staged upload, fetched by the node that stores it (one-time token; never the API token)',
        security: [{ uploadToken: [] }],
        params: z.object({ id: z.string().uuid() }),
        querystring: z.object({ token: z.string().max(256).optional() }),
      },
      // Before validation, like every other credential check: no token is 401 whatever else is wrong.
      onRequest: async (request) => {
        if (!(request.query as { token?: unknown }).token) {
          throw new QuantixError(ErrorCode.UNAUTHORIZED, 'A staged upload is fetched with its one-time token');
        }
      },
    },
    async (request, reply) => {
      const staged = await deps.uploads.open(request.params.id, request.query.token ?? '');
      const size = await deps.uploads.size(staged);
      const etag = `"${request.params.id}-${size}"`;
      const ifRange = request.headers['if-range'];
      const range = !ifRange || ifRange === etag ? parseRange(request.headers.range, size) : null;
      reply.header('accept-ranges', 'bytes').header('etag', etag).header('content-type', 'application/octet-stream');
      if (range) {
        reply
          .status(206)
          .header('content-range', `bytes ${range.start}-${range.end}/${size}`)
          .header('content-length', range.end - range.start + 1);
        return reply.send(deps.uploads.stream(staged, range));
      }
      reply.header('content-length', size);
      return reply.send(deps.uploads.stream(staged));
    },
  );
}
