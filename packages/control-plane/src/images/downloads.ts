import {
  type CatalogEntry,
  CatalogRegistry,
  type Checksum,
  type ChecksumAlgorithm,
  ErrorCode,
  type EventBus,
  type HelloDownload,
  type Image,
  type ImageCatalog,
  ImageCatalogToken,
  type ImageDownloadResult,
  type ImageError,
  ImageFetcherToken,
  type ImageFormat,
  type ImageImportResultMessage,
  type ImageKind,
  type ImagePhase,
  type ImageRequirements,
  isQuantixError,
  isRetryableError,
  type NewImage,
  type OsInfo,
  type Quantix,
  QuantixError,
  type Repositories,
  redactSecrets,
  StorageBackendToken,
  type StoragePool,
  truncateText,
} from '@quantix/core';
import type { Logger } from 'pino';
import { Batcher } from '../hub/batcher.js';
import {
  DOWNLOAD_SHUTDOWN,
  type DownloadExecutor,
  type DownloadProgressUpdate,
  LocalDownloadExecutor,
} from './executors.js';
import { readyInPool } from './exports.js';
import { RowWriter } from './row-writer.js';
import {
  type DownloadSource,
  defaultRelPathForEntry,
  defaultRelPathForImport,
  defaultRelPathForUrl,
  type ImportOptions,
  SOURCE_LABELS,
  sourceFromImage,
  sourceOfEntry,
  sourceToLabels,
  validateSource,
} from './source.js';

const BUSY: readonly ImagePhase[] = ['pending', 'downloading', 'verifying'];
/** Why a job's controller was aborted by `cancel`. */
const CANCELLED_BY_REQUEST = 'cancelled by request';
/** What a cancelled download's row says. */
const CANCELLED_ERROR: ImageError = {
  code: ErrorCode.DOWNLOAD_CANCELLED,
  message: 'The download was cancelled; retry it to resume, or delete the image',
  retryable: true,
};

/**
 * A download's failure as the row records it. Whether trying again can help is what the failure
 * says itself (`details.retryable`: the fetcher knows a 404 is final and a reset connection is
 * not; a node passes it on), else its code's flag in the error registry.
 */
export function downloadError(error: unknown): ImageError {
  // A copy's source URL carries its ticket: no message quoting it keeps it.
  if (isQuantixError(error)) {
    return {
      code: error.code,
      message: truncateText(redactSecrets(error.message)),
      retryable: isRetryableError(error),
    };
  }
  return {
    code: ErrorCode.DOWNLOAD_FAILED,
    message: truncateText(redactSecrets(String((error as Error)?.message ?? error))),
    retryable: true,
  };
}

/** The legal steps from a phase to ready (the transition table allows no shortcut from these). */
const STEPS_TO_READY: Partial<Record<ImagePhase, ImagePhase[]>> = {
  pending: [],
  downloading: ['verifying'],
  verifying: [],
  error: ['downloading', 'verifying'],
  missing: [],
};

export interface StartDownloadOptions {
  poolId: string;
  /** A catalog entry's id; or give `source`. */
  catalogId?: string;
  /** A URL with its checksum (or checksum file), for an image that is in no catalog. */
  source?: {
    url: string;
    checksum?: { algorithm: ChecksumAlgorithm; value: string } | null;
    checksumUrl?: string | null;
    checksumAlgorithm?: ChecksumAlgorithm | null;
    /** Convert what arrives (on the node, image.import): a disk image of any format qemu-img reads, or an OVA. */
    import?: ImportOptions;
  };
  /**
   * A copy of a ready, checksummed image (its id): same bytes, kind, format, os, requirements and
   * catalog entry, labelled `quantix.io/copied-from`. Copied on the node when the runner reaches
   * the source's pool, else fetched from the control plane's content of the source (resumable,
   * verified), with a fresh copy ticket at every (re)launch.
   */
  copyOf?: string;
  /** The runner (node) to download on; default any that holds the pool. */
  nodeId?: string;
  /** A catalog download copies a verified image of the entry already in the cluster, when one is reachable (default true). */
  preferCluster?: boolean;
  /** Default: `images/<entry id>.<format>` (`iso/…` for ISOs), `images/<URL file name>` for a source, the source's for a copy. */
  relPath?: string;
  name?: string;
  description?: string;
  labels?: Record<string, string>;
  format?: ImageFormat | null;
  os?: Partial<OsInfo>;
  /** Default: the copy's or the catalog entry's kind, else cloud (a URL is a disk image). */
  kind?: ImageKind;
  /** What a VM of it needs. Default: the copy's or the catalog entry's. */
  requirements?: ImageRequirements;
}

export interface DownloadHandle {
  /** The row as it is now (pending, or further along if the download was already under way). */
  image: Image;
  /** Settles with the row when the download ends here: ready, error with the reason, or as a shutdown left it. */
  completion: Promise<Image>;
}

export interface ReconcileResult {
  /** Busy rows resumed at once, with their completion. */
  resumed: DownloadHandle[];
  /** Rows that cannot be resumed, now error with the reason. */
  failed: Image[];
  /** Busy rows waiting for a runner (a node holding the pool) to come back within the grace period. */
  waiting: Image[];
  /** Busy rows that are not downloads (uploads): left to their owner. */
  skipped: Image[];
}

export interface DownloadServiceOptions {
  repositories: Repositories;
  catalog: ImageCatalog;
  /** Where the bytes move: NodeDownloadExecutor (nodes over the hub) or LocalDownloadExecutor (this process). */
  executor: DownloadExecutor;
  events?: EventBus;
  logger: Logger;
  /** After a start or the loss of a runner, how long a busy download may wait for one. Default 2 min. */
  resumeGraceMs?: number;
  /** Least time between progress writes to one row. Default 500 ms. */
  progressWriteMs?: number;
  /**
   * Runners held by other replicas (several control planes on one database): a download into a
   * pool whose only runner is connected to another replica is started there, where its node's
   * progress arrives.
   */
  elsewhere?: RemoteDownloads;
  /** Copies between nodes: the URL of an image's content as `runner` reaches it (with a fresh ticket, when asked). */
  copies?: CopySources;
  /**
   * Records the checksum of a ready image that has none (ImageService.verify), read on a node
   * holding it: what a copy of a file a scan found is verified against. Absent: such an image is
   * not copied (IMAGE_NO_CHECKSUM).
   */
  checksums?: { record(imageId: string): Promise<Image> };
}

/** Where a node fetches another image's bytes for a copy (DownloadServiceOptions.copies). */
export interface CopySources {
  contentUrl(imageId: string, runner: string, options: { ticket: boolean }): Promise<string>;
  /**
   * The checksum a catalog entry's sums file publishes now (for an entry that gives no checksum
   * itself): a copy in the cluster stands in for a download only when it has that one, so an
   * upstream that moved on is downloaded, not an old build copied. Absent: such entries are downloaded.
   */
  upstreamChecksum?(entry: CatalogEntry): Promise<Checksum>;
}

