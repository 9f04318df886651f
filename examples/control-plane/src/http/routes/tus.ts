import { createHash, type Hash, randomUUID } from 'node:crypto';
import { stat } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { join } from 'node:path';
import { pipeline, Readable, Transform } from 'node:stream';
import {
  ControlPlaneErrorCode,
  stagingDiskFull,
  UPLOAD_KINDS,
  type UploadKind,
  type UploadService,
} from '@quantix/control-plane';
import { ErrorCode, isQuantixError, QuantixError } from '@quantix/core';
import { ImagesCloudErrorCode } from '@quantix/images-cloud';
import { ImagesIsoErrorCode } from '@quantix/images-iso';
import { FileStore } from '@tus/file-store';
import { Server } from '@tus/server';
import { Metadata } from '@tus/utils';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import type { Logger } from 'pino';
import { NodeRequest, sendNodeResponse } from 'srvx/node';
import { z } from 'zod';
import { statusFor } from '../errors.js';
import { errorResponses } from '../schemas.js';

/** How long an upload that stopped arriving is kept for a resume (tus expiration extension). */
export const DEFAULT_TUS_EXPIRY_MS = 24 * 3600_000;

/** The header of a finished upload's answer naming the image it became. */
export const IMAGE_ID_HEADER = 'Quantix-Image-Id';

export interface TusUploadsOptions {
  uploads: UploadService;
  /** Where partial uploads live: inside the staging directory, never in a pool, so no scan lists them. */
  directory: string;
  /** The URL path the tus endpoint is mounted at (`/api/v1/uploads/tus`). */
  path: string;
  logger: Logger;
  expiryMs?: number;
  /** This replica's id and how to find another live replica's URL by its id. */
  replica: { id: string; urlOf(replicaId: string): Promise<string | null | undefined> };
}

/**
 * Bytes handed to the file at a time. @tus/server's store writes each chunk as the socket gave it
 * (64 KiB) through a file stream that takes one write at a time, so taking bytes and writing them
 * never overlapped; gathered into 1 MiB writes, the next MiB arrives while one is written
 * (a 1 GiB tus upload over loopback 492–561 MiB/s before, 672–761 after; 4 MiB did no better).
 */
const WRITE_BATCH_BYTES = 1024 * 1024;

/**
 * @tus/server's file store, hashing each upload's bytes on their way to the file: the SHA-256 a
 * finished upload is checked by is then at hand when its last byte lands, where reading the
 * whole file again took a fifth of a 64 MiB upload's time. Only an unbroken run of PATCHes in
 * this process counts, each starting where the one before ended; after a PATCH that failed part
 * way (some bytes written, or hashed and not written), a restart, or a PATCH another replica
 * took, the upload has no running hash and its file is read whole at the end, as before.
 * Bytes reach the file in batches of WRITE_BATCH_BYTES; a PATCH cut off mid-batch loses the
 * batch's bytes (the offset says what was written, and the client sends them again).
 */
class HashingFileStore extends FileStore {
  private readonly running = new Map<string, { hash: Hash; offset: number }>();

  override async write(readable: Readable, id: string, offset: number): Promise<number> {
    const known = offset === 0 ? { hash: createHash('sha256'), offset: 0 } : this.running.get(id);
    // Taken out while the bytes arrive: a failure below leaves no hash that could be wrong.
    this.running.delete(id);
    const hash = known?.offset === offset ? known.hash : null;
    let taken = 0;
    let batch: Buffer[] = [];
    let batchBytes = 0;
    const takeBatch = () => {
      const whole = Buffer.concat(batch, batchBytes);
      batch = [];
      batchBytes = 0;
      return whole;
    };
    const batching = new Transform({
      transform(chunk: Buffer, _encoding, done) {
        hash?.update(chunk);
        taken += chunk.length;
        batch.push(chunk);
        batchBytes += chunk.length;
        if (batchBytes >= WRITE_BATCH_BYTES) done(null, takeBatch());
        else done();
      },
      flush(done) {
        done(null, batchBytes > 0 ? takeBatch() : undefined);
      },
    });
    // pipeline ends `batching` with the request's error (a client gone mid-body), so the store's
    // own pipeline fails as it would have on the request itself.
    const end = await super.write(
      pipeline(readable, batching, () => undefined),
      id,
      offset,
    );
    if (hash && end === offset + taken) this.running.set(id, { hash, offset: end });
    return end;
  }

  /** The SHA-256 (hex) of an upload whose every byte was hashed on arrival, once; else undefined. */
  takeSha256(id: string, size: number): string | undefined {
    const known = this.running.get(id);
    this.running.delete(id);
    return known?.offset === size ? known.hash.digest('hex') : undefined;
  }

