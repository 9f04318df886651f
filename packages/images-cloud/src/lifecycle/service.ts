import { stat } from 'node:fs/promises';
import {
  backendFor,
  type CatalogEntry,
  type ChecksumAlgorithm,
  callBackend,
  ErrorCode,
  type EventBus,
  type FetchProgress,
  type Image,
  type ImageCatalog,
  type ImageError,
  type ImageFetcher,
  type ImageFormat,
  type ImagePatch,
  type ImagePhase,
  type ImageRepository,
  isQuantixError,
  type NewImage,
  type OsInfo,
  type PoolRepository,
  QuantixError,
  type StorageBackend,
  type StoragePool,
} from '@quantix/core';
import { type Logger, pino } from 'pino';
import { ImagesCloudErrorCode } from '../errors.js';
import type { CloudFetchRequest, CloudFetchResult, FetchStage } from '../fetch/fetcher.js';
import { metaPathOf, partialPathOf, removeQuietly, sizeOf } from '../fetch/partial.js';
import {
  type DownloadSource,
  defaultRelPathForEntry,
  defaultRelPathForUrl,
  sourceFromImage,
  sourceOfEntry,
  sourceToLabels,
  validateSource,
} from './source.js';

/** Resolves a pool-relative path to an absolute path on this node, refusing any that escape the pool. */
export type ResolvePoolPath = (options: { pool: StoragePool; relPath: string }) => Promise<string>;

export interface CloudImageServiceOptions {
  images: ImageRepository;
  pools: PoolRepository;
  fetcher: ImageFetcher;
  /** Where catalogId is looked up (a CatalogRegistry over every provided catalog). */
  catalog?: ImageCatalog;
  /** How relPaths become paths on this node. Default: the `resolve` of the pool type's backend in `backends`. */
  resolvePath?: ResolvePoolPath;
  backends?: readonly StorageBackend[];
  events?: EventBus;
  /** The node this service runs on: set on rows in node-local pools, and the scope of reconcileInterrupted. */
  nodeId?: string | null;
  /** Least time between two progress writes to a row. Default 1 s. (Events follow the fetcher, every 250 ms.) */
  progressWriteIntervalMs?: number;
  logger?: Logger;
}

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
  };
  /** Default: `images/<entry id>.<format>` for catalog entries, `images/<URL file name>` otherwise. */
  relPath?: string;
  name?: string;
  description?: string;
  labels?: Record<string, string>;
  format?: ImageFormat | null;
  os?: Partial<OsInfo>;
}

export interface DownloadHandle {
  /** The row as it is now (pending, or further along if the download was already under way). */
  image: Image;
  /** Settles with the row when the download ends: `ready`, or `error` with the reason. */
  completion: Promise<Image>;
}

export interface ReconcileResult {
  /** Rows whose download was picked up again, with their completion. */
  resumed: (DownloadHandle & { partialBytes: number })[];
  /** Rows that could not be resumed and are now `error`, with the reason in the row. */
  failed: Image[];
  /** Transient rows left alone: their download runs in this process, or they belong to another service. */
  skipped: Image[];
}

/** A fetcher that can check a source without fetching it (HttpImageFetcher can). */
interface PreflightFetcher {
  checkSource(options: { sourceUrl: string; checksumUrl?: string | null }): Promise<void>;
}

/** Marks a job stopped by close(): its row stays where it is, for the next start to resume. */
const SHUTDOWN = 'the service is shutting down';

interface Job {
  imageId: string;
  controller: AbortController;
  completion: Promise<Image>;
}

function errorOf(error: unknown): ImageError {
  if (isQuantixError(error)) {
    return { code: error.code, message: error.message, retryable: error.details.retryable === true };
  }
  return { code: ErrorCode.DOWNLOAD_FAILED, message: (error as Error)?.message ?? String(error), retryable: true };
}

