import { createHash, randomUUID } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, open, readdir, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import {
  ErrorCode,
  type EventBus,
  type FileInspector,
  freeBytesAt,
  hasUnsafeNameCharacter,
  type Image,
  type ImageKind,
  type ImagePatch,
  type ImagePhase,
  type InspectedFile,
  isQuantixError,
  type PoolContentType,
  QuantixError,
  type Repositories,
  redactSecrets,
  replaceUnsafeLabelCharacters,
  type StoragePool,
  sha256OfFile,
  type UpdateOptions,
} from '@quantix/core';
import type { Logger } from 'pino';
import { ControlPlaneErrorCode } from '../errors.js';
import type { NodeHub } from '../hub/node-hub.js';
import { requireNodeWithActivePool } from '../nodes/placement.js';
import { newToken, tokenDigest, tokenMatches } from '../tokens.js';
import { defaultRelPathForUpload } from './source.js';

interface Staged {
  path: string;
  /** Removes the staged file (and whatever its uploader kept beside it). */
  remove: () => Promise<void>;
  /** SHA-256 of the one-time token: the token itself is kept only in the URL handed to the node. */
  tokenDigest: string;
  sizeBytes: number;
}

export interface UploadServiceOptions {
  repositories: Repositories;
  hub: NodeHub;
  logger: Logger;
  /** Where uploads wait until a node has fetched them. */
  stagingDir: string;
  /** The control plane's URL as nodes reach it (they fetch staged uploads from it). */
  publicUrl: () => string;
  maxBytes?: number;
  /** What reads an uploaded file (FileInspectorToken): an upload is kept only if one says what it is. */
  inspectors: readonly FileInspector[];
  /**
   * Replicas: this one's id (recorded on the rows of its uploads) and URL. A staged file is on
   * the replica that took the upload, so the node fetches it there, whichever replica holds the
   * node's connection and whatever URL the node dialed.
   */
  replica?: { id: string; url?: string | undefined };
  /** Where the phases of uploads are told as they change (image.phase), for live views. */
  events?: EventBus;
}

/** What an upload claims to be: an ISO, or a disk image (qcow2, raw). */
export type UploadKind = 'iso' | 'disk';
export const UPLOAD_KINDS: readonly UploadKind[] = ['iso', 'disk'];
const KIND_EXTENSIONS: Record<UploadKind, readonly string[]> = { iso: ['.iso'], disk: ['.qcow2', '.img', '.raw'] };
const KIND_CONTENT: Record<UploadKind, PoolContentType> = { iso: 'iso', disk: 'images' };
/** The kind of image an upload makes. */
const IMAGE_KIND: Record<UploadKind, ImageKind> = { iso: 'iso', disk: 'cloud' };

/** Where an upload goes, as `prepare` found it. */
export interface UploadTarget {
  pool: StoragePool;
  nodeId: string;
  fileName: string;
  relPath: string;
  kind: UploadKind;
}

/** The label naming the replica an upload was staged on (its file is there until a node has it). */
export const STAGED_ON_LABEL = 'quantix.io/staged-on';

export const DEFAULT_MAX_UPLOAD_BYTES = 16 * 1024 ** 3;

/** Names of staged files: `<uuid>.partial` while bytes arrive, `<uuid>.iso` once complete. */
const STAGED_NAME = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\.(partial|iso)$/;
const SHA256_HEX = /^[0-9a-f]{64}$/i;

/**
 * ISO uploads. The control plane cannot write into a node's pool, so an upload is staged here
 * (streamed to a temporary file, size-limited, hashed), then the node holding the pool fetches
 * it like any download — resumable and verified against the hash taken here — and the staged
 * copy is removed. An upload cut off midway, or whose bytes do not read as an ISO, leaves no row
 * and no file: the row is created only once every byte has arrived and been read as an ISO, with
 * the OS that reading identified.
 */
export class UploadService {
  private readonly staged = new Map<string, Staged>();
  /** Image ids whose staged file a node is fetching from this replica now. */
  private readonly transferring = new Set<string>();