  override async remove(id: string): Promise<void> {
    this.running.delete(id);
    await super.remove(id);
  }
}

/**
 * Resumable uploads (tus 1.0: creation, HEAD offset, PATCH, termination, expiration) with
 * @tus/server and its file store. Bytes land in `directory`; when the last byte is there the
 * upload is handed to UploadService.adoptStaged — its SHA-256 (hashed on arrival) checked against
 * the uploader's, read by the inspectors, then fetched by the node like any upload. An upload id
 * starts with the replica that took it, so another replica (without shared staging) answers
 * UPLOAD_ON_OTHER_REPLICA naming it instead of a bare 404.
 */
export class TusUploads {
  readonly server: Server;
  private readonly store: HashingFileStore;
  private readonly replicaTag: string;
  private sweeper: NodeJS.Timeout | undefined;

  constructor(private readonly options: TusUploadsOptions) {
    this.replicaTag = Buffer.from(options.replica.id).toString('base64url');
    this.store = new HashingFileStore({
      directory: options.directory,
      expirationPeriodInMilliseconds: options.expiryMs ?? DEFAULT_TUS_EXPIRY_MS,
    });
    this.server = new Server({
      path: options.path,
      datastore: this.store,
      maxSize: options.uploads.maxBytes,
      relativeLocation: true,
      exposedHeaders: [IMAGE_ID_HEADER],
      namingFunction: () => `${this.replicaTag}.${randomUUID()}`,
      onUploadFinish: async (_request, upload) => {
        const metadata = upload.metadata ?? {};
        const sha256 = this.store.takeSha256(upload.id, upload.size ?? Number.NaN);
        try {
          const image = await options.uploads.adoptStaged({
            id: randomUUID(),
            path: join(options.directory, upload.id),
            poolId: metadata.poolId ?? '',
            fileName: metadata.name ?? '',
            kind: (metadata.kind ?? 'iso') as UploadKind,
            ...(metadata.sha256 ? { expectedSha256: metadata.sha256 } : {}),
            ...(sha256 ? { sha256 } : {}),
            remove: () => this.remove(upload.id),
          });
          return { headers: { [IMAGE_ID_HEADER]: image.id } };
        } catch (error) {
          // The project's error shape; the upload is gone (adoptStaged removed it), so a client
          // asking for its offset again gets 404, never "complete".
          const quantix = isQuantixError(error)
            ? error
            : new QuantixError(ErrorCode.UPLOAD_FAILED, 'The upload could not be kept; see the control-plane log');
          if (!isQuantixError(error)) options.logger.error({ err: error }, 'tus upload finish failed');
          throw { status_code: statusFor(quantix.code), body: JSON.stringify({ error: quantix.toJSON() }) };
        }
      },
      // A PATCH whose bytes found the staging disk full: UPLOAD_NO_SPACE in the project's error
      // shape, not tus's plain-text 500. What was written stays, so the upload resumes from its
      // offset once there is room.
      onResponseError: (_request, error) => {
        const full = stagingDiskFull(error, 'the disk filled while its bytes arrived');
        if (!full) return undefined;
        options.logger.warn({ stagingDir: options.directory }, full.message);
        return { status_code: statusFor(full.code), body: JSON.stringify({ error: full.toJSON() }) };
      },
    });
  }

  /** At start: what a previous run left complete is removed (its node fetch died with it); then expired uploads, hourly. */
  async start(): Promise<void> {
    const ids = (await this.store.configstore.list?.()) ?? [];
    for (const id of ids) {
      const upload = await this.store.getUpload(id).catch(() => null);
      if (upload && upload.size !== undefined && upload.offset === upload.size) await this.remove(id);
    }
    await this.sweep();
    this.sweeper = setInterval(() => void this.sweep(), 3600_000);
    this.sweeper.unref();
  }

  /** Removes uploads older than the expiry period; returns how many. */
  async sweep(): Promise<number> {
    try {
      return await this.server.cleanUpExpiredUploads();
    } catch (error) {
      this.options.logger.warn({ err: error }, 'expired tus uploads could not be removed');
      return 0;
    }
  }

  close(): void {
    clearInterval(this.sweeper);
  }

  private async remove(id: string): Promise<void> {
    await this.store.remove(id).catch(() => undefined);
  }