/**
 * The download lifecycle of cloud images in the database. A row moves pending → downloading →
 * verifying → ready, or to error with {code, message, retryable}; progress is written to the row
 * (throttled) and emitted as events. Every write carries the version the job last wrote, so a
 * row changed by someone else (deleted, claimed by another process) stops the job rather than
 * being overwritten. After a restart, reconcileInterrupted() resumes rows left mid-download
 * from their partial files, or marks them error with the reason: nothing stays stuck.
 */
export class CloudImageService {
  private readonly images: ImageRepository;
  private readonly pools: PoolRepository;
  private readonly fetcher: ImageFetcher;
  private readonly catalog: ImageCatalog | undefined;
  private readonly resolvePathOption: ResolvePoolPath | undefined;
  private readonly backends: readonly StorageBackend[];
  private readonly events: EventBus | undefined;
  private readonly nodeId: string | null;
  private readonly progressWriteIntervalMs: number;
  private readonly logger: Logger;
  private readonly jobs = new Map<string, Job>();
  private readonly locks = new Map<string, Promise<unknown>>();
  private closed = false;

  constructor(options: CloudImageServiceOptions) {
    this.images = options.images;
    this.pools = options.pools;
    this.fetcher = options.fetcher;
    this.catalog = options.catalog;
    this.resolvePathOption = options.resolvePath;
    this.backends = options.backends ?? [];
    this.events = options.events;
    this.nodeId = options.nodeId ?? null;
    this.progressWriteIntervalMs = options.progressWriteIntervalMs ?? 1000;
    this.logger = options.logger ?? pino({ level: 'silent' });
  }

  /** Ids of images whose download runs in this process. */
  get activeImageIds(): string[] {
    return [...this.jobs.keys()];
  }

  /**
   * Starts downloading a catalog entry (or a URL) into a pool, or joins the download already
   * under way: one image per catalog entry and pool, one job per image. A `ready` image is
   * returned as it is; an `error` one is retried.
   */
  async startDownload(options: StartDownloadOptions): Promise<DownloadHandle> {
    this.assertOpen();
    const { entry, source } = await this.sourceFor(options);
    const relPath = options.relPath ?? (entry ? defaultRelPathForEntry(entry) : defaultRelPathForUrl(source.url));
    const lockKey = entry ? `catalog\0${entry.id}\0${options.poolId}` : `location\0${options.poolId}\0${relPath}`;
    return this.withLock(lockKey, async () => {
      const existing = entry
        ? (await this.images.findByCatalogIds([entry.id], { poolId: options.poolId }))[0]
        : await this.images.getByLocation({ poolId: options.poolId, relPath });
      if (existing) return this.join(existing);
      const pool = await this.pools.require(options.poolId);
      // A source the policy refuses is refused now, before a row is recorded or a byte requested.
      await this.preflight(source);
      const input: NewImage = {
        name: options.name ?? entry?.name ?? relPath.slice(relPath.lastIndexOf('/') + 1),
        description: options.description ?? entry?.description ?? '',
        labels: { ...(options.labels ?? {}), ...sourceToLabels(source) },
        kind: entry?.kind ?? 'cloud',
        format: options.format ?? entry?.format ?? null,
        os: { ...(entry?.os ?? {}), ...(options.os ?? {}) },
        requirements: entry?.requirements,
        catalogId: entry?.id ?? null,
        phase: 'pending',
        location: { poolId: pool.id, relPath },
        nodeId: pool.shared ? null : this.nodeId,
      };
      let image: Image;
      try {
        image = await this.images.create(input);
      } catch (error) {
        // Another process made the row between our read and our insert: join it.
        if (!isQuantixError(error, ErrorCode.ALREADY_EXISTS)) throw error;
        const raced = entry
          ? (await this.images.findByCatalogIds([entry.id], { poolId: options.poolId }))[0]
          : await this.images.getByLocation({ poolId: options.poolId, relPath });
        if (!raced) throw error;
        return this.join(raced);
      }
      this.emitPhase(image.id, null, 'pending', null);
      return { image, completion: this.launch(image, source) };
    });
  }

