import {
  ErrorCode,
  type EventBus,
  FIRMWARE_KINDS,
  type Image,
  type ImageError,
  type ImagePageQuery,
  type ImagePatch,
  type ImagePhase,
  isQuantixError,
  labelKeySchema,
  labelValueSchema,
  nameSchema,
  type PoolContentType,
  type PoolNodeState,
  parseOrThrow,
  QuantixError,
  type Repositories,
  replaceUnsafeLabelCharacters,
  type ScanInvalid,
  type ScanSkipped,
  vmsUsingImage,
} from '@quantix/core';
import { z } from 'zod';
import { ControlPlaneErrorCode } from '../errors.js';
import type { NodeHub } from '../hub/node-hub.js';
import { imagePathOnNode, nodesWithActivePool, requireNodeWithActivePool } from '../nodes/placement.js';
import { VM_LIMITS } from '../vms/vm-service.js';
import { readyInPool } from './exports.js';
import { SOURCE_LABELS, sourceFromImage } from './source.js';

/** An image with its path on the node asked about (null: not reachable there, or no node asked). */
export type ImageWithPath = Image & { path: string | null };

export interface RescanResult {
  /**
   * Each pool and content type scanned, with what its node found: the files taken, paths not
   * looked into, files left out as unusable (not an ISO; a disk image naming other files).
   */
  scanned: {
    poolId: string;
    nodeId: string;
    content: PoolContentType;
    files: number;
    skipped: ScanSkipped[];
    invalid: ScanInvalid[];
  }[];
  failed: { poolId: string; nodeId: string; content: PoolContentType; code: string; error: string }[];
}

/** What a verify found (ImageService.verify). */
export type VerifyOutcome = 'recorded' | 'matches' | 'mismatch' | 'accepted';

export interface VerifyResult {
  /** The image, as it is after the verify. */
  image: Image;
  /** The node that read the file. */
  nodeId: string;
  outcome: VerifyOutcome;
  /** The file's checksum, as it was read now. */
  checksum: NonNullable<Image['checksum']>;
  /** The checksum recorded before (null: none was). */
  recorded: Image['checksum'];
}

/** How long a verify waits for its node: a minute, plus the file read at 20 MB/s (a slow NFS export). */
const HASH_TIMEOUT_BASE_MS = 60_000;
const HASH_SLOWEST_BYTES_PER_MS = 20_000;

/**
 * Labels in Quantix's own namespaces (`quantix.io/copied-from`, `iso.quantix.io/volume-id`, …): what
 * downloads, copies, deletes and scans read back. A user's edit can neither set nor remove them.
 */
export function isQuantixLabel(key: string): boolean {
  return /^([^/]*\.)?quantix\.io\//.test(key);
}

/**
 * What a user may change of an image (PATCH /images/{id}), as a merge patch: what is left out
 * stays; a label given as null is removed; each requirement left out stays.
 */
export const updateImageSchema = z
  .strictObject({
    name: nameSchema.optional(),
    description: z.string().max(10_000).optional(),
    labels: z
      .record(labelKeySchema, labelValueSchema.nullable())
      .refine((labels) => Object.keys(labels).length <= 100, 'at most 100 labels in one change')
      .optional()
      .describe('labels to set, and to remove (null); the others stay. Keys in quantix.io are Quantix’s own'),
    requirements: z
      .strictObject({
        minCpu: z.number().int().min(1).max(VM_LIMITS.cpu).optional(),
        minMemoryMiB: z.number().int().min(0).max(VM_LIMITS.memoryMiB).optional(),
        minDiskGiB: z.number().int().min(0).max(VM_LIMITS.diskGiB).optional(),
        firmware: z.enum(FIRMWARE_KINDS).optional(),
      })
      .optional()
      .describe('what a VM of the image needs at least (0, any: nothing); VMs below it are refused'),
    expectedVersion: z
      .number()
      .int()
      .optional()
      .describe('refuse (VERSION_CONFLICT) unless the image is still at this version'),
  })
  .refine(
    (change) => Object.keys(change).some((key) => key !== 'expectedVersion'),
    'give name, description, labels or requirements',
  );