  constructor(private readonly options: UploadServiceOptions) {}

  /**
   * Takes one upload. `expectedSize` is the announced length (Content-Length): fewer bytes, or a
   * stream that fails or is aborted (`signal`), is UPLOAD_INCOMPLETE. `expectedSha256` is the
   * uploader's own hash of the file (`?sha256=`): a different one is CHECKSUM_MISMATCH. Either
   * way, and on every other failure, the staged bytes are removed and no row is made.
   */
  async receive(input: {
    poolId: string;
    fileName: string;
    kind?: UploadKind;
    body: Readable;
    expectedSize?: number;
    expectedSha256?: string;
    signal?: AbortSignal;
  }): Promise<Image> {
    const target = await this.prepare(input);
    const id = randomUUID();
    const staged = await this.stage(id, input.body, input);
    return this.adopt(target, { id, ...staged, remove: () => rm(staged.path, { force: true }) });
  }

  /**
   * Checks an upload before a byte of it is taken (the simple POST, or a tus creation): a valid
   * name for its kind, a size within the limit, a pool that holds that kind, no image or file of
   * that name there, a connected node with the pool active to store it, and room for its
   * announced size in the staging directory.
   */
  async prepare(input: {
    poolId: string;
    fileName: string;
    kind?: UploadKind;
    expectedSize?: number;
    expectedSha256?: string;
  }): Promise<UploadTarget> {
    const { repositories, hub } = this.options;
    const kind = input.kind ?? 'iso';
    if (!UPLOAD_KINDS.includes(kind)) {
      throw new QuantixError(ErrorCode.INVALID_INPUT, `kind must be one of ${UPLOAD_KINDS.join(', ')}`, {
        details: { issues: [{ path: 'kind', message: `must be one of ${UPLOAD_KINDS.join(', ')}` }] },
      });
    }
    const fileName = uploadFileName(input.fileName, KIND_EXTENSIONS[kind]);
    this.checkSize(input.expectedSize);
    if (input.expectedSha256 !== undefined && !SHA256_HEX.test(input.expectedSha256)) {
      throw new QuantixError(ErrorCode.INVALID_INPUT, 'sha256 must be 64 hexadecimal digits', {
        details: { issues: [{ path: 'sha256', message: 'must be 64 hexadecimal digits' }] },
      });
    }
    const pool = await repositories.pools.require(input.poolId);
    const content = KIND_CONTENT[kind];
    if (!pool.contentTypes.includes(content)) {
      throw new QuantixError(
        ErrorCode.INVALID_INPUT,
        `Pool ${pool.name} does not hold ${kind === 'iso' ? 'ISOs' : 'disk images'}`,
      );
    }
    const relPath = defaultRelPathForUpload(fileName, IMAGE_KIND[kind]);
    if (await repositories.images.getByLocation({ poolId: pool.id, relPath })) {
      throw new QuantixError(
        ErrorCode.ALREADY_EXISTS,
        `Pool ${pool.name} already has ${relPath}; rename the file or delete the old image`,
      );
    }
    const nodeId = await requireNodeWithActivePool({
      repositories,
      hub,
      poolId: pool.id,
      consequence: 'nothing could store the upload',
    });

    // A file of that name with no row (copied in by hand, not scanned yet) is never overwritten:
    // the node is asked before a byte is read.
    const there = await hub.request(nodeId, { op: 'file.stat', poolId: pool.id, relPath }, { timeoutMs: 30_000 });
    if (there.exists) {
      throw new QuantixError(
        ErrorCode.ALREADY_EXISTS,
        `Pool ${pool.name} already has a file ${relPath}; rename the upload or remove that file`,
        { details: { poolId: pool.id, relPath } },
      );
    }
    // Refused now rather than after gigabytes, when the node's fetch would find no room.
    const { availableBytes } = there;
    if (input.expectedSize !== undefined && availableBytes != null && input.expectedSize > availableBytes) {
      throw new QuantixError(
        ErrorCode.POOL_NO_SPACE,
        `Pool ${pool.name} has no room for the upload: it is ${input.expectedSize} bytes and ${availableBytes} are free there; free space in the pool or upload into another`,
        { details: { poolId: pool.id, nodeId, sizeBytes: input.expectedSize, availableBytes } },
      );
    }
    await this.checkStagingSpace(input.expectedSize);
    return { pool, nodeId, fileName, relPath, kind };
  }