  /** Starts a failed (or missing) image's download again; its partial file, if any, is resumed. */
  async retry(options: { imageId: string }): Promise<DownloadHandle> {
    this.assertOpen();
    return this.withLock(`image\0${options.imageId}`, async () => {
      const running = this.jobs.get(options.imageId);
      if (running) return { image: await this.images.require(options.imageId), completion: running.completion };
      return this.retryUnlocked(await this.images.require(options.imageId));
    });
  }

  /** Stops a running download; the row becomes error DOWNLOAD_CANCELLED (retryable) and the partial file stays for a retry. */
  async cancel(options: { imageId: string }): Promise<{ image: Image }> {
    const job = this.jobs.get(options.imageId);
    if (!job) {
      const image = await this.images.require(options.imageId);
      return { image };
    }
    job.controller.abort('cancelled by request');
    return { image: await job.completion };
  }

  /**
   * Run at start-up: finds rows of this node left in pending, downloading or verifying by a
   * process that is gone, and resumes each from its partial file (the fetcher re-hashes the
   * bytes there and asks for the rest), or marks it error with the reason when it cannot be
   * resumed. Rows are claimed with their version, so two processes never resume the same row.
   * Scope: the rows of `nodeId` (default the service's node), or every row when it is null —
   * one process per node runs downloads, and it alone reconciles them.
   */
  async reconcileInterrupted(options: { nodeId?: string | null } = {}): Promise<ReconcileResult> {
    this.assertOpen();
    const nodeId = options.nodeId === undefined ? this.nodeId : options.nodeId;
    const rows = await this.images.list({
      phase: ['pending', 'downloading', 'verifying'],
      ...(nodeId ? { nodeId } : {}),
    });
    const result: ReconcileResult = { resumed: [], failed: [], skipped: [] };
    for (const row of rows) {
      if (this.jobs.has(row.id)) {
        result.skipped.push(row);
        continue;
      }
      const source = sourceFromImage(row);
      if (!source) {
        // Not made by this service. A cloud image stuck in a transient phase with no source to
        // resume from can only fail; anything else (an ISO, a pending row) belongs to others.
        if (row.kind === 'cloud' && row.phase !== 'pending') {
          const failed = await this.fail(row, {
            code: ErrorCode.DOWNLOAD_INTERRUPTED,
            message: `The download of image ${row.id} was interrupted by a restart and has no source recorded to resume from; download it again`,
            retryable: false,
          });
          if (failed) result.failed.push(failed);
        } else {
          result.skipped.push(row);
        }
        continue;
      }
      try {
        // Resolving the destination first finds what makes a row unresumable (its pool gone,
        // its path refused) before the row is claimed.
        const destination = await this.destinationOf(row);
        const claimed = await this.claim(row);
        if (!claimed) {
          result.skipped.push(row);
          continue;
        }
        const partialBytes = (await sizeOf(partialPathOf(destination))) ?? 0;
        this.logger.info({ imageId: row.id, phase: row.phase, partialBytes }, 'resuming an interrupted download');
        result.resumed.push({ image: claimed, completion: this.launch(claimed, source), partialBytes });
      } catch (error) {
        const failed = await this.fail(row, {
          code: isQuantixError(error) ? error.code : ErrorCode.DOWNLOAD_INTERRUPTED,
          message: `The download of image ${row.id} was interrupted by a restart and cannot be resumed: ${(error as Error).message}`,
          retryable: true,
        });
        if (failed) result.failed.push(failed);
      }
    }
    return result;
  }