export type UpdateImageInput = z.input<typeof updateImageSchema>;

/** Labels an image may have at most after an edit (Quantix's own included): edits cannot grow a row without end. */
const MAX_IMAGE_LABELS = 200;

/** How often an edit without expectedVersion is applied again after a concurrent write. */
const EDIT_ATTEMPTS = 5;

/** Phases in which an image's row is a job's (its download's, its deletion's): nothing else writes it. */
const OWNED_BY_WORK: readonly ImagePhase[] = ['pending', 'downloading', 'verifying', 'deleting'];

/** Image rows as users see, change and remove them: listings with node paths, edits, rescans, deletion. */
export class ImageService {
  constructor(
    private readonly options: {
      repositories: Repositories;
      hub: Pick<NodeHub, 'isConnected' | 'request'>;
      /** Whether a download runs for an image now (its row must not be deleted under it). */
      isDownloading: (imageId: string) => boolean;
      /** Told of each edit and deletion (`image.changed`), for live views. */
      events?: EventBus;
    },
  ) {}

  /**
   * A page of images and the total (one statement), each with its path on `nodeId` when given;
   * `nextCursor`, passed back as `after`, gives the next page at any depth for the same cost.
   */
  async list(
    filter: ImagePageQuery,
    nodeId?: string,
  ): Promise<{ images: ImageWithPath[]; total: number; nextCursor: string | null }> {
    const [page, states] = await Promise.all([
      this.options.repositories.images.page(filter),
      nodeId ? this.options.repositories.pools.listNodeStates({ nodeId }) : undefined,
    ]);
    return { ...page, images: this.withPaths(page.images, nodeId, states) };
  }

  async get(imageId: string, nodeId?: string): Promise<ImageWithPath> {
    const [image, states] = await Promise.all([
      this.options.repositories.images.require(imageId),
      nodeId ? this.options.repositories.pools.listNodeStates({ nodeId }) : undefined,
    ]);
    return this.withPaths([image], nodeId, states)[0] as ImageWithPath;
  }

  /**
   * Changes an image's name, description, labels or requirements (see updateImageSchema). Refused
   * while a download or deletion owns the row (IMAGE_BUSY: its writes check the version an edit
   * would bump), and for Quantix's own labels (INVALID_INPUT). Without `expectedVersion` an edit
   * applies to the row as it is then, read again when something else wrote it meanwhile.
   */
  async update(imageId: string, input: UpdateImageInput): Promise<Image> {
    const { expectedVersion, ...change } = parseOrThrow(updateImageSchema, input, 'image change');
    const reserved = Object.keys(change.labels ?? {}).filter(isQuantixLabel);
    if (reserved.length > 0) {
      throw new QuantixError(
        ErrorCode.INVALID_INPUT,
        `Invalid image change: ${reserved.join(', ')} ${reserved.length === 1 ? 'is a label' : 'are labels'} of Quantix's own (quantix.io), which it reads back; ${reserved.length === 1 ? 'it' : 'they'} cannot be set or removed`,
        {
          details: {
            issues: reserved.map((key) => ({ path: `labels.${key}`, message: `${key} is a label of Quantix’s own` })),
          },
        },
      );
    }
    for (let attempt = 1; ; attempt++) {
      const image = await this.options.repositories.images.require(imageId);
      if (OWNED_BY_WORK.includes(image.phase)) {
        throw new QuantixError(
          ControlPlaneErrorCode.IMAGE_BUSY,
          image.phase === 'deleting'
            ? `Image ${image.name} is being deleted`
            : `Image ${image.name} is ${image.phase}; change it once it is ready or has failed, or cancel its download first (\`quantix images cancel\`, POST /images/{id}/cancel)`,
          { details: { imageId: image.id, phase: image.phase } },
        );
      }
      const labels = change.labels === undefined ? undefined : mergeLabels(image.labels, change.labels);
      if (labels && Object.keys(labels).length > MAX_IMAGE_LABELS) {
        throw new QuantixError(
          ErrorCode.INVALID_INPUT,
          `Invalid image change: image ${image.name} would have ${Object.keys(labels).length} labels, and an image has at most ${MAX_IMAGE_LABELS}; remove some (null) first`,
          { details: { issues: [{ path: 'labels', message: `at most ${MAX_IMAGE_LABELS} labels on an image` }] } },
        );
      }
      const patch: ImagePatch = {
        ...(change.name !== undefined ? { name: change.name } : {}),
        ...(change.description !== undefined ? { description: change.description } : {}),
        ...(labels ? { labels } : {}),
        ...(change.requirements !== undefined
          ? { requirements: { ...image.requirements, ...definedOnly(change.requirements) } }
          : {}),
      };
      try {
        const updated = await this.options.repositories.images.update(image.id, patch, {
          expectedVersion: expectedVersion ?? image.version,
        });
        this.options.events?.emit('image.changed', { imageId: image.id, deleted: false });
        return updated;
      } catch (error) {
        // Someone wrote the row between the read and the write: the caller named no version, so
        // the edit is applied to the row as it is now. Each retry means another write landed, so
        // this many edits at once all land; beyond that the conflict is the caller's.
        if (
          expectedVersion === undefined &&
          attempt < EDIT_ATTEMPTS &&
          isQuantixError(error, ErrorCode.VERSION_CONFLICT)
        )
          continue;
        throw error;
      }
    }
  }