/** Whether a copy's source can no longer be copied: gone, not ready, moved out of its pool, unverifiable. */
function sourceGone(error: unknown): boolean {
  return [
    ErrorCode.NOT_FOUND,
    ErrorCode.IMAGE_NOT_READY,
    ErrorCode.IMAGE_NO_LOCATION,
    ErrorCode.IMAGE_NO_CHECKSUM,
  ].some((code) => isQuantixError(error, code));
}

/** The label naming the image a copy was made from (the API shows it as `copiedFrom`). */
export const COPIED_FROM_LABEL = 'quantix.io/copied-from';

/**
 * A URL download, an import or a copy whose location in the pool is taken (the file name of
 * its URL or of its source): the row there is joined only when it is this very download asked
 * again — from the same source, verified the same way, under the name asked for. Anything else
 * is refused (ALREADY_EXISTS), never handed back as what was asked for: another file of the
 * same name, or a failed row whose source lacked the checksum this request brings.
 */
function refuseAnotherDownload(
  existing: Image,
  wanted: { source: DownloadSource; from: Image | undefined; name: string | undefined; pool: StoragePool },
): void {
  const reason = howDownloadDiffers(existing, wanted);
  if (reason === null) return;
  const relPath = existing.location?.relPath;
  throw new QuantixError(
    ErrorCode.ALREADY_EXISTS,
    `Pool ${wanted.pool.name} already has an image at ${relPath} (${existing.name}, ${existing.phase}), and it is not this download: ${reason}. Delete it first, or use another pool`,
    { details: { imageId: existing.id, poolId: wanted.pool.id, relPath, phase: existing.phase } },
  );
}

/** Why the row `existing` is not the download `wanted`, or null when it is. */
function howDownloadDiffers(
  existing: Image,
  wanted: { source: DownloadSource; from: Image | undefined; name: string | undefined },
): string | null {
  const { source, from } = wanted;
  const had = sourceFromImage(existing);
  if (from) {
    if (existing.labels[COPIED_FROM_LABEL] !== from.id) return `it is not a copy of image ${from.name}`;
  } else if (!had) {
    return 'it was not downloaded';
  } else if (had.url !== source.url) {
    return `it was downloaded from ${had.url}`;
  } else if (source.checksum && !sameChecksum(had.checksum, source.checksum)) {
    return had.checksum ? `it is verified against another ${had.checksum.algorithm}` : 'it has no checksum';
  } else if (source.checksumUrl && had.checksumUrl !== source.checksumUrl) {
    return `it is verified against another checksum file (${had.checksumUrl ?? 'none'})`;
  } else if (!sameImport(had.import, source.import)) {
    return 'it was imported with other options (format, original kept, source format)';
  }
  if (wanted.name !== undefined && wanted.name !== existing.name) return `it is named ${existing.name}`;
  return null;
}

function sameChecksum(a: Checksum | null, b: Checksum): boolean {
  return a?.algorithm === b.algorithm && a.value.toLowerCase() === b.value.toLowerCase();
}

function sameImport(a: ImportOptions | undefined, b: ImportOptions | undefined): boolean {
  if (!a || !b) return a === b;
  return a.format === b.format && a.keepOriginal === b.keepOriginal && a.claimedFormat === b.claimedFormat;
}
/** How a copy's bytes moved: `local` (file.copy on the node) or `http` (fetched from the control plane). */
export const COPY_METHOD_LABEL = 'quantix.io/copy-method';

/** Downloads started by the replica that holds the runner (see DownloadServiceOptions.elsewhere). */
export interface RemoteDownloads {
  /** A runner connected to another replica that can download into the pool (or `wanted`, if it can), or null. */
  pick(target: { poolId: string; nodeId: string | null }, wanted?: string): Promise<string | null>;
  /** Starts (or joins) the download on the replica holding `runner`; the image's id. */
  start(runner: string, options: StartDownloadOptions): Promise<string>;
  /** Downloads the image again on the replica holding `runner`. */
  retry(runner: string, imageId: string): Promise<void>;
}

/** How often a caller waiting on a download run by another replica reads its row. */
const REMOTE_POLL_MS = 500;

interface Job {
  runner: string;
  controller: AbortController;
  completion: Promise<Image>;
}

/**
 * The download lifecycle — the only one. An image row is the truth: it moves pending →
 * downloading → verifying → ready, or to error with { code, message, retryable }, and progress
 * is written to it (throttled) and emitted as events. The bytes move through an executor: on a
 * node that holds the pool, or in this process. Every write carries the version the job last
 * wrote, so a row someone else changed (deleted, taken over) stops the job rather than being
 * overwritten. Where the bytes come from is recorded in the row, so that after a restart of
 * either side a busy row is resumed from its partial file by whoever can run it first — a node
 * that still has it in hand is asked again and attaches, one that finished has its result
 * applied — or, when nobody can within the grace period, marked error and retryable. Nothing
 * stays stuck, and nothing is fetched twice.
 */
export class DownloadService {
  private readonly jobs = new Map<string, Job>();
  private readonly locks = new Map<string, Promise<unknown>>();
  private readonly graceTimers = new Map<string, NodeJS.Timeout>();
  /** Runners that became ready, taken together (resumeOn). */
  private readonly readyRunners = new Batcher<string, undefined>(async (runners) => {
    await this.resumeOn(runners);
    return runners.map(() => undefined);
  });
  private closed = false;

  constructor(private readonly options: DownloadServiceOptions) {
    const { executor, logger } = options;
    executor.onReady(async (runner) => {
      await this.readyRunners.add(runner).catch((e) => logger.error({ err: e, runner }, 'resume failed'));
    });
    executor.onInHand((runner, downloads) =>
      this.adopt(runner, downloads).catch((e) => logger.error({ err: e, runner }, 'adoption failed')),
    );
  }

  /** Whether this service runs the download of `imageId` now. */
  isRunning(imageId: string): boolean {
    return this.jobs.has(imageId);
  }