  /**
   * Stops every running download without failing its row: rows stay `downloading` with their
   * partial files, for reconcileInterrupted() in the next process to resume. Waits for the jobs
   * to stop writing.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const jobs = [...this.jobs.values()];
    for (const job of jobs) job.controller.abort(SHUTDOWN);
    await Promise.allSettled(jobs.map((job) => job.completion));
  }

  private assertOpen(): void {
    if (this.closed) throw new QuantixError(ErrorCode.INSTANCE_CLOSED, 'The cloud image service is closed');
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
  ): Promise<{ entry: CatalogEntry | null; source: DownloadSource }> {
    if (options.catalogId !== undefined && options.source !== undefined) {
      throw new QuantixError(ErrorCode.INVALID_INPUT, 'Give catalogId or source, not both', {
        details: { issues: [{ path: 'source', message: 'not with catalogId' }] },
      });
    }
    if (options.catalogId !== undefined) {
      if (!this.catalog) {
        throw new QuantixError(ErrorCode.INVALID_INPUT, 'This service has no catalog; give a source URL instead');
      }
      const entry = await this.catalog.get?.({ id: options.catalogId });
      if (!entry) {
        throw new QuantixError(ErrorCode.NOT_FOUND, `No catalog has an entry '${options.catalogId}'`, {
          details: { id: options.catalogId },
        });
      }
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
    });
    return { entry: null, source };
  }

  private async preflight(source: DownloadSource): Promise<void> {
    const checker = this.fetcher as ImageFetcher & Partial<Pick<PreflightFetcher, 'checkSource'>>;
    const scheme = new URL(source.url).protocol.replace(/:$/, '');
    if (!this.fetcher.schemes.includes(scheme)) {
      throw new QuantixError(
        ImagesCloudErrorCode.SOURCE_NOT_ALLOWED,
        `Source ${source.url} is not allowed: scheme '${scheme}' is not one of ${this.fetcher.schemes.join(', ')}`,
        { details: { url: source.url, reason: 'scheme', retryable: false } },
      );
    }
    if (typeof checker.checkSource === 'function') {
      await checker.checkSource({ sourceUrl: source.url, checksumUrl: source.checksumUrl });
    }
  }

  /** An existing row asked for again: its running job, a retry, a resume, or the row as it is. */
  private async join(existing: Image): Promise<DownloadHandle> {
    const running = this.jobs.get(existing.id);
    if (running) return { image: existing, completion: running.completion };
    switch (existing.phase) {
      case 'ready':
        return { image: existing, completion: Promise.resolve(existing) };
      case 'error':
      case 'missing':
        return this.retryUnlocked(existing);
      case 'deleting':
        throw new QuantixError(
          ErrorCode.IN_USE,
          `Image ${existing.id} is being deleted; download it again afterwards`,
          {
            details: { imageId: existing.id },
          },
        );
      default: {
        // pending/downloading/verifying with no job here: left by a process that is gone.
        const source = sourceFromImage(existing);
        if (!source) {
          throw new QuantixError(ErrorCode.IN_USE, `Image ${existing.id} is being fetched by another service`, {
            details: { imageId: existing.id, phase: existing.phase },
          });
        }
        const claimed = await this.claim(existing);
        if (!claimed) {
          const now = await this.images.require(existing.id);
          return { image: now, completion: Promise.resolve(now) };
        }
        return { image: claimed, completion: this.launch(claimed, source) };
      }
    }
  }

  private async retryUnlocked(image: Image): Promise<DownloadHandle> {
    const source = sourceFromImage(image);
    if (!source || !image.location) {
      throw new QuantixError(
        ErrorCode.INVALID_INPUT,
        `Image ${image.id} was not made by a download (no source recorded); it cannot be retried`,
        { details: { imageId: image.id } },
      );
    }
    const pending = await this.images.update(
      image.id,
      { phase: 'pending', error: null },
      { expectedVersion: image.version },
    );
    this.emitPhase(image.id, image.phase, 'pending', null);
    return { image: pending, completion: this.launch(pending, source) };
  }

