import type { Readable } from 'node:stream';
import { ControlPlaneErrorCode, DEFAULT_MAX_UPLOAD_BYTES, type UploadService } from '@quantix/control-plane';
import { ErrorCode, QuantixError } from '@quantix/core';
import { ImagesIsoErrorCode } from '@quantix/images-iso';
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { parseByteRange } from '../ranges.js';
import { errorResponses } from '../schemas.js';
import { imageRecord } from './images.js';

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
        operationId: 'uploadImage',
        tags: ['images'],
        summary: 'Upload an ISO (raw bytes as application/octet-stream) into a pool',
        description:
          'With `sha256`, the bytes must have that SHA-256 (CHECKSUM_MISMATCH, 422, otherwise). Fewer bytes than Content-Length, or a dropped connection, is UPLOAD_INCOMPLETE; a Content-Length above what the staging directory has free, or a staging disk that fills, is UPLOAD_NO_SPACE (507); one above what the pool’s file system has free on its node is POOL_NO_SPACE (507), before a byte is read. Nothing is kept from a refused upload.',
        consumes: ['application/octet-stream'],
        body: z.custom<Readable>().meta({ type: 'string', format: 'binary', description: 'the ISO’s bytes' }),
        querystring: z.strictObject({
          poolId: z.string().min(1),
          name: z.string().min(1),
          sha256: z
            .string()
            .regex(/^[0-9a-fA-F]{64}$/, 'must be 64 hexadecimal digits')
            .optional(),
        }),
        response: {
          201: imageRecord.describe('The ISO, ready in the pool'),
          ...errorResponses(
            ErrorCode.NOT_FOUND,
            ErrorCode.ALREADY_EXISTS,
            ErrorCode.PAYLOAD_TOO_LARGE,
            ErrorCode.UPLOAD_TOO_LARGE,
            ErrorCode.CHECKSUM_MISMATCH,
            ErrorCode.UPLOAD_INCOMPLETE,
            ControlPlaneErrorCode.UPLOAD_NO_SPACE,
            ErrorCode.POOL_NO_SPACE,
            ErrorCode.UPLOAD_FAILED,
            ErrorCode.POOL_NOT_ACTIVE_ON_NODE,
            ErrorCode.NODE_NOT_CONNECTED,
            ImagesIsoErrorCode.ISO_NOT_ISO9660,
            ImagesIsoErrorCode.ISO_TRUNCATED,
          ),
        },
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
        body: request.body,
        ...(length ? { expectedSize: Number(length) } : {}),
        ...(request.query.sha256 ? { expectedSha256: request.query.sha256 } : {}),
      });
      return reply.status(201).send(image);
    },
  );
}

/** A file's bytes, streamed as they are (a staged upload, an exported image). */
export const stagedBytes = (description: string) => ({
  description,
  content: {
    'application/octet-stream': { schema: z.custom<Readable>().meta({ type: 'string', format: 'binary' }) },
  },
});

/** Nodes fetch staged uploads here with the one-time token in the URL (no API token). */
export function stagedUploadRoutes(app: FastifyInstance, deps: { uploads: UploadService }): void {
  const api = app.withTypeProvider<ZodTypeProvider>();
  api.get(
    '/uploads/:id',
    {
      schema: {
        operationId: 'fetchStagedUpload',
        tags: ['images'],
        summary: 'A staged upload, fetched by the node that stores it (one-time token; never the API token)',
        security: [{ uploadToken: [] }],
        params: z.object({ id: z.string().uuid() }),
        querystring: z.strictObject({ token: z.string().max(256).optional() }),
        response: {
          200: stagedBytes('The whole file'),
          206: stagedBytes('The range asked for (Range: bytes=a-b), as Content-Range says'),
          ...errorResponses(ErrorCode.NOT_FOUND),
        },
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
      // A range past the end is answered with the whole file, as before (the node's fetcher restarts).
      const asked = !ifRange || ifRange === etag ? parseByteRange(request.headers.range, size) : null;
      const range = asked === 'unsatisfiable' ? null : asked;
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