  /**
   * Before a HEAD, PATCH or DELETE: an upload this replica does not have but another live one
   * took is UPLOAD_ON_OTHER_REPLICA (409) naming it. With a staging directory shared by the
   * replicas the file is here and nothing is refused.
   */
  async checkHere(id: string): Promise<void> {
    const exists = await stat(join(this.options.directory, id)).then(
      () => true,
      () => false,
    );
    if (exists) return;
    const [tag] = id.split('.');
    if (!tag || tag === this.replicaTag) return;
    const replicaId = Buffer.from(tag, 'base64url').toString('utf8');
    const url = await this.options.replica.urlOf(replicaId);
    if (url === undefined) return;
    throw new QuantixError(
      ErrorCode.UPLOAD_ON_OTHER_REPLICA,
      `This upload is staged on control-plane replica ${replicaId}${url ? ` (${url})` : ''}; resume it there`,
      { details: { replicaId, ...(url ? { url } : {}) } },
    );
  }
}

const tusResumable = z.literal('1.0.0').describe('The tus protocol version');
const uploadId = z
  .string()
  .regex(/^[A-Za-z0-9_-]{1,200}\.[0-9a-f-]{36}$/)
  .describe('The upload id from the Location of its creation');
const tusAnswer = (description: string) => z.undefined().describe(description);

/** The metadata a tus creation carries (Upload-Metadata, base64 values), checked like the simple upload's query. */
const creationMetadata = z.object({
  poolId: z.string().min(1),
  name: z.string().min(1),
  kind: z.enum(UPLOAD_KINDS as [UploadKind, ...UploadKind[]]).optional(),
  sha256: z
    .string()
    .regex(/^[0-9a-fA-F]{64}$/, 'must be 64 hexadecimal digits')
    .optional(),
});

/**
 * Bytes of a request body read ahead of @tus/server. Its own `handle` gives it the body through
 * `Readable.toWeb`, whose default strategy holds one chunk: the socket was paused after every
 * 64 KiB until the store took it, so the client waited on each. A 64 MiB PATCH from curl over
 * loopback: 0.14–0.40 s that way, 0.14–0.17 s reading 1 MiB ahead (4 MiB did no better, and
 * each upload under way may hold this much).
 */
const BODY_READ_AHEAD_BYTES = 1024 * 1024;

/** What @tus/server's `handle` does, with a request body that reads ahead (BODY_READ_AHEAD_BYTES). */
async function handToTus(server: Server, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const request = new NodeRequest({ req, res });
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    const body = Readable.toWeb(req, {
      strategy: new ByteLengthQueuingStrategy({ highWaterMark: BODY_READ_AHEAD_BYTES }),
    });
    Object.defineProperty(request, 'body', { value: body });
  }
  await sendNodeResponse(res, await server.handleWeb(request));
}

/**
 * The tus endpoint, in the authenticated API scope (the token hook runs first). Each method is
 * its own route so it is documented in OpenAPI; the bytes are @tus/server's to handle, so the
 * reply is hijacked once fastify's own checks (token, headers, metadata, size) have passed.
 */