  /**
   * Starts downloading a catalog entry (or a URL) into a pool, or joins the download already
   * under way: one image per catalog entry and pool, one job per image. A ready image is
   * returned as it is; a failed or missing one is downloaded again from its partial file.
   */
  async download(options: StartDownloadOptions): Promise<DownloadHandle> {
    this.assertOpen();
    const { repositories } = this.options;
    const found = await this.sourceFor(options);
    const { entry } = found;
    let { source, from } = found;
    const kind = options.kind ?? from?.kind ?? entry?.kind ?? 'cloud';
    const relPath =
      options.relPath ??
      (from?.location?.relPath as string | undefined) ??
      (entry
        ? defaultRelPathForEntry(entry)
        : source.import
          ? defaultRelPathForImport(source.url, source.import.format)
          : defaultRelPathForUrl(source.url, kind));
    const pool = await repositories.pools.require(options.poolId);
    const content = kind === 'iso' ? 'iso' : 'images';
    if (!pool.contentTypes.includes(content)) {
      throw new QuantixError(
        ErrorCode.INVALID_INPUT,
        `Pool ${pool.name} does not hold ${content}; choose a pool whose content types include it`,
        { details: { poolId: pool.id, contentTypes: pool.contentTypes } },
      );
    }
    if (from?.location && from.location.poolId === pool.id && from.location.relPath === relPath) {
      throw new QuantixError(
        ErrorCode.ALREADY_EXISTS,
        `Image ${from.name} is already at ${relPath} in pool ${pool.name}; copy it to another pool`,
        { details: { imageId: from.id, poolId: pool.id, relPath } },
      );
    }
    const catalogId = entry?.id ?? from?.catalogId ?? null;
    const lockKey = catalogId ? `catalog\0${catalogId}\0${pool.id}` : `location\0${pool.id}\0${relPath}`;
    return this.withLock(lockKey, async () => {
      const existing = catalogId
        ? (await repositories.images.findByCatalogIds([catalogId], { poolId: pool.id }))[0]
        : await repositories.images.getByLocation({ poolId: pool.id, relPath });
      if (existing) {
        if (!catalogId) refuseAnotherDownload(existing, { source, from, name: options.name, pool });
        return this.join(existing, options.nodeId);
      }
      // A copy runs, when nobody was named, on a node that holds both pools (a local copy) if one can.
      const wanted = options.nodeId ?? (from ? await this.nodeHoldingBoth(from, pool.id) : undefined);
      const picked = await this.pickRunner({ poolId: pool.id, nodeId: null }, wanted);
      if (entry && !from && !picked?.remote && this.options.copies && options.preferCluster !== false) {
        // A verified copy of the entry already in the cluster is closer than the internet.
        const near = await this.clusterCopyOf(entry);
        if (near) {
          from = near;
          source = await this.copySource(near, picked?.runner ?? null);
          this.options.logger.info(
            { catalogId: entry.id, poolId: pool.id, copiedFrom: near.id },
            'catalog download copies a verified image already in the cluster instead of fetching it',
          );
        }
      }
      // A source the policy refuses is refused now, before a row is recorded or a byte requested.
      await this.options.executor.preflight?.(
        { sourceUrl: source.url, checksumUrl: source.checksumUrl },
        picked && !picked.remote ? picked.runner : null,
      );
      if (picked?.remote) {
        const imageId = await (this.options.elsewhere as RemoteDownloads).start(picked.runner, {
          ...options,
          nodeId: picked.runner,
        });
        return this.followRemote(await repositories.images.require(imageId));
      }
      const runner = picked?.runner;
      if (!runner) {
        throw new QuantixError(
          ErrorCode.POOL_NOT_ACTIVE_ON_NODE,
          `Pool ${pool.name} is not active on any connected node, so nothing can download into it`,
          { details: { poolId: pool.id } },
        );
      }
      // A copy fetched from another node needs its whole size in the pool: without room, it is
      // refused now, with nothing recorded, not answered 202 and failed once the node starts. A
      // copy on the node itself may be a clone sharing the source's blocks: the node judges that.
      if (options.copyOf !== undefined && from?.sizeBytes != null && !(await this.copiesLocally(from, runner))) {
        await this.requireRoom(runner, { pool, relPath, sizeBytes: from.sizeBytes });
      }
      const requirements = options.requirements ?? from?.requirements ?? entry?.requirements;
      const input: NewImage = {
        name:
          options.name ??
          (from && !entry ? from.name : undefined) ??
          entry?.name ??
          relPath.slice(relPath.lastIndexOf('/') + 1),
        description: options.description ?? from?.description ?? entry?.description ?? '',
        labels: {
          ...(options.labels ?? {}),
          ...sourceToLabels(source),
          ...(from ? { [COPIED_FROM_LABEL]: from.id } : {}),
        },
        kind,
        format: options.format ?? from?.format ?? entry?.format ?? source.import?.format ?? null,
        os: { ...(from?.os ?? entry?.os ?? {}), ...(options.os ?? {}) },
        ...(requirements ? { requirements } : {}),
        catalogId,
        checksum: source.checksum,
        phase: 'pending',
        location: { poolId: pool.id, relPath },
        // A node-local pool's files are on one node: its rows say which.
        nodeId: pool.shared || runner === 'local' ? null : runner,
      };
      let image: Image;
      try {
        image = await repositories.images.create(input);
      } catch (error) {
        // Made by someone else between our read and our insert (joined), or the location is
        // taken by another image (refused, unless it is this very download).
        if (!isQuantixError(error, ErrorCode.ALREADY_EXISTS)) throw error;
        const raced = catalogId
          ? (await repositories.images.findByCatalogIds([catalogId], { poolId: pool.id }))[0]
          : undefined;
        if (raced) return this.join(raced, options.nodeId);
        const there = await repositories.images.getByLocation({ poolId: pool.id, relPath });
        if (!there) throw error;
        refuseAnotherDownload(there, { source, from, name: options.name, pool });
        return this.join(there, options.nodeId);
      }
      this.emitPhase(image.id, null, 'pending', null);
      return { image, completion: this.launch(image, source, runner) };
    });
  }

  /** POOL_NO_SPACE unless the file system `relPath` of the pool is on has `sizeBytes` free, as `runner` reads it. */
  private async requireRoom(
    runner: string,
    { pool, relPath, sizeBytes }: { pool: StoragePool; relPath: string; sizeBytes: number },
  ): Promise<void> {
    const availableBytes = await this.options.executor.freeBytes?.(runner, { poolId: pool.id, relPath });
    if (availableBytes == null || sizeBytes <= availableBytes) return;
    throw new QuantixError(
      ErrorCode.POOL_NO_SPACE,
      `Pool ${pool.name} has no room for the copy: it is ${sizeBytes} bytes and ${availableBytes} are free there; free space in the pool or copy into another`,
      { details: { poolId: pool.id, nodeId: runner, sizeBytes, availableBytes } },
    );
  }

  /** Starts a download and returns its row at once (the HTTP API's 202). */
  async start(options: StartDownloadOptions): Promise<Image> {
    return (await this.download(options)).image;
  }

  /** Downloads a failed (or missing) image again; its partial file, if any, is resumed. */
  async retry(imageId: string, options: { nodeId?: string } = {}): Promise<DownloadHandle> {
    this.assertOpen();
    return this.withLock(`image\0${imageId}`, async () => {
      const image = await this.options.repositories.images.require(imageId);
      return this.join(image, options.nodeId);
    });
  }

  /**
   * Where a row's bytes come from: what it recorded, or — for a row made before sources were
   * recorded — its catalog entry as the catalog has it now.
   */
  private async sourceOf(image: Image): Promise<DownloadSource | null> {
    const recorded = sourceFromImage(image);
    if (recorded || !image.catalogId) return recorded;
    const entry = await this.findEntry(image.catalogId).catch(() => null);
    return entry ? sourceOfEntry(entry) : null;
  }