  /** UPLOAD_TOO_LARGE (413) for an announced size above the limit. */
  checkSize(sizeBytes: number | undefined): void {
    const maxBytes = this.maxBytes;
    if (sizeBytes !== undefined && sizeBytes > maxBytes) {
      throw new QuantixError(ErrorCode.UPLOAD_TOO_LARGE, `The upload is ${sizeBytes} bytes; the limit is ${maxBytes}`, {
        details: { sizeBytes, maxBytes },
      });
    }
  }

  /**
   * UPLOAD_NO_SPACE (507) for an announced size above what the staging directory's file system
   * has free: refused before a byte is sent, not after gigabytes. Where statfs says nothing, the
   * writes will tell.
   */
  private async checkStagingSpace(sizeBytes: number | undefined): Promise<void> {
    if (sizeBytes === undefined) return;
    const stagingDir = this.options.stagingDir;
    await mkdir(stagingDir, { recursive: true });
    const availableBytes = await freeBytesAt(stagingDir);
    if (availableBytes !== null && sizeBytes > availableBytes) {
      throw this.warned(
        noStagingSpace(`the upload is ${sizeBytes} bytes and ${availableBytes} are free there`, {
          sizeBytes,
          availableBytes,
        }),
      );
    }
  }

  /** Logs which directory to free (the answer does not name it), and returns `error`. */
  private warned(error: QuantixError): QuantixError {
    this.options.logger.warn({ stagingDir: this.options.stagingDir, ...error.details }, error.message);
    return error;
  }

  get maxBytes(): number {
    return this.options.maxBytes ?? DEFAULT_MAX_UPLOAD_BYTES;
  }

  /**
   * A file that arrived whole by another way (a resumable tus upload): its SHA-256 (`sha256`, when
   * the receiver worked it out from the bytes as it wrote them, else read here from the file) is
   * compared with the uploader's; then it is checked again as
   * `prepare` checks (the pool or its name may have changed while it arrived), read, and handed
   * to the node like any upload. On any failure `remove` is called: nothing is kept.
   */
  async adoptStaged(input: {
    id: string;
    path: string;
    poolId: string;
    fileName: string;
    kind?: UploadKind;
    expectedSha256?: string;
    /** The SHA-256 of the staged file's bytes, taken as they were written (saves reading it again). */
    sha256?: string;
    remove: () => Promise<void>;
  }): Promise<Image> {
    let adopted = false;
    try {
      const target = await this.prepare(input);
      const { size: sizeBytes } = await stat(input.path);
      if (sizeBytes === 0) throw new QuantixError(ErrorCode.UPLOAD_INCOMPLETE, 'The upload is empty');
      this.checkSize(sizeBytes);
      const digest = input.sha256 ?? (await sha256OfFile(input.path));
      this.checkDigest(digest, input.expectedSha256);
      const image = await this.adopt(target, {
        id: input.id,
        path: input.path,
        sizeBytes,
        checksum: { algorithm: 'sha256', value: digest },
        remove: input.remove,
      });
      adopted = true;
      return image;
    } finally {
      if (!adopted) await input.remove();
    }
  }

  private checkDigest(digest: string, expectedSha256: string | undefined): void {
    if (expectedSha256 !== undefined && digest !== expectedSha256.toLowerCase()) {
      throw new QuantixError(
        ErrorCode.CHECKSUM_MISMATCH,
        `The upload's SHA-256 is ${digest}, not the ${expectedSha256.toLowerCase()} given; nothing was kept`,
        { details: { algorithm: 'sha256', expected: expectedSha256.toLowerCase(), actual: digest } },
      );
    }
  }

