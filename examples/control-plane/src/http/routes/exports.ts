import type { Readable } from 'node:stream';
import { finished } from 'node:stream/promises';
import { bearerToken, type ExportableImage, type ImageExportService } from '@quantix/control-plane';
import { ErrorCode, NODE_EXPORT_PATH, QuantixError } from '@quantix/core';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { parseByteRange } from '../ranges.js';
import { errorResponses } from '../schemas.js';
import type { CheckNodeToken } from './node-socket.js';
import { stagedBytes } from './uploads.js';

const idParams = z.object({ id: z.string().min(1).max(128) });

/** What GET and HEAD of an image's content can answer besides its bytes. */
const CONTENT_ERRORS = [
  ErrorCode.NOT_FOUND,
  ErrorCode.IMAGE_NOT_READY,
  ErrorCode.IMAGE_NO_LOCATION,
  ErrorCode.NODE_NOT_CONNECTED,
  ErrorCode.POOL_NOT_ACTIVE_ON_NODE,
  ErrorCode.IMAGE_FILE_MISSING,
  ErrorCode.IMAGE_FILE_CHANGED,
  ErrorCode.RANGE_NOT_SATISFIABLE,
];

/**
 * `attachment` with the file's name: a plain ASCII `filename` (quotes, backslashes and anything
 * outside printable ASCII replaced) for old clients, and the exact name as RFC 8187 `filename*`.
 */