  /**
   * Stops a download (an import, a copy): its row becomes error DOWNLOAD_CANCELLED, retryable —
   * what arrived stays in the pool for a retry to resume from (deleting the image removes it).
   * A download this replica runs stops at once. One another replica runs (or none, a replica
   * gone) is stopped through its row: written here, the run there finds at its next write that
   * the row is no longer its own and stops, the node's transfer with it. An image that is not
   * being downloaded is returned as it is; an upload's transfer is not a download (INVALID_INPUT).
   */
  async cancel(imageId: string): Promise<Image> {
    const job = this.jobs.get(imageId);
    if (job) {
      job.controller.abort(CANCELLED_BY_REQUEST);
      return job.completion;
    }
    const { images } = this.options.repositories;
    for (;;) {
      const image = await images.require(imageId);
      if (!BUSY.includes(image.phase)) return image;
      if (!(await this.sourceOf(image))) {
        throw new QuantixError(
          ErrorCode.INVALID_INPUT,
          `Image ${image.name} is not being downloaded but transferred from an upload, which cannot be cancelled; delete it once it is ready`,
          { details: { imageId: image.id, phase: image.phase } },
        );
      }
      this.disarmGrace(image.id);
      try {
        // Whatever progress its run wrote meanwhile (no race for a version with it), as long as it
        // is still busy; the run finds its row changed at its next write and stops.
        const cancelled = await images.update(
          image.id,
          { phase: 'error', error: CANCELLED_ERROR },
          { whilePhase: BUSY },
        );
        this.emitPhase(image.id, image.phase, 'error', CANCELLED_ERROR);
        return cancelled;
      } catch (error) {
        // It left its busy phases meanwhile (ready, say): read again, and answer it as it is.
        if (!isQuantixError(error, ErrorCode.VERSION_CONFLICT)) throw error;
      }
    }
  }

  /**
   * At start-up: rows left pending, downloading or verifying by a previous run are resumed by
   * whoever can run them now (in this process at once; on nodes as they report their pools), or
   * marked error when nobody can within the grace period. A cloud image stuck mid-download with
   * no source to resume from can only fail; a row of another kind with no source (an upload) is
   * left to its owner.
   */
  async reconcileOnStart(): Promise<ReconcileResult> {
    const result: ReconcileResult = { resumed: [], failed: [], waiting: [], skipped: [] };
    for (const image of await this.options.repositories.images.list({ phase: [...BUSY] })) {
      if (this.jobs.has(image.id)) continue;
      const source = await this.sourceOf(image);
      if (!source) {
        if (image.kind === 'cloud' && image.phase !== 'pending') {
          const failed = await this.failRow(image, {
            code: ErrorCode.DOWNLOAD_INTERRUPTED,
            message: `The download of image ${image.name} was interrupted by a restart and has no source recorded to resume from; download it again`,
            retryable: false,
          });
          if (failed) result.failed.push(failed);
        } else {
          result.skipped.push(image);
        }
        continue;
      }
      const runner = image.location
        ? await this.options.executor.pick({ poolId: image.location.poolId, nodeId: image.nodeId }).catch(() => null)
        : null;
      const handle = runner ? await this.resume(image, runner) : null;
      if (handle) result.resumed.push(handle);
      else {
        this.armGrace(image.id);
        result.waiting.push(image);
      }
    }
    return result;
  }

  /**
   * Stops every running download without failing its row: rows stay busy with their partial
   * files, for the next start to resume. Waits for the jobs to stop writing.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const timer of this.graceTimers.values()) clearTimeout(timer);
    this.graceTimers.clear();
    const jobs = [...this.jobs.values()];
    for (const job of jobs) job.controller.abort(DOWNLOAD_SHUTDOWN);
    await Promise.allSettled(jobs.map((job) => job.completion));
  }

  private assertOpen(): void {
    if (this.closed) throw new QuantixError(ErrorCode.INSTANCE_CLOSED, 'The download service is closed');
  }

  private async withLock<T>(key: string, work: () => Promise<T>): Promise<T> {
    const previous = this.locks.get(key) ?? Promise.resolve();
    const next = previous.catch(() => undefined).then(work);
    this.locks.set(key, next);
    try {
      return await next;
    } finally {
      if (this.locks.get(key) === next) this.locks.delete(key);
    }
  }

  private async sourceFor(
    options: StartDownloadOptions,
  ): Promise<{ entry: CatalogEntry | null; source: DownloadSource; from?: Image }> {
    if (options.copyOf !== undefined) {
      if (options.catalogId !== undefined || options.source !== undefined) {
        throw new QuantixError(ErrorCode.INVALID_INPUT, 'A copy takes no catalogId or source', {
          details: { issues: [{ path: 'copyOf', message: 'not with catalogId or source' }] },
        });
      }
      const from = await this.copyableImage(options.copyOf);
      return { entry: null, source: await this.copySource(from, options.nodeId ?? null), from };
    }
    if (options.catalogId !== undefined && options.source !== undefined) {
      throw new QuantixError(ErrorCode.INVALID_INPUT, 'Give catalogId or source, not both', {
        details: { issues: [{ path: 'source', message: 'not with catalogId' }] },
      });
    }
    if (options.catalogId !== undefined) {
      const entry = await this.findEntry(options.catalogId);
      return { entry, source: sourceOfEntry(entry) };
    }
    if (options.source === undefined) {
      throw new QuantixError(ErrorCode.INVALID_INPUT, 'Give a catalogId or a source to download', {
        details: { issues: [{ path: 'catalogId', message: 'required without source' }] },
      });
    }
    const source = validateSource({
      url: options.source.url,
      checksum: options.source.checksum ?? null,
      checksumUrl: options.source.checksumUrl ?? null,
      checksumAlgorithm: options.source.checksumAlgorithm ?? null,
      ...(options.source.import ? { import: options.source.import } : {}),
    });
    return { entry: null, source };
  }

  /**
   * An image a copy can be made of: ready (IMAGE_NOT_READY), in a pool (IMAGE_NO_LOCATION) and
   * with a checksum to verify the copy against. A file a scan found has none yet: it is read on
   * its node first and recorded (`checksums`); without that, IMAGE_NO_CHECKSUM.
   */
  async copyableImage(imageId: string): Promise<Image> {
    let image = await this.options.repositories.images.require(imageId);
    readyInPool(image, 'copied');
    if (!image.checksum && this.options.checksums) image = await this.options.checksums.record(image.id);
    if (!image.checksum) {
      throw new QuantixError(
        ErrorCode.IMAGE_NO_CHECKSUM,
        `Image ${image.name} has no recorded checksum, so its copy could not be verified (verifying it, \`quantix images verify\`, records one)`,
        { details: { imageId } },
      );
    }
    return image;
  }