  /**
   * Reads a whole staged file (only what an inspector recognises as its kind is kept), makes its
   * row, and starts the node's fetch. On failure `staged.remove` is called and no row is left.
   */
  private async adopt(
    target: UploadTarget,
    staged: {
      id: string;
      path: string;
      sizeBytes: number;
      checksum: { algorithm: 'sha256'; value: string };
      remove: () => Promise<void>;
    },
  ): Promise<Image> {
    const { repositories } = this.options;
    const { pool, nodeId, fileName, relPath, kind } = target;
    let image: Image;
    try {
      // Only a file that reads as its kind is kept (ISO_* → 422 otherwise), identified now as a scan would.
      const found = await this.inspect(staged.path, fileName, kind);
      image = await repositories.images.create({
        name: fileName,
        kind: IMAGE_KIND[kind],
        format: found.format ?? (kind === 'iso' ? 'iso' : null),
        sizeBytes: staged.sizeBytes,
        checksum: staged.checksum,
        location: { poolId: pool.id, relPath },
        nodeId: pool.shared ? null : nodeId,
        ...(found.os ? { os: found.os } : {}),
        ...(found.firmware && found.firmware !== 'any' ? { requirements: { firmware: found.firmware } } : {}),
        labels: {
          // What the file says (an ISO's volume id), made safe as a scan's labels are.
          ...replaceUnsafeLabelCharacters(found.labels ?? {}),
          'quantix.io/source': 'upload',
          ...(this.options.replica ? { [STAGED_ON_LABEL]: this.options.replica.id } : {}),
        },
      });
    } catch (error) {
      await staged.remove();
      throw error;
    }
    const token = newToken();
    this.staged.set(staged.id, {
      path: staged.path,
      tokenDigest: tokenDigest(token),
      sizeBytes: staged.sizeBytes,
      remove: staged.remove,
    });
    void this.transfer(image, nodeId, staged.id, token);
    return image;
  }

  /** What the inspectors read in an uploaded file; an error (ISO_* …) when it is not its kind. */
  private async inspect(path: string, fileName: string, kind: UploadKind): Promise<InspectedFile> {
    for (const inspector of this.options.inspectors) {
      const found = await inspector
        .inspect({ path, relPath: fileName, content: KIND_CONTENT[kind] })
        .catch((error: unknown) => {
          throw isQuantixError(error) ? namingUpload(error, path, fileName) : error;
        });
      if (found) return found;
    }
    throw new QuantixError(
      ErrorCode.UNSUPPORTED_OPERATION,
      kind === 'iso'
        ? 'This control plane has no inspector for ISOs (the images-iso plugin), so it cannot take uploads'
        : 'This control plane has no inspector that reads disk images, so it cannot take disk-image uploads',
    );
  }

  /** The staged file for a node's fetch, if the id and one-time token match. */
  async open(id: string, token: string): Promise<Staged> {
    const staged = this.staged.get(id);
    // Constant-time comparison; a wrong token and an unknown id answer alike, so neither is an oracle.
    if (!staged || !tokenMatches(token, staged.tokenDigest)) {
      throw new QuantixError(ErrorCode.NOT_FOUND, 'No such staged upload');
    }
    return staged;
  }

  stream(staged: Staged, range?: { start: number; end: number }): Readable {
    return createReadStream(staged.path, range ? { start: range.start, end: range.end } : {});
  }

  /**
   * Removes what a previous run left in the staging directory: uploads still arriving or waiting
   * for a node when it stopped. Their one-time tokens died with it, so no node can fetch them, and
   * a half-written file is never taken for a whole one. Call at start, before any upload.
   */
  async removeLeftovers(): Promise<string[]> {
    const names = await readdir(this.options.stagingDir).catch((error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT') return [] as string[];
      throw error;
    });
    const leftovers = names.filter((name) => STAGED_NAME.test(name) && !this.staged.has(name.replace(/\.\w+$/, '')));
    await Promise.all(leftovers.map((name) => rm(join(this.options.stagingDir, name), { force: true })));
    if (leftovers.length > 0)
      this.options.logger.info({ count: leftovers.length }, 'removed staged uploads of a previous run');
    return leftovers;
  }