  /**
   * Asks nodes to scan pools again (all, or one), each content type a pool holds (ISOs, disk
   * images): on each connected node on which the pool is active — one for a shared pool, whose
   * files are the same everywhere. Results arrive as scan.result and are ingested as they come
   * (files added by hand become images; ready images whose files are gone become `missing`);
   * this answers which scans ran and which failed.
   */
  async rescan(poolId?: string): Promise<RescanResult> {
    const result: RescanResult = { scanned: [], failed: [] };
    for (const target of await this.rescanTargets(poolId)) {
      for (const content of target.contents) {
        const scan = { poolId: target.poolId, nodeId: target.nodeId, content };
        try {
          const found = await this.options.hub.request(
            scan.nodeId,
            { op: 'pool.scan', poolId: scan.poolId, content },
            { timeoutMs: 300_000 },
          );
          result.scanned.push({ ...scan, files: found.files, skipped: found.skipped, invalid: found.invalid ?? [] });
        } catch (error) {
          const code = isQuantixError(error) ? error.code : ErrorCode.INTERNAL_ERROR;
          result.failed.push({ ...scan, code, error: (error as Error).message });
        }
      }
    }
    return result;
  }

  /**
   * The scans a rescan asks for (see rescan), without running them: each pool and node, with the
   * content types to scan there. The periodic rescan queues them (a job scans every content type).
   */
  async rescanTargets(
    poolId?: string,
  ): Promise<{ poolId: string; nodeId: string; contents: readonly PoolContentType[] }[]> {
    const { repositories, hub } = this.options;
    const pools = poolId ? [await repositories.pools.require(poolId)] : await repositories.pools.list();
    const targets: { poolId: string; nodeId: string; contents: readonly PoolContentType[] }[] = [];
    for (const pool of pools) {
      const nodeIds = await nodesWithActivePool({ repositories, hub, poolId: pool.id });
      for (const nodeId of pool.shared ? nodeIds.slice(0, 1) : nodeIds) {
        targets.push({ poolId: pool.id, nodeId, contents: pool.contentTypes });
      }
    }
    return targets;
  }