  /** What a copy of `from` records as its source: the content URL (no ticket) and the checksum. */
  private async copySource(from: Image, runner: string | null): Promise<DownloadSource> {
    const url = this.options.copies
      ? await this.options.copies.contentUrl(from.id, runner ?? '', { ticket: false })
      : `http://localhost/api/v1/images/${encodeURIComponent(from.id)}/content`;
    return { url, checksum: from.checksum, checksumUrl: null, checksumAlgorithm: from.checksum?.algorithm ?? null };
  }

  /**
   * A ready, checksummed image of catalog entry `entry` somewhere in the cluster whose file a
   * connected runner reaches (null: none): what a download of the entry copies instead of
   * going to the internet. With a checksum published in the catalog, only a copy with that one.
   */
  private async clusterCopyOf(entry: CatalogEntry): Promise<Image | null> {
    const rows = (await this.options.repositories.images.findByCatalogIds([entry.id])).filter(
      (row) => row.phase === 'ready' && row.location && row.checksum,
    );
    if (rows.length === 0) return null;
    const expected = await this.publishedChecksum(entry);
    if (!expected) return null;
    for (const row of rows) {
      const checksum = row.checksum as Checksum;
      const location = row.location as NonNullable<Image['location']>;
      if (expected.algorithm !== checksum.algorithm || expected.value.toLowerCase() !== checksum.value.toLowerCase())
        continue;
      const reachable = await this.options.executor
        .pick({ poolId: location.poolId, nodeId: row.nodeId })
        .catch(() => null);
      if (reachable) return row;
    }
    return null;
  }

  /** A runner of this replica's that holds both `from`'s pool and pool `poolId` active, if any. */
  private async nodeHoldingBoth(from: Image, poolId: string): Promise<string | undefined> {
    const { executor } = this.options;
    if (!executor.copy || !from.location) return undefined;
    const near = await executor.pick({ poolId: from.location.poolId, nodeId: from.nodeId }).catch(() => null);
    if (!near) return undefined;
    const both = await executor.pick({ poolId, nodeId: null }, near).catch(() => null);
    return both ?? undefined;
  }

  /**
   * The checksum the entry publishes now: its own, else its sums file's as read here; null when
   * it cannot be told (no sums file, or reading it failed: the download goes to the source).
   */
  private async publishedChecksum(entry: CatalogEntry): Promise<Checksum | null> {
    if (entry.checksum) return entry.checksum;
    const read = this.options.copies?.upstreamChecksum;
    if (!entry.checksumUrl || !read) return null;
    try {
      return await read(entry);
    } catch (error) {
      this.options.logger.info(
        { catalogId: entry.id, reason: (error as Error).message },
        'could not read the catalog entry’s checksum file; downloading it rather than copying a cluster copy',
      );
      return null;
    }
  }

  /** The catalog entry of an id: NOT_FOUND when no catalog offers it. */
  async findEntry(catalogId: string): Promise<CatalogEntry> {
    const { catalog } = this.options;
    const entry = catalog.get
      ? await catalog.get({ id: catalogId })
      : (await catalog.list()).find((e) => e.id === catalogId);
    if (!entry) {
      throw new QuantixError(
        ErrorCode.NOT_FOUND,
        `No catalog offers an image '${catalogId}'; list the catalog for the ids it has`,
        { details: { catalogId } },
      );
    }
    return entry;
  }

  /** An existing row asked for again: its running job, a retry, a resume, or the row as it is. */
  private async join(image: Image, wantedRunner?: string): Promise<DownloadHandle> {
    const running = this.jobs.get(image.id);
    if (running) return { image, completion: running.completion };
    if (image.phase === 'ready') return { image, completion: Promise.resolve(image) };
    if (image.phase === 'deleting') {
      throw new QuantixError(ErrorCode.IN_USE, `Image ${image.name} is being deleted; download it again afterwards`, {
        details: { imageId: image.id },
      });
    }
    const source = await this.sourceOf(image);
    if (!source || !image.location) {
      throw new QuantixError(
        ErrorCode.INVALID_INPUT,
        `Image ${image.name} was not made by a download (no source recorded); there is nothing to download again`,
        { details: { imageId: image.id } },
      );
    }
    const picked = await this.pickRunner({ poolId: image.location.poolId, nodeId: image.nodeId }, wantedRunner);
    if (picked?.remote) {
      await (this.options.elsewhere as RemoteDownloads).retry(picked.runner, image.id);
      return this.followRemote(await this.options.repositories.images.require(image.id));
    }
    const runner = picked?.runner;
    if (!runner) {
      throw new QuantixError(
        ErrorCode.POOL_NOT_ACTIVE_ON_NODE,
        `Pool ${image.location.poolId} is not active on any connected node, so nothing can download into it`,
        { details: { poolId: image.location.poolId } },
      );
    }
    if (image.phase === 'error' || image.phase === 'missing') {
      const pending = await this.options.repositories.images.update(
        image.id,
        { phase: 'pending', error: null },
        { expectedVersion: image.version },
      );
      this.emitPhase(image.id, image.phase, 'pending', null);
      return { image: pending, completion: this.launch(pending, source, runner) };
    }
    // Busy with no job here: left by a run that is gone. Resumed, unless someone else claims it first.
    const handle = await this.resume(image, runner);
    return (
      handle ?? { image: await this.options.repositories.images.require(image.id), completion: Promise.resolve(image) }
    );
  }

  /**
   * Who runs a download into the pool: a runner of this replica's, else (with replicas) one held
   * by another replica; null when nobody can now. A `wanted` runner connected nowhere is
   * NODE_NOT_CONNECTED.
   */
  private async pickRunner(
    target: { poolId: string; nodeId: string | null },
    wanted?: string,
  ): Promise<{ runner: string; remote: boolean } | null> {
    const { executor, elsewhere } = this.options;
    try {
      const local = await executor.pick(target, wanted);
      if (local) return { runner: local, remote: false };
    } catch (error) {
      // Not connected here may be connected to another replica.
      if (!elsewhere || !isQuantixError(error, ErrorCode.NODE_NOT_CONNECTED)) throw error;
      const remote = await elsewhere.pick(target, wanted);
      if (remote) return { runner: remote, remote: true };
      throw error;
    }
    const remote = await elsewhere?.pick(target);
    return remote ? { runner: remote, remote: true } : null;
  }

  /** A download run by another replica: its row, and a completion that reads the row until it settles. */
  private followRemote(image: Image): DownloadHandle {
    const { repositories } = this.options;
    let completion: Promise<Image> | undefined;
    const follow = async (): Promise<Image> => {
      let current = image;
      while (BUSY.includes(current.phase) && !this.closed) {
        await new Promise((resolve) => setTimeout(resolve, REMOTE_POLL_MS));
        const now = await repositories.images.get(image.id);
        if (!now) break; // deleted meanwhile
        current = now;
      }
      return current;
    };
    // Read only when someone waits: the HTTP API returns the row at once and never does.
    return {
      image,
      get completion() {
        completion ??= follow();
        return completion;
      },
    };
  }