  private async stage(
    id: string,
    body: Readable,
    expected: { expectedSize?: number; expectedSha256?: string; signal?: AbortSignal },
  ) {
    const { expectedSize, signal } = expected;
    const maxBytes = this.maxBytes;
    this.checkSize(expectedSize);
    await mkdir(this.options.stagingDir, { recursive: true });
    const partial = join(this.options.stagingDir, `${id}.partial`);
    const final = join(this.options.stagingDir, `${id}.iso`);
    const hash = createHash('sha256');
    const file = await open(partial, 'wx');
    let size = 0;
    const cutOff = (why: string) =>
      new QuantixError(
        ErrorCode.UPLOAD_INCOMPLETE,
        `The upload was cut off after ${size}${expectedSize !== undefined ? ` of ${expectedSize}` : ''} bytes: ${why}`,
        { details: { bytesReceived: size, ...(expectedSize !== undefined ? { expectedSize } : {}) } },
      );
    try {
      signal?.throwIfAborted();
      try {
        for await (const chunk of body) {
          signal?.throwIfAborted();
          const bytes = chunk as Buffer;
          size += bytes.length;
          if (size > maxBytes)
            throw new QuantixError(
              ErrorCode.UPLOAD_TOO_LARGE,
              `The upload is larger than the limit of ${maxBytes} bytes`,
            );
          hash.update(bytes);
          await file.write(bytes).catch((error: Error) => {
            // The staging disk failed, not the uploader: a full one is UPLOAD_NO_SPACE, anything else 500.
            const full = stagingDiskFull(error, `the disk filled after ${size - bytes.length} bytes`, {
              bytesReceived: size,
            });
            throw full
              ? this.warned(full)
              : new QuantixError(ErrorCode.INTERNAL_ERROR, `Could not stage the upload: ${error.message}`, {
                  cause: error,
                });
          });
        }
      } catch (error) {
        if (isQuantixError(error)) throw error;
        // The client went away (ECONNRESET, "aborted") or the upload was cancelled: whatever the
        // stream says, what the uploader needs to know is that the upload is not complete.
        throw cutOff(signal?.aborted ? 'cancelled' : redactSecrets((error as Error).message || String(error)));
      }
      if (expectedSize !== undefined && size !== expectedSize) {
        throw new QuantixError(ErrorCode.UPLOAD_INCOMPLETE, `The upload ended after ${size} of ${expectedSize} bytes`, {
          details: { bytesReceived: size, expectedSize },
        });
      }
      if (size === 0) throw new QuantixError(ErrorCode.UPLOAD_INCOMPLETE, 'The upload is empty');
      const digest = hash.digest('hex');
      this.checkDigest(digest, expected.expectedSha256);
      // No fsync: a staged file never outlives this process (its one-time token lives in memory,
      // and removeLeftovers deletes what a previous run left), and the node that fetches it
      // verifies its SHA-256 and makes its own copy durable. A tus upload is staged alike.
      await file.close();
      await rename(partial, final);
      return { path: final, sizeBytes: size, checksum: { algorithm: 'sha256' as const, value: digest } };
    } catch (error) {
      await file.close().catch(() => undefined);
      await rm(partial, { force: true });
      throw error;
    }
  }