  /**
   * Reads a ready image's file whole on a connected node holding its pool (file.hash) and holds
   * it to the checksum recorded for the image: with none recorded (a file a scan found), this one
   * is recorded — `recorded`; the same one — `matches`; another — `mismatch`: the image goes to
   * `error` (IMAGE_FILE_MISMATCH), so no VM is made from a file that is not the one recorded, unless
   * `accept`, which records the file's in its place — `accepted`. An image a verify took out of use
   * so is read again the same way: ready again when its file matches (put back) or is accepted. The
   * request waits for the whole read, as long as `sha256sum` of the file takes there (bench/copy).
   * A row that changed meanwhile is VERSION_CONFLICT.
   */
  async verify(imageId: string, options: { accept?: boolean } = {}): Promise<VerifyResult> {
    const { repositories, hub } = this.options;
    const image = await repositories.images.require(imageId);
    const mismatched = image.phase === 'error' && image.error?.code === ErrorCode.IMAGE_FILE_MISMATCH;
    const { poolId, relPath } = mismatched && image.location ? image.location : readyInPool(image, 'verified');
    const nodeId = await requireNodeWithActivePool({
      repositories,
      hub,
      poolId,
      nodeId: image.nodeId,
      consequence: `so image ${image.name} cannot be read`,
      details: { imageId },
    });
    const recorded = image.checksum;
    const read = await hub.request(
      nodeId,
      { op: 'file.hash', poolId, relPath, algorithm: recorded?.algorithm ?? 'sha256' },
      { timeoutMs: HASH_TIMEOUT_BASE_MS + Math.ceil((image.sizeBytes ?? 0) / HASH_SLOWEST_BYTES_PER_MS) },
    );
    const same = recorded !== null && recorded.value.toLowerCase() === read.checksum.value;
    const outcome: VerifyOutcome = same
      ? 'matches'
      : recorded === null
        ? 'recorded'
        : options.accept
          ? 'accepted'
          : 'mismatch';
    const answer = (written: Image): VerifyResult => ({
      image: written,
      nodeId,
      outcome,
      checksum: read.checksum,
      recorded,
    });
    // Written with the version read before the file was: a scan, edit or delete meanwhile wins.
    const write = (patch: ImagePatch, via?: ImagePhase): Promise<Image> =>
      repositories.images
        .update(image.id, patch, { expectedVersion: image.version, ...(via ? { via } : {}) })
        .catch((error: unknown) => {
          if (!isQuantixError(error, ErrorCode.VERSION_CONFLICT)) throw error;
          throw new QuantixError(
            ErrorCode.VERSION_CONFLICT,
            `Image ${image.name} changed while its file was read (a scan, an edit or a deletion); verify it again`,
            { details: { imageId } },
          );
        });
    const changed = (written: Image, from: ImagePhase): VerifyResult => {
      const { events } = this.options;
      if (written.phase !== from)
        events?.emit('image.phase', { imageId, from, to: written.phase, error: written.error });
      events?.emit('image.changed', { imageId, deleted: false });
      return answer(written);
    };
    if (outcome === 'mismatch') {
      if (mismatched) return answer(image);
      const algorithm = read.checksum.algorithm;
      const again = sourceFromImage(image) !== null;
      const error: ImageError = {
        code: ErrorCode.IMAGE_FILE_MISMATCH,
        message: `its file has ${algorithm} ${read.checksum.value}, not the one recorded: it is not the file that was ${again ? 'downloaded' : 'verified'} (changed by hand, or damaged). No VM is made from it until a verify finds the recorded bytes again or accepts these (\`quantix images verify --accept\`)${again ? ', or a retry downloads it again' : ''}`,
        retryable: again,
      };
      // No progress: the download's 100% would read as how far a transfer got.
      return changed(await write({ phase: 'error', error, progress: null }), 'ready');
    }
    if (outcome === 'matches' && !mismatched) return answer(image);
    // Out of error only through verifying, which the read of the whole file just now was: in one
    // write, so the row is never left verifying (a restart would take it for a download).
    const written = await write(
      {
        ...(mismatched ? { phase: 'ready' as const, error: null } : {}),
        ...(outcome === 'matches'
          ? {}
          : {
              checksum: read.checksum,
              sizeBytes: read.sizeBytes,
              ...(read.modifiedAt ? { fileModifiedAt: new Date(read.modifiedAt) } : {}),
            }),
      },
      mismatched ? 'verifying' : undefined,
    );
    return changed(written, image.phase);
  }