export function tusRoutes(app: FastifyInstance, deps: { tus: TusUploads; uploads: UploadService }): void {
  const api = app.withTypeProvider<ZodTypeProvider>();
  // PATCH bodies stay unread streams for @tus/server.
  app.addContentTypeParser('application/offset+octet-stream', (_request, _payload, done) => done(null));
  const handOver = (request: FastifyRequest, reply: FastifyReply) => {
    reply.hijack();
    void handToTus(deps.tus.server, request.raw, reply.raw);
  };
  const checkHere = async (request: FastifyRequest) => {
    await deps.tus.checkHere((request.params as { id: string }).id);
  };

  api.route({
    method: 'OPTIONS',
    url: '/uploads/tus',
    schema: {
      operationId: 'describeTusUploads',
      tags: ['uploads'],
      summary: 'The tus server’s version, extensions and size limit (Tus-Version, Tus-Extension, Tus-Max-Size)',
      response: { 204: tusAnswer('The tus capabilities, in headers'), ...errorResponses() },
    },
    handler: handOver,
  });

  api.post(
    '/uploads/tus',
    {
      schema: {
        operationId: 'createTusUpload',
        tags: ['uploads'],
        summary: 'Start a resumable upload (tus creation) of an ISO or a disk image into a pool',
        description:
          'Upload-Metadata (tus: comma-separated `key base64value`) carries poolId, name, kind (`iso`, default, or `disk`) and optionally sha256. The pool, name and size (against the limit, the staging directory’s free space, and the pool’s free space on its node: POOL_NO_SPACE, 507) are checked before any byte is taken. The Location header is the upload’s URL: PATCH bytes to it, HEAD it for the offset to resume from.',
        headers: z
          .object({
            'tus-resumable': tusResumable,
            'upload-length': z.string().regex(/^\d{1,20}$/, 'must be the size in bytes'),
            'upload-metadata': z.string().max(4096),
          })
          .passthrough(),
        response: {
          201: tusAnswer('Created: Location names the upload'),
          ...errorResponses(
            ErrorCode.NOT_FOUND,
            ErrorCode.ALREADY_EXISTS,
            ErrorCode.UPLOAD_TOO_LARGE,
            ControlPlaneErrorCode.UPLOAD_NO_SPACE,
            ErrorCode.POOL_NO_SPACE,
            ErrorCode.POOL_NOT_ACTIVE_ON_NODE,
            ErrorCode.NODE_NOT_CONNECTED,
          ),
        },
      },
      preHandler: async (request) => {
        const parsed = creationMetadata.safeParse(Metadata.parse(request.headers['upload-metadata']));
        if (!parsed.success) {
          const issues = parsed.error.issues.map((issue) => ({
            path: `Upload-Metadata.${issue.path.join('.')}`,
            message: issue.message,
          }));
          throw new QuantixError(
            ErrorCode.INVALID_INPUT,
            `Invalid Upload-Metadata: ${issues.map((i) => `${i.path}: ${i.message}`).join('; ')}`,
            { details: { issues } },
          );
        }
        const { poolId, name, kind, sha256 } = parsed.data;
        await deps.uploads.prepare({
          poolId,
          fileName: name,
          ...(kind ? { kind } : {}),
          expectedSize: Number(request.headers['upload-length']),
          ...(sha256 ? { expectedSha256: sha256 } : {}),
        });
      },
    },
    handOver,
  );

  api.route({
    method: 'HEAD',
    url: '/uploads/tus/:id',
    // @fastify/swagger leaves HEAD routes out unless asked (and names them `<operationId>-head`).
    config: { swagger: { exposeHeadRoute: true } },
    schema: {
      operationId: 'getTusUploadOffset',
      tags: ['uploads'],
      summary: 'How many bytes of an upload the server has (Upload-Offset), to resume from there',
      params: z.object({ id: uploadId }),
      headers: z.object({ 'tus-resumable': tusResumable }).passthrough(),
      response: {
        200: tusAnswer('Upload-Offset and Upload-Length in headers'),
        ...errorResponses(ErrorCode.NOT_FOUND, ErrorCode.UPLOAD_ON_OTHER_REPLICA),
      },
    },
    preHandler: checkHere,
    handler: handOver,
  });

  api.route({
    method: 'PATCH',
    url: '/uploads/tus/:id',
    schema: {
      operationId: 'appendTusUpload',
      tags: ['uploads'],
      summary: 'Send bytes of an upload from Upload-Offset on (application/offset+octet-stream)',
      description:
        'The request that brings the last byte also checks the file: its SHA-256 against the one given at creation (CHECKSUM_MISMATCH, 422), then that it reads as its kind (ISO_* for an ISO; IMAGE_UNSAFE for a disk image that names other files (a backing file, a VMDK descriptor’s extents); IMAGE_INVALID for one qemu-img cannot read or named .qcow2 but not qcow2; 422). On success the answer names the image (Quantix-Image-Id); on failure nothing is kept. A staging disk that fills while the bytes arrive is UPLOAD_NO_SPACE (507): what arrived is kept, and the upload resumes from its offset once there is room.',
      params: z.object({ id: uploadId }),
      headers: z
        .object({ 'tus-resumable': tusResumable, 'upload-offset': z.string().regex(/^\d{1,20}$/) })
        .passthrough(),
      response: {
        204: tusAnswer('Stored: the new Upload-Offset in a header'),
        ...errorResponses(
          ErrorCode.NOT_FOUND,
          ErrorCode.UPLOAD_ON_OTHER_REPLICA,
          ErrorCode.CHECKSUM_MISMATCH,
          ErrorCode.UPLOAD_TOO_LARGE,
          ControlPlaneErrorCode.UPLOAD_NO_SPACE,
          ErrorCode.ALREADY_EXISTS,
          ImagesIsoErrorCode.ISO_NOT_ISO9660,
          ImagesIsoErrorCode.ISO_TRUNCATED,
          ImagesCloudErrorCode.IMAGE_INVALID,
          ImagesCloudErrorCode.IMAGE_UNSAFE,
        ),
      },
    },
    preHandler: checkHere,
    handler: handOver,
  });

  api.route({
    method: 'DELETE',
    url: '/uploads/tus/:id',
    schema: {
      operationId: 'terminateTusUpload',
      tags: ['uploads'],
      summary: 'Abandon an upload (tus termination): its bytes are removed',
      params: z.object({ id: uploadId }),
      headers: z.object({ 'tus-resumable': tusResumable }).passthrough(),
      response: {
        204: tusAnswer('Removed'),
        ...errorResponses(ErrorCode.NOT_FOUND, ErrorCode.UPLOAD_ON_OTHER_REPLICA),
      },
    },
    preHandler: checkHere,
    handler: handOver,
  });
}