  private async transfer(image: Image, nodeId: string, id: string, token: string): Promise<void> {
    const { hub, logger } = this.options;
    const location = image.location as NonNullable<Image['location']>;
    this.transferring.add(image.id);
    try {
      await this.setPhase(image.id, image.phase, { phase: 'downloading' });
      const result = await hub.request(
        nodeId,
        {
          op: 'image.download',
          imageId: image.id,
          poolId: location.poolId,
          relPath: location.relPath,
          sourceUrl: `${await this.controlPlaneUrlFor(nodeId)}/api/v1/uploads/${id}?token=${token}`,
          checksum: image.checksum,
          checksumUrl: null,
        },
        { timeoutMs: 24 * 3600_000 },
      );
      // The node has the bytes: the staged copy goes before the row says ready, so a reader who
      // sees ready never finds the upload still taking disk here.
      await this.releaseStaged(id);
      await this.setPhase(image.id, 'downloading', { phase: 'verifying' });
      await this.setPhase(image.id, 'verifying', {
        phase: 'ready',
        progress: null,
        sizeBytes: result.sizeBytes,
        // What the node read of the file it stored (a disk image's virtual size: the least a VM's disk of it can be).
        ...(result.virtualSizeBytes != null ? { virtualSizeBytes: result.virtualSizeBytes } : {}),
        fileModifiedAt: new Date(),
      });
    } catch (error) {
      logger.warn({ imageId: image.id, err: error }, 'upload transfer to the node failed');
      // As on success, the staged copy goes before the row settles: every path out of the try releases it.
      await this.releaseStaged(id).catch(() => undefined);
      await this.setPhase(image.id, null, {
        phase: 'error',
        error: {
          code: isQuantixError(error) ? error.code : ErrorCode.UPLOAD_FAILED,
          message: redactSecrets(`the node could not store the upload: ${(error as Error).message}`),
          retryable: false,
        },
      }).catch(() => undefined);
    } finally {
      this.transferring.delete(image.id);
    }
  }

  /** Forgets a staged upload and removes its file (once: a second call finds nothing). */
  private async releaseStaged(id: string): Promise<void> {
    const staged = this.staged.get(id);
    this.staged.delete(id);
    if (staged) await staged.remove();
  }

  /** Writes an upload's new phase and tells it on the event bus. */
  private async setPhase(
    imageId: string,
    from: ImagePhase | null,
    patch: ImagePatch & { phase: ImagePhase },
    options?: UpdateOptions,
  ): Promise<void> {
    const updated = await this.options.repositories.images.update(imageId, patch, options);
    this.options.events?.emit('image.phase', { imageId, from, to: updated.phase, error: updated.error });
  }

  /**
   * Uploads whose staged file is gone with the replica that held it (it died, or this replica
   * restarted, before a node had the file): their rows would wait for ever, so they are marked
   * error — the file has to be uploaded again. `liveReplicas` are the ids of replicas alive now.
   * At start, and in the health sweep.
   */
  async sweepOrphaned(liveReplicas: ReadonlySet<string>): Promise<string[]> {
    const { repositories, replica } = this.options;
    const swept: string[] = [];
    const busy = await repositories.images.list({ phase: ['pending', 'downloading', 'verifying'] });
    for (const image of busy) {
      const stagedOn = image.labels[STAGED_ON_LABEL];
      if (image.labels['quantix.io/source'] !== 'upload' || stagedOn === undefined) continue;
      const ours = stagedOn === replica?.id;
      if (ours ? this.transferring.has(image.id) : liveReplicas.has(stagedOn)) continue;
      try {
        await this.setPhase(
          image.id,
          image.phase,
          {
            phase: 'error',
            error: {
              code: ErrorCode.UPLOAD_FAILED,
              message: `The control-plane replica that held this upload (${stagedOn}) stopped before a node had stored it; upload the file again`,
              retryable: false,
            },
          },
          { expectedVersion: image.version },
        );
        swept.push(image.id);
      } catch (error) {
        if (!isQuantixError(error, ErrorCode.VERSION_CONFLICT)) throw error;
      }
    }
    return swept;
  }

  /** The control plane's URL as `nodeId` reaches it (it says so in its hello), else the public URL. */
  private controlPlaneUrlFor(nodeId: string): Promise<string> {
    // The staged file is on this replica: the node fetches it here.
    return controlPlaneUrlFor(this.options.repositories, nodeId, {
      replicaUrl: this.options.replica?.url,
      publicUrl: this.options.publicUrl,
    });
  }

  /** Size of a staged file, for Content-Length. */
  async size(staged: Staged): Promise<number> {
    return (await stat(staged.path)).size;
  }
}