  /**
   * Deletes an image and its file: refused (IN_USE, naming them) while it downloads or while any
   * VM boots from it, is backed by it, holds it in a drive or owns its file. The row is marked
   * `deleting` (with the version read), the file is removed by a node that holds the pool, then
   * the row goes. When the file cannot be removed the row becomes error, retryable, and says why.
   * With `keepFile` only the row goes, the file left where it is (a pool no node can reach any
   * more); the same refusals hold.
   */
  async delete(imageId: string, options: { keepFile?: boolean } = {}): Promise<void> {
    const { repositories, hub } = this.options;
    const image = await repositories.images.require(imageId);
    if (this.options.isDownloading(image.id)) {
      throw new QuantixError(
        ErrorCode.IN_USE,
        `Image ${image.name} is being downloaded; cancel it first (\`quantix images cancel\`, POST /images/{id}/cancel) or wait for it to finish`,
        {
          details: { imageId: image.id },
        },
      );
    }
    const users = vmsUsingImage(await repositories.vms.list(), image);
    if (users.length > 0) {
      throw new QuantixError(
        ErrorCode.IN_USE,
        `Image ${image.name} is in use by ${users.length} VM(s): ${users.map((u) => `${u.vm.name} (${u.uses.join(', ')})`).join('; ')}; ${users.every((u) => u.ejectable) ? 'eject it from their CD-ROM drives (`quantix vms eject`, POST /vms/{id}/eject) or delete them first' : 'delete them first'}`,
        { details: { vms: users.map((u) => ({ id: u.vm.id, name: u.vm.name, uses: u.uses })) } },
      );
    }
    const deleting = await repositories.images.update(
      image.id,
      { phase: 'deleting' },
      { expectedVersion: image.version },
    );
    if (image.location && image.phase !== 'missing' && !options.keepFile) {
      try {
        const nodeId = await requireNodeWithActivePool({
          repositories,
          hub,
          poolId: image.location.poolId,
          nodeId: image.nodeId,
          consequence:
            'the file cannot be removed now (a delete with keepFile, `quantix images delete --keep-file`, forgets the image and leaves its file)',
        });
        const importOriginal = image.labels[SOURCE_LABELS.importFormat] !== undefined;
        await hub.request(nodeId, { op: 'image.remove', ...image.location, importOriginal }, { timeoutMs: 60_000 });
      } catch (error) {
        await repositories.images.update(
          image.id,
          {
            phase: 'error',
            error: {
              code: isQuantixError(error) ? error.code : ErrorCode.DELETE_FAILED,
              message: `could not remove the file: ${(error as Error).message}`,
              retryable: true,
            },
          },
          { expectedVersion: deleting.version },
        );
        throw error;
      }
    }
    await repositories.images.delete(image.id, { expectedVersion: deleting.version });
    this.options.events?.emit('image.changed', { imageId: image.id, deleted: true });
  }

  /** Images (fresh from the repository) with their paths on `nodeId` (null without one), given the node's pool states. */
  private withPaths(images: Image[], nodeId: string | undefined, nodeStates: PoolNodeState[] = []): ImageWithPath[] {
    // The images are the caller's fresh rows: the path is added in place, not by copying each.
    if (!nodeId) return images.map((image) => Object.assign(image, { path: null }));
    const states = new Map(nodeStates.map((s) => [s.poolId, s]));
    return images.map((image) =>
      Object.assign(image, {
        path: imagePathOnNode(image, nodeId, image.location ? states.get(image.location.poolId) : null),
      }),
    );
  }
}

/**
 * `labels` with `change` applied: a string sets a label, null removes it. A label the row got before
 * labels were checked (an ISO volume id with terminal escapes) is written back with those
 * characters replaced, as a scan now records them: else no edit of that image could be saved.
 */
function mergeLabels(labels: Record<string, string>, change: Record<string, string | null>): Record<string, string> {
  const merged = replaceUnsafeLabelCharacters(labels);
  for (const [key, value] of Object.entries(change)) {
    if (value === null) delete merged[key];
    else merged[key] = value;
  }
  return merged;
}

/** The fields of `value` that are not undefined (a merge patch leaves out what stays). */
function definedOnly<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}