export function attachmentDisposition(fileName: string): string {
  const ascii = fileName.replace(/[^\x20-\x7e]|["\\%;]/g, '_');
  const exact = encodeURIComponent(fileName).replace(
    /['()*]/g,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
  );
  return `attachment; filename="${ascii}"; filename*=UTF-8''${exact}`;
}

/** Headers that describe the whole representation, on every answer (200, 206, HEAD, 416). */
function describe(reply: FastifyReply, target: ExportableImage): void {
  reply
    .header('accept-ranges', 'bytes')
    .header('etag', target.etag)
    .header('content-type', 'application/octet-stream')
    .header('content-disposition', attachmentDisposition(target.fileName));
  const { checksum } = target;
  if (checksum) {
    // RFC 9530: the digest of the whole representation, whatever range this answer carries.
    const digest = Buffer.from(checksum.value, 'hex').toString('base64');
    reply.header('repr-digest', `${checksum.algorithm === 'sha256' ? 'sha-256' : 'sha-512'}=:${digest}:`);
    reply.header(`x-checksum-${checksum.algorithm}`, checksum.value);
  }
}

/**
 * An image's bytes. Its credential is the API token, or a download ticket for that image in the
 * query (a browser's link cannot send headers): checked before anything else, in a scope of its
 * own like the other routes with their own credentials.
 */
export function imageContentRoutes(
  app: FastifyInstance,
  deps: { exports: ImageExportService; isApiToken: (token: string) => boolean },
): void {
  const api = app.withTypeProvider<ZodTypeProvider>();
  const authorize = async (request: FastifyRequest) => {
    const token = bearerToken(request.headers.authorization);
    if (token && deps.isApiToken(token)) return;
    const { ticket } = (request.query ?? {}) as { ticket?: unknown };
    const { id } = (request.params ?? {}) as { id?: unknown };
    if (typeof ticket === 'string' && deps.exports.checkTicket(ticket, String(id))) return;
    throw new QuantixError(
      ErrorCode.UNAUTHORIZED,
      'Send the API token ("Authorization: Bearer <token>") or a ticket from POST /images/{id}/content/tickets',
    );
  };
  const schema = (operationId: string, summary: string, response: Record<number, unknown>) => ({
    tags: ['images'],
    operationId,
    summary,
    security: [{ bearer: [] }, { downloadTicket: [] }] as { [scheme: string]: string[] }[],
    params: idParams,
    querystring: z.strictObject({ ticket: z.string().max(256).optional() }),
    response: { ...response, ...errorResponses(...CONTENT_ERRORS) },
  });

  api.head(
    '/images/:id/content',
    {
      schema: schema(
        'headImageContent',
        'What GET /images/{id}/content would send, without the bytes (size, ETag, checksum)',
        {
          200: z.undefined().describe('The headers of the whole file'),
        },
      ),
      onRequest: authorize,
    },
    async (request, reply) => {
      const target = await deps.exports.prepare(request.params.id);
      describe(reply, target);
      return reply.header('content-length', target.sizeBytes).status(200).send();
    },
  );

  api.get(
    '/images/:id/content',
    {
      // HEAD is its own route above: the automatic twin would ask the node for every byte.
      exposeHeadRoute: false,
      schema: schema(
        'getImageContent',
        'A ready image’s file, streamed from the node that holds it; Range (one range) and If-Range resume a download',
        {
          200: stagedBytes('The whole file; Repr-Digest and X-Checksum-<algorithm> carry its checksum'),
          206: stagedBytes('The range asked for (Range: bytes=a-b), as Content-Range says'),
        },
      ),
      onRequest: authorize,
    },
    async (request, reply) => {
      const target = await deps.exports.prepare(request.params.id);
      describe(reply, target);
      const ifRange = request.headers['if-range'];
      const asked =
        !ifRange || ifRange === target.etag ? parseByteRange(request.headers.range, target.sizeBytes) : null;
      if (asked === 'unsatisfiable') {
        reply.header('content-range', `bytes */${target.sizeBytes}`);
        throw new QuantixError(
          ErrorCode.RANGE_NOT_SATISFIABLE,
          `${request.headers.range} asks for no byte of the ${target.sizeBytes} of image ${target.image.name}`,
          { details: { sizeBytes: target.sizeBytes } },
        );
      }
      if (target.sizeBytes === 0) return reply.status(200).header('content-length', 0).send(Buffer.alloc(0));
      const range = asked ?? { start: 0, end: target.sizeBytes - 1 };
      const body = await deps.exports.open(target, range);
      // A client that goes away: fastify destroys `body`, which tears the node's upload down.
      reply.header('content-length', range.end - range.start + 1);
      if (asked) reply.status(206).header('content-range', `bytes ${range.start}-${range.end}/${target.sizeBytes}`);
      return reply.send(body);
    },
  );
}

/** The authenticated half: a ticket for a download link (browsers cannot send the API token on a link). */
export function imageContentTicketRoutes(
  app: FastifyInstance,
  deps: { exports: ImageExportService; apiPrefix: string },
): void {
  const api = app.withTypeProvider<ZodTypeProvider>();
  api.post(
    '/images/:id/content/tickets',
    {
      schema: {
        tags: ['images'],
        operationId: 'createImageContentTicket',
        summary: 'A ticket (valid 5 minutes) to download the image’s file without the API token: GET the path it gives',
        params: idParams,
        response: {
          201: z.object({
            ticket: z.string(),
            imageId: z.string(),
            expiresAt: z.date(),
            path: z.string().describe('the content’s path with the ticket in its query, to GET on this server'),
          }),
          ...errorResponses(ErrorCode.NOT_FOUND),
        },
      },
    },
    async (request, reply) => {
      const issued = await deps.exports.issueTicket(request.params.id);
      return reply.status(201).send({
        ...issued,
        path: `${deps.apiPrefix}/images/${encodeURIComponent(issued.imageId)}/content?ticket=${encodeURIComponent(issued.ticket)}`,
      });
    },
  );
}

/**
 * The node's upload of the bytes of a file.export it was asked for (its token checked before the
 * body is read). The body stays a stream, handed to the export waiting under the session id; the
 * answer (204) comes once it has been read to its end — or the export's client went away and
 * the connection was closed, which ends the node's read.
 */
export async function exportRelayRoute(
  app: FastifyInstance,
  deps: { exports: ImageExportService; checkNodeToken: CheckNodeToken },
): Promise<void> {
  await app.register(async (scope) => {
    scope.addContentTypeParser('application/octet-stream', (_request, payload, done) => done(null, payload));
    scope.withTypeProvider<ZodTypeProvider>().post(
      `${NODE_EXPORT_PATH}/:sessionId`,
      {
        schema: {
          tags: ['nodes'],
          operationId: 'relayNodeExport',
          summary: 'A node’s upload of the file it was asked to stream (file.export): raw bytes, node token',
          security: [{ nodeToken: [] }],
          consumes: ['application/octet-stream'],
          params: z.object({ sessionId: z.string().min(1).max(128) }),
          body: z.custom<Readable>().meta({ type: 'string', format: 'binary', description: 'the file’s bytes' }),
          response: {
            204: z.undefined().describe('Every byte was passed on'),
            ...errorResponses(ErrorCode.NOT_FOUND),
          },
        },
        preValidation: async (request) => {
          await deps.checkNodeToken(request);
        },
      },
      async (request, reply) => {
        const nodeId = String(request.headers['x-quantix-node-id']);
        const socket = request.raw.socket;
        if (!deps.exports.attachRelay(nodeId, request.params.sessionId, request.body)) {
          throw new QuantixError(ErrorCode.NOT_FOUND, 'No export waits under this session id');
        }
        try {
          await finished(request.body);
        } catch {
          // The export was torn down (its client went away). Destroying the body leaves its
          // connection open, kept for an answer: only closing it stops the node's upload and read.
          socket.destroy();
          return reply;
        }
        return reply.status(204).send();
      },
    );
  });
}