/** UPLOAD_NO_SPACE: the staging directory cannot hold the upload (`why`, in words; not its path). */
function noStagingSpace(why: string, details: Record<string, number>, cause?: Error): QuantixError {
  return new QuantixError(
    ControlPlaneErrorCode.UPLOAD_NO_SPACE,
    `No room to stage the upload in the control plane's staging directory: ${why}; free space there and try again`,
    { details, ...(cause ? { cause } : {}) },
  );
}

/**
 * UPLOAD_NO_SPACE when a write into the staging directory failed because its disk is full
 * (ENOSPC, EDQUOT); null for any other failure. The one check for both ways of staging: the
 * simple upload here and a tus PATCH (the app's file store).
 */
export function stagingDiskFull(
  error: unknown,
  why: string,
  details: Record<string, number> = {},
): QuantixError | null {
  const code = (error as NodeJS.ErrnoException | null)?.code;
  return code === 'ENOSPC' || code === 'EDQUOT' ? noStagingSpace(why, details, error as Error) : null;
}

/**
 * The control plane's URL as node `nodeId` reaches it: this replica's own URL when it has one
 * (what the node fetches lives in this replica's memory or disk), else what the node reported in
 * its hello, else the public URL.
 */
export async function controlPlaneUrlFor(
  repositories: Repositories,
  nodeId: string,
  options: { replicaUrl?: string | undefined; publicUrl: () => string },
): Promise<string> {
  if (options.replicaUrl) return options.replicaUrl.replace(/\/+$/, '');
  const reported = (await repositories.nodes.get(nodeId))?.capabilities.controlPlaneUrl;
  if (typeof reported === 'string' && /^https?:\/\/[^/?#]+$/.test(reported)) return reported;
  return options.publicUrl();
}

/** Longest file name most file systems take (bytes of UTF-8). */
const MAX_NAME_BYTES = 255;

/**
 * The name an uploaded file is stored under: the name given, NFC, trimmed, one path segment,
 * visible (no dot first: scans skip hidden files), no control or bidirectional formatting
 * characters, ending in `extension`. INVALID_INPUT saying what is wrong otherwise.
 */
export function uploadFileName(given: string, extensions: string | readonly string[]): string {
  const refuse = (why: string) =>
    new QuantixError(ErrorCode.INVALID_INPUT, `Upload name ${JSON.stringify(given)} ${why}`, {
      details: { issues: [{ path: 'name', message: why }] },
    });
  // Names come from a query string or a form: anything else is refused, not thrown on.
  if (typeof given !== 'string') throw refuse('must be a string');
  const name = given.normalize('NFC').trim();
  if (name === '') throw refuse('is empty');
  if (name.includes('/') || name.includes('\\')) throw refuse('contains a path separator');
  if (name.includes('..')) throw refuse("contains '..'");
  if (hasUnsafeNameCharacter(name)) {
    throw refuse('contains a control character or a bidirectional formatting character (such as U+202E)');
  }
  if (name.startsWith('.')) throw refuse('starts with a dot (hidden files are not scanned)');
  if (Buffer.byteLength(name, 'utf8') > MAX_NAME_BYTES) throw refuse(`is longer than ${MAX_NAME_BYTES} bytes`);
  const endings = typeof extensions === 'string' ? [extensions] : extensions;
  if (!endings.some((ending) => name.toLowerCase().endsWith(ending) && name.length > ending.length))
    throw refuse(`must end in ${endings.join(' or ')}`);
  return name;
}

/**
 * An inspector's error about a staged file, naming the upload instead: where the control plane
 * stages files is its own business, not the client's (it would read it in message and details).
 */
function namingUpload(error: QuantixError, stagedPath: string, fileName: string): QuantixError {
  const named = (value: unknown) => (typeof value === 'string' ? value.split(stagedPath).join(fileName) : value);
  return new QuantixError(error.code, named(error.message) as string, {
    details: Object.fromEntries(Object.entries(error.details).map(([key, value]) => [key, named(value)])),
    cause: error,
  });
}