  /**
   * Takes over a transient row by writing it with the version read: a second process that read
   * the same version gets VERSION_CONFLICT and leaves the row alone. Returns null then.
   */
  private async claim(row: Image): Promise<Image | null> {
    try {
      // verifying → downloading: the fetcher verifies again from the bytes on disk.
      const phase: ImagePhase = row.phase === 'verifying' ? 'downloading' : row.phase;
      const claimed = await this.images.update(row.id, { phase }, { expectedVersion: row.version });
      if (phase !== row.phase) this.emitPhase(row.id, row.phase, phase, null);
      return claimed;
    } catch (error) {
      if (isQuantixError(error, ErrorCode.VERSION_CONFLICT)) return null;
      throw error;
    }
  }

  private async fail(row: Image, error: ImageError): Promise<Image | null> {
    try {
      const failed = await this.images.update(row.id, { phase: 'error', error }, { expectedVersion: row.version });
      this.emitPhase(row.id, row.phase, 'error', error);
      return failed;
    } catch (failure) {
      if (isQuantixError(failure, ErrorCode.VERSION_CONFLICT)) return null;
      throw failure;
    }
  }

  private async destinationOf(image: Image): Promise<string> {
    if (!image.location) {
      throw new QuantixError(ErrorCode.INVALID_INPUT, `Image ${image.id} has no pool location to download into`, {
        details: { imageId: image.id },
      });
    }
    const pool = await this.pools.require(image.location.poolId);
    return this.resolvePath(pool, image.location.relPath);
  }

  private async resolvePath(pool: StoragePool, relPath: string): Promise<string> {
    if (this.resolvePathOption) return this.resolvePathOption({ pool, relPath });
    const backend = backendFor(this.backends, pool.type);
    return callBackend(backend, 'resolve', { pool, relPath });
  }

  private emitPhase(imageId: string, from: ImagePhase | null, to: ImagePhase, error: ImageError | null): void {
    this.events?.emit('image.phase', { imageId, from, to, error });
  }

  /** Runs the download of one row in the background; the promise settles with the final row. */
  private launch(image: Image, source: DownloadSource): Promise<Image> {
    const controller = new AbortController();
    const writer = new RowWriter(this.images, image, (from, to, error) => this.emitPhase(image.id, from, to, error));
    const completion = this.runJob({ image, source, controller, writer }).finally(() => {
      this.jobs.delete(image.id);
    });
    this.jobs.set(image.id, { imageId: image.id, controller, completion });
    return completion;
  }

  private async runJob(options: {
    image: Image;
    source: DownloadSource;
    controller: AbortController;
    writer: RowWriter;
  }): Promise<Image> {
    const { image, source, controller, writer } = options;
    const signal = controller.signal;
    writer.onLost = () => controller.abort('the image row was changed by someone else');
    let lastWrite = 0;
    try {
      const destinationPath = await this.destinationOf(image);
      const request: CloudFetchRequest = {
        sourceUrl: source.url,
        destinationPath,
        checksum: source.checksum,
        checksumUrl: source.checksumUrl,
        checksumAlgorithm: source.checksumAlgorithm,
        signal,
        onStage: (stage: FetchStage) => {
          if (stage === 'queued') return;
          writer.write({ phase: stage }).catch((error) => this.writeFailed(image.id, error));
        },
        onProgress: (progress: FetchProgress) => {
          const rowProgress = {
            bytesDone: progress.bytesDone,
            bytesTotal: progress.bytesTotal,
            percent: progress.percent === null ? null : Math.round(progress.percent * 100) / 100,
          };
          this.events?.emit('image.progress', {
            imageId: image.id,
            progress: rowProgress,
            bytesPerSecond: progress.bytesPerSecond,
            etaSeconds: progress.etaSeconds,
          });
          const now = performance.now();
          // Progress writes are dropped, not queued, while one is in flight: the row needs the
          // latest figure, not every figure.
          if (now - lastWrite >= this.progressWriteIntervalMs && !writer.busy) {
            lastWrite = now;
            writer.write({ progress: rowProgress }).catch((error) => this.writeFailed(image.id, error));
          }
        },
      };
      const result = (await this.fetcher.fetch(request)) as CloudFetchResult;
      const modified = await stat(result.path).then(
        (s) => s.mtime,
        () => null,
      );
      return await writer.write({
        phase: 'ready',
        error: null,
        sizeBytes: result.sizeBytes,
        virtualSizeBytes: result.virtualSizeBytes ?? null,
        format: result.format ?? image.format,
        checksum: result.checksum,
        progress: { bytesDone: result.sizeBytes, bytesTotal: result.sizeBytes, percent: 100 },
        fileModifiedAt: modified,
      });
    } catch (error) {
      if (signal.reason === SHUTDOWN) {
        this.logger.info({ imageId: image.id }, 'download stopped by shutdown; the next start resumes it');
        await writer.idle();
        return writer.current;
      }
      if (writer.lost) {
        this.logger.warn({ imageId: image.id }, 'download stopped: its row was changed by someone else');
        return (await this.images.get(image.id)) ?? writer.current;
      }
      const reason = errorOf(error);
      this.logger.warn({ imageId: image.id, code: reason.code, err: error }, 'download failed');
      if (reason.code === ErrorCode.CHECKSUM_MISMATCH || reason.code === ImagesCloudErrorCode.IMAGE_INVALID) {
        // The fetcher deleted the bad bytes; make sure nothing of them is left in the pool.
        await this.removeLeftovers(image).catch(() => undefined);
      }
      try {
        return await writer.write({ phase: 'error', error: reason });
      } catch (writeError) {
        this.logger.error({ imageId: image.id, err: writeError }, 'could not record the failed download');
        throw writeError;
      }
    }
  }