  /**
   * Takes over a busy row by writing it with the version read (a second taker gets
   * VERSION_CONFLICT and leaves it) and runs it on `runner`. verifying → downloading: the
   * runner checks the bytes on disk again.
   */
  private async resume(image: Image, runner: string): Promise<DownloadHandle | null> {
    const source = await this.sourceOf(image);
    if (!source || this.jobs.has(image.id)) return null;
    const phase: ImagePhase = image.phase === 'verifying' ? 'downloading' : image.phase;
    let claimed: Image;
    try {
      claimed = await this.options.repositories.images.update(image.id, { phase }, { expectedVersion: image.version });
    } catch (error) {
      if (isQuantixError(error, ErrorCode.VERSION_CONFLICT) || isQuantixError(error, ErrorCode.NOT_FOUND)) return null;
      throw error;
    }
    if (phase !== image.phase) this.emitPhase(image.id, image.phase, phase, null);
    this.options.logger.info({ imageId: image.id, runner }, 'resuming an interrupted download');
    return { image: claimed, completion: this.launch(claimed, source, runner, { resumed: true }) };
  }

  /**
   * Runners that can take downloads now (nodes that reported their pools active): the busy rows
   * of their pools are resumed, each on the first of them that can run it. The runners of a
   * reconnect storm come together: the busy rows are read once for all of them, not once a node.
   */
  private async resumeOn(runners: readonly string[]): Promise<void> {
    if (this.closed) return;
    const candidates = [...new Set(runners)];
    for (const image of await this.options.repositories.images.list({ phase: [...BUSY] })) {
      if (this.jobs.has(image.id) || !image.location) continue;
      for (const runner of candidates) {
        const can = await this.options.executor
          .pick({ poolId: image.location.poolId, nodeId: image.nodeId }, runner)
          .catch(() => null);
        if (can) {
          await this.resume(image, runner);
          break;
        }
      }
    }
  }

  /**
   * A runner just connected with downloads in hand (this control plane restarted while the node
   * kept fetching): a finished one is applied; a running one is taken over — asked for again,
   * the node attaches the request to the download under way instead of fetching twice.
   */
  private async adopt(runner: string, downloads: readonly HelloDownload[]): Promise<void> {
    const { repositories, logger } = this.options;
    for (const download of downloads) {
      const image = await repositories.images.get(download.imageId);
      if (
        !image?.location ||
        image.location.poolId !== download.poolId ||
        image.location.relPath !== download.relPath ||
        (image.nodeId !== null && image.nodeId !== runner)
      ) {
        continue; // not (or no longer) the image the node is fetching
      }
      if (download.state === 'done') {
        if (download.result && image.phase !== 'ready') {
          logger.info({ imageId: image.id, runner }, 'applying a download the node finished');
          await this.complete(image.id, download.result);
        }
        continue;
      }
      const source = await this.sourceOf(image);
      if (this.jobs.has(image.id) || !source) continue; // uploads are the upload service's
      if (image.phase === 'error') {
        const pending = await repositories.images.update(image.id, { phase: 'pending', error: null });
        this.emitPhase(image.id, 'error', 'pending', null);
        this.launch(pending, source, runner);
      } else if (BUSY.includes(image.phase)) {
        logger.info({ imageId: image.id, runner, bytesDone: download.bytesDone }, 'adopting a download under way');
        await this.resume(image, runner);
      }
    }
  }

  /**
   * A finished download's result applied from whatever phase the row was left in (an error
   * recorded while its node was out of reach included), by the legal steps. Nothing changes
   * for an image ready or being deleted.
   */
  private async complete(imageId: string, result: ImageDownloadResult | ImageImportResultMessage): Promise<void> {
    const { repositories } = this.options;
    let current = await repositories.images.require(imageId);
    const steps = STEPS_TO_READY[current.phase];
    if (!steps) return;
    const from = current.phase;
    for (const phase of steps)
      current = await repositories.images.update(imageId, { phase }, { expectedVersion: current.version });
    await repositories.images.update(imageId, readyPatch(result, current), { expectedVersion: current.version });
    this.disarmGrace(imageId);
    this.emitPhase(imageId, from, 'ready', null);
  }

  /** Runs the download of one row in the background; the promise settles with the final row. */
  private launch(
    image: Image,
    source: DownloadSource,
    runner: string,
    how: { resumed?: boolean } = {},
  ): Promise<Image> {
    const controller = new AbortController();
    const writer = new RowWriter(this.options.repositories.images, image, (from, to, error) =>
      this.emitPhase(image.id, from, to, error),
    );
    this.disarmGrace(image.id);
    const completion = this.runJob({
      image,
      source,
      runner,
      controller,
      writer,
      resumed: how.resumed ?? false,
    }).finally(() => {
      if (this.jobs.get(image.id)?.controller === controller) this.jobs.delete(image.id);
    });
    this.jobs.set(image.id, { runner, controller, completion });
    return completion;
  }

  private async runJob(options: {
    image: Image;
    source: DownloadSource;
    runner: string;
    controller: AbortController;
    writer: RowWriter;
    /** Picked up again after a restart: a failure says it could not be resumed. */
    resumed: boolean;
  }): Promise<Image> {
    const { image, runner, controller, writer, resumed } = options;
    let { source } = options;
    const { executor, logger, events } = this.options;
    const location = image.location as NonNullable<Image['location']>;
    writer.onLost = () => controller.abort('the image row was changed by someone else');
    let lastWrite = 0;
    try {
      if (writer.current.phase === 'pending' || writer.current.phase === 'error') {
        await writer.write({ phase: 'downloading', error: null });
      }
      const onProgress = (update: DownloadProgressUpdate) => {
        // An import's later stages report their own percent; a download's is its bytes'.
        const percent = update.stage
          ? (update.percent ?? null)
          : update.bytesTotal
            ? Math.round(Math.min(100, (update.bytesDone / update.bytesTotal) * 100) * 100) / 100
            : null;
        const progress = {
          bytesDone: update.bytesDone,
          bytesTotal: update.bytesTotal,
          percent,
          ...(update.stage ? { stage: update.stage } : {}),
        };
        events?.emit('image.progress', {
          imageId: image.id,
          progress,
          bytesPerSecond: update.bytesPerSecond,
          etaSeconds: update.etaSeconds,
        });
        // The moment every byte is in is always written; other figures at most every progressWriteMs,
        // and dropped (not queued) while a write is in flight: the row needs the latest, not every one.
        const verifying = update.phase === 'verifying' && writer.current.phase === 'downloading';
        const now = Date.now();
        if (!verifying && (now - lastWrite < (this.options.progressWriteMs ?? 500) || writer.busy)) return;
        lastWrite = now;
        writer
          .write({ progress, ...(verifying ? { phase: 'verifying' as const } : {}) })
          .catch((error) => this.writeFailed(image.id, error));
      };
      const copiedFrom = writer.current.labels[COPIED_FROM_LABEL];
      let copy: Awaited<ReturnType<DownloadService['copyPlan']>> | null = null;
      if (copiedFrom) {
        try {
          copy = await this.copyPlan(copiedFrom, runner);
        } catch (error) {
          // A catalog download that chose a copy in the cluster, whose source is gone since
          // (deleted, failed, moved): fetched from its catalog entry instead of failing for ever.
          const entry =
            image.catalogId && sourceGone(error) ? await this.findEntry(image.catalogId).catch(() => null) : null;
          if (!entry) throw error;
          source = sourceOfEntry(entry);
          const labels = Object.fromEntries(
            Object.entries(writer.current.labels).filter(
              ([key]) => key !== COPIED_FROM_LABEL && !(Object.values(SOURCE_LABELS) as string[]).includes(key),
            ),
          );
          await writer.write({ labels: { ...labels, ...sourceToLabels(source) }, checksum: source.checksum });
          logger.info(
            { imageId: image.id, catalogId: entry.id, copiedFrom, reason: (error as Error).message },
            'the copy source is gone; downloading the catalog entry instead',
          );
        }
      }
      if (copy?.local) {
        const copied = await (executor.copy as NonNullable<DownloadExecutor['copy']>)(
          runner,
          {
            imageId: image.id,
            sourcePoolId: copy.from.location?.poolId as string,
            sourceRelPath: copy.from.location?.relPath as string,
            poolId: location.poolId,
            relPath: location.relPath,
            checksum: copy.from.checksum as NonNullable<Image['checksum']>,
          },
          { onProgress, signal: controller.signal },
        );
        await writer.idle();
        if (writer.current.phase === 'downloading') await writer.write({ phase: 'verifying' });
        const labels = { ...writer.current.labels, [COPY_METHOD_LABEL]: 'local' };
        // Verified byte for byte against the source: what its file is, this one is.
        const same = { format: copy.from.format, virtualSizeBytes: copy.from.virtualSizeBytes };
        const ready = await writer.write({ ...readyPatch({ ...copied, ...same }, writer.current), labels });
        logger.info({ imageId: image.id, runner, copiedFrom, method: 'local' }, 'copy ready');
        return ready;
      }
      const result = await executor.run(
        runner,
        {
          imageId: image.id,
          poolId: location.poolId,
          relPath: location.relPath,
          nodeId: image.nodeId,
          // A copy's ticket is minted at every (re)launch: none recorded in the row can have expired.
          sourceUrl: copy ? copy.url : source.url,
          checksum: writer.current.checksum ?? source.checksum,
          checksumUrl: source.checksumUrl,
          checksumAlgorithm: source.checksumAlgorithm,
          ...(source.import ? { import: source.import } : {}),
        },
        { onProgress, signal: controller.signal },
      );
      await writer.idle();
      if (writer.current.phase === 'downloading') await writer.write({ phase: 'verifying' });
      const ready = await writer.write({
        ...readyPatch(result, writer.current),
        ...(copy ? { labels: { ...writer.current.labels, [COPY_METHOD_LABEL]: 'http' } } : {}),
      });
      logger.info(
        {
          imageId: image.id,
          runner,
          resumed: result.resumed ?? false,
          ...(copy ? { copiedFrom, method: 'http' } : {}),
        },
        copy ? 'copy ready' : 'download ready',
      );
      return ready;
    } catch (error) {
      await writer.idle();
      if (controller.signal.reason === DOWNLOAD_SHUTDOWN) {
        logger.info({ imageId: image.id }, 'download stopped by shutdown; the next start resumes it');
        return writer.current;
      }
      if (writer.lost) {
        logger.warn({ imageId: image.id }, 'download stopped: its row was changed by someone else');
        return (await this.options.repositories.images.get(image.id)) ?? writer.current;
      }
      if (isQuantixError(error, ErrorCode.NODE_NOT_CONNECTED)) {
        // The runner went away: another (or the same, back) resumes it, or it fails after the grace.
        this.armGrace(image.id);
        return writer.current;
      }
      let reason: ImageError =
        controller.signal.aborted && controller.signal.reason === CANCELLED_BY_REQUEST
          ? CANCELLED_ERROR
          : downloadError(error);
      if (resumed) {
        const message = `The download was interrupted by a restart and cannot be resumed: ${reason.message}`;
        reason = { ...reason, message: truncateText(message) };
      }
      logger.warn({ imageId: image.id, code: reason.code, err: error }, 'download failed');
      try {
        return await writer.write({ phase: 'error', error: reason });
      } catch (writeError) {
        logger.error({ imageId: image.id, err: writeError }, 'could not record the failed download');
        return writer.current;
      }
    }
  }

  /**
   * How a copy of image `fromId` runs on `runner` now: on the node (file.copy) when the runner
   * holds the source's pool active and the executor can copy, else fetched from the control
   * plane's content of the source with a ticket minted now.
   */
  private async copyPlan(fromId: string, runner: string): Promise<{ from: Image; local: boolean; url: string }> {
    const from = await this.copyableImage(fromId);
    const { copies } = this.options;
    if (await this.copiesLocally(from, runner)) return { from, local: true, url: '' };
    if (!copies) {
      throw new QuantixError(
        ErrorCode.UNSUPPORTED_OPERATION,
        `Image ${from.name} is not reachable from ${runner}, and this control plane copies only on a node`,
        { details: { imageId: from.id, retryable: false } },
      );
    }
    return { from, local: false, url: await copies.contentUrl(from.id, runner, { ticket: true }) };
  }

  /** Whether `runner` copies `from` itself (file.copy): it holds the source's pool active, and the executor can copy. */
  private async copiesLocally(from: Image, runner: string): Promise<boolean> {
    const { executor } = this.options;
    if (!executor.copy || !from.location) return false;
    const reaches = await executor
      .pick({ poolId: from.location.poolId, nodeId: from.nodeId }, runner)
      .catch(() => null);
    return reaches === runner;
  }

  private writeFailed(imageId: string, error: unknown): void {
    // A lost row is handled by the job; anything else (the database briefly away) only costs a
    // progress figure, and the final write will tell.
    if (!isQuantixError(error, ErrorCode.VERSION_CONFLICT)) {
      this.options.logger.warn({ imageId, err: error }, 'could not write download progress');
    }
  }

  private get graceMs(): number {
    return this.options.resumeGraceMs ?? 120_000;
  }

  private armGrace(imageId: string, delayMs = this.graceMs): void {
    // Closing: the rows stay busy for the next start to reconcile.
    if (this.closed || this.graceTimers.has(imageId)) return;
    const timer = setTimeout(() => {
      this.graceTimers.delete(imageId);
      if (this.jobs.has(imageId)) return;
      void this.failInterrupted(imageId);
    }, delayMs);
    timer.unref();
    this.graceTimers.set(imageId, timer);
  }