  private writeFailed(imageId: string, error: unknown): void {
    // A lost row is handled by the job; anything else (the database briefly away) only costs a
    // progress figure, and the final write will tell.
    if (!isQuantixError(error, ErrorCode.VERSION_CONFLICT)) {
      this.logger.warn({ imageId, err: error }, 'could not write download progress');
    }
  }

  private async removeLeftovers(image: Image): Promise<void> {
    const path = await this.destinationOf(image);
    await removeQuietly(partialPathOf(path), metaPathOf(path));
  }
}

/**
 * Serialises one job's writes to its row, each with the version of the previous one. A
 * VERSION_CONFLICT or NOT_FOUND means the row is no longer the job's: `lost` is set, `onLost`
 * stops the job, and nothing more is written.
 */
class RowWriter {
  current: Image;
  lost = false;
  busy = false;
  onLost: () => void = () => undefined;
  private chain: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly images: ImageRepository,
    image: Image,
    private readonly onPhase: (from: ImagePhase, to: ImagePhase, error: ImageError | null) => void,
  ) {
    this.current = image;
  }

  write(patch: ImagePatch): Promise<Image> {
    const run = async (): Promise<Image> => {
      if (this.lost)
        throw new QuantixError(ErrorCode.VERSION_CONFLICT, `Image ${this.current.id} changed under the download`);
      // A phase the row is already in is a no-op change of phase; skip it to keep the log clean.
      const body: ImagePatch = { ...patch };
      if (body.phase === this.current.phase && Object.keys(body).length === 1) return this.current;
      this.busy = true;
      try {
        const before = this.current.phase;
        const updated = await this.images.update(this.current.id, body, { expectedVersion: this.current.version });
        this.current = updated;
        if (body.phase !== undefined && body.phase !== before) this.onPhase(before, body.phase, updated.error);
        return updated;
      } catch (error) {
        if (isQuantixError(error, ErrorCode.VERSION_CONFLICT) || isQuantixError(error, ErrorCode.NOT_FOUND)) {
          this.lost = true;
          this.onLost();
        }
        throw error;
      } finally {
        this.busy = false;
      }
    };
    const next = this.chain.then(run, run);
    this.chain = next.catch(() => undefined);
    return next;
  }

  /** Waits for the writes queued so far. */
  async idle(): Promise<void> {
    await this.chain;
  }
}