  private disarmGrace(imageId: string): void {
    const timer = this.graceTimers.get(imageId);
    if (timer) clearTimeout(timer);
    this.graceTimers.delete(imageId);
  }

  /**
   * Busy download rows nobody runs: not here, and not written for a whole grace period (a run
   * anywhere writes its progress, and a resumed one its phase) — their replica died and no
   * runner came back. Each, with the version it was found at, is for `recover`: the health sweep
   * sends one recovery job per row and version, so each is recovered once, on one replica.
   */
  async quietDownloads(): Promise<{ imageId: string; version: number }[]> {
    if (this.closed) return [];
    const quiet: { imageId: string; version: number }[] = [];
    for (const image of await this.options.repositories.images.list({ phase: [...BUSY] })) {
      if (this.jobs.has(image.id) || Date.now() - image.updatedAt.getTime() < this.graceMs) continue;
      if (!(await this.sourceOf(image))) continue; // an upload: its service's
      quiet.push({ imageId: image.id, version: image.version });
    }
    return quiet;
  }

  /**
   * Gets a quiet download (see quietDownloads) run again: here when a runner of this replica's
   * can, else on the replica holding one, else it is marked error, retryable. Nothing happens
   * when the row changed since `version` (someone runs it). Throws when it could not tell (the
   * database, the other replica): the recovery job is then retried with backoff.
   */
  async recover(imageId: string, version: number): Promise<'resumed' | 'relayed' | 'failed' | 'unchanged'> {
    const image = await this.options.repositories.images.get(imageId);
    if (!image || image.version !== version || !BUSY.includes(image.phase) || this.jobs.has(imageId)) {
      return 'unchanged';
    }
    const picked = image.location
      ? await this.pickRunner({ poolId: image.location.poolId, nodeId: image.nodeId }).catch(() => null)
      : null;
    if (picked && !picked.remote) return (await this.resume(image, picked.runner)) ? 'resumed' : 'unchanged';
    if (picked?.remote) {
      await (this.options.elsewhere as RemoteDownloads).retry(picked.runner, imageId);
      return 'relayed';
    }
    return (await this.failInterrupted(imageId)) ? 'failed' : 'unchanged';
  }

  private async failInterrupted(imageId: string): Promise<boolean> {
    const image = await this.options.repositories.images.get(imageId).catch(() => undefined);
    if (!image || !BUSY.includes(image.phase) || this.jobs.has(imageId)) return false;
    // Written within the grace: another replica runs it (or just resumed it). Look again later.
    const quietMs = Date.now() - image.updatedAt.getTime();
    if (quietMs < this.graceMs) {
      this.armGrace(imageId, this.graceMs - quietMs);
      return false;
    }
    return (
      (await this.failRow(image, {
        code: ErrorCode.DOWNLOAD_INTERRUPTED,
        message: 'The download was interrupted and nothing that holds its pool came back in time; retry it',
        retryable: true,
      })) !== null
    );
  }

  /** Marks a row error with the version read; null when someone else changed it meanwhile. */
  private async failRow(image: Image, error: ImageError): Promise<Image | null> {
    try {
      const failed = await this.options.repositories.images.update(
        image.id,
        { phase: 'error', error },
        { expectedVersion: image.version },
      );
      this.emitPhase(image.id, image.phase, 'error', error);
      return failed;
    } catch (failure) {
      if (isQuantixError(failure, ErrorCode.VERSION_CONFLICT)) return null;
      this.options.logger.error({ imageId: image.id, err: failure }, 'could not record a failed download');
      return null;
    }
  }

  private emitPhase(imageId: string, from: ImagePhase | null, to: ImagePhase, error: ImageError | null): void {
    this.options.events?.emit('image.phase', { imageId, from, to, error });
  }
}

/**
 * What a verified download makes of its row. An import's OVF facts become the image's
 * requirements (what the VM defaults pre-fill) and its name a label; the import's source format
 * and an OVA's further disks are labels too.
 */
function readyPatch(result: ImageDownloadResult | ImageImportResultMessage, image: Image) {
  const imported = 'sourceFormat' in result ? result : null;
  const ovf = imported?.ovf ?? null;
  const labels: Record<string, string> = imported
    ? {
        ...image.labels,
        'quantix.io/import-source-format': imported.sourceFormat,
        ...(ovf?.name ? { 'quantix.io/ovf-name': ovf.name.slice(0, 512) } : {}),
        ...Object.fromEntries(
          imported.extraDisks.map((disk, index) => [`quantix.io/ovf-disk-${index + 2}`, disk.relPath]),
        ),
      }
    : {};
  return {
    phase: 'ready' as const,
    error: null,
    progress: { bytesDone: result.sizeBytes, bytesTotal: result.sizeBytes, percent: 100 },
    sizeBytes: result.sizeBytes,
    ...(result.checksum ? { checksum: result.checksum } : {}),
    format: result.format ?? image.format,
    ...(result.virtualSizeBytes != null ? { virtualSizeBytes: result.virtualSizeBytes } : {}),
    ...(imported ? { labels } : {}),
    ...(ovf
      ? {
          requirements: {
            ...image.requirements,
            ...(ovf.cpuCount ? { minCpu: ovf.cpuCount } : {}),
            ...(ovf.memoryMiB ? { minMemoryMiB: ovf.memoryMiB } : {}),
            ...(ovf.firmware ? { firmware: ovf.firmware } : {}),
            ...(result.virtualSizeBytes ? { minDiskGiB: Math.ceil(result.virtualSizeBytes / 1024 ** 3) } : {}),
          },
        }
      : {}),
    fileModifiedAt: new Date(),
  };
}

/**
 * Downloads for an embedder with no nodes: the one lifecycle, run in this process with the
 * instance's catalogs, fetchers and storage backends (the images-cloud and storage plugins).
 */
export function createInProcessDownloads(
  quantix: Pick<Quantix, 'repositories' | 'events' | 'logger' | 'getAll'>,
  options: Pick<DownloadServiceOptions, 'resumeGraceMs' | 'progressWriteMs'> & { logger?: Logger } = {},
): DownloadService {
  return new DownloadService({
    repositories: quantix.repositories,
    catalog: new CatalogRegistry({ catalogs: quantix.getAll(ImageCatalogToken) }),
    executor: new LocalDownloadExecutor({
      repositories: quantix.repositories,
      fetchers: quantix.getAll(ImageFetcherToken),
      backends: quantix.getAll(StorageBackendToken),
    }),
    events: quantix.events,
    logger: options.logger ?? quantix.logger,
    ...(options.resumeGraceMs !== undefined ? { resumeGraceMs: options.resumeGraceMs } : {}),
    ...(options.progressWriteMs !== undefined ? { progressWriteMs: options.progressWriteMs } : {}),
  });
}
