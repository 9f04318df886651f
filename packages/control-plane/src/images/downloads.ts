import { posix } from 'node:path';
import {
  type CatalogEntry,
  ErrorCode,
  type EventBus,
  type HelloDownload,
  type Image,
  type ImageCatalog,
  type ImageDownloadResult,
  isQuantixError,
  type NodeMessage,
  QuantixError,
  type Repositories,
  TRANSIENT_IMAGE_PHASES,
} from '@quantix/core';
import type { Logger } from 'pino';
import type { NodeHub } from '../hub/node-hub.js';

// The legal way from each phase to ready (the transition table allows no shortcut from these).
const STEPS_TO_READY: Partial<Record<Image['phase'], Image['phase'][]>> = {
  pending: [],
  downloading: ['verifying'],
  verifying: [],
  error: ['downloading', 'verifying'],
  missing: [],
};

// Errors after which trying again can help; a checksum mismatch or a refused source cannot.
const RETRYABLE = new Set<string>([
  ErrorCode.NODE_NOT_CONNECTED,
  ErrorCode.COMMAND_TIMEOUT,
  'DOWNLOAD_FAILED',
  'DOWNLOAD_INTERRUPTED',
  'DOWNLOAD_CANCELLED',
  ErrorCode.POOL_UNAVAILABLE,
]);

const BUSY: readonly Image['phase'][] = ['pending', ...TRANSIENT_IMAGE_PHASES];

export interface DownloadServiceOptions {
  repositories: Repositories;
  hub: NodeHub;
  catalog: ImageCatalog;
  events: EventBus;
  logger: Logger;
  /** After a control-plane start or a node loss, how long a busy download may wait for a node. */
  resumeGraceMs?: number;
  /** Minimum time between progress writes to one image row. */
  progressWriteMs?: number;
}

/**
 * Downloads from a catalog into a pool, run by a node that holds the pool. The image row is
 * the truth: it moves pending → downloading → verifying → ready (or error, with a reason and
 * whether a retry can help). A row left busy by a restart of either side is resumed when a
 * node holding its pool connects (the node's fetcher continues from the partial file), or is
 * marked error and retryable when none comes back in time — never left stuck.
 */
export class DownloadService {
  private readonly running = new Map<string, string>(); // imageId → nodeId
  private readonly lastProgressWrite = new Map<string, number>();
  private readonly graceTimers = new Map<string, NodeJS.Timeout>();
  private closed = false;

  constructor(private readonly options: DownloadServiceOptions) {
    // The hub awaits these within its share of the database: node traffic stays bounded.
    options.hub.onPoolsSynced = (nodeId) =>
      this.resumeOn(nodeId).catch((e) => options.logger.error({ err: e }, 'resume failed'));
    options.hub.onImageProgress = (message, nodeId) => this.progress(message, nodeId);
    options.hub.onNodeWelcomed = (nodeId, hello) =>
      this.adopt(nodeId, hello.downloads ?? []).catch((e) => options.logger.error({ err: e }, 'adoption failed'));
  }

  /** At start-up: every busy row gets a grace period to be picked up by a node. */
  async reconcileOnStart(): Promise<void> {
    for (const image of await this.options.repositories.images.list({ phase: BUSY })) this.armGrace(image.id);
  }

  async start(options: { catalogId: string; poolId: string; nodeId?: string }): Promise<Image> {
    const { repositories } = this.options;
    const entry = await this.findEntry(options.catalogId);
    const pool = await repositories.pools.require(options.poolId);
    const content = entry.kind === 'iso' ? 'iso' : 'images';
    if (!pool.contentTypes.includes(content)) {
      throw new QuantixError(
        ErrorCode.INVALID_INPUT,
        `Pool ${pool.name} does not hold ${content}; choose a pool whose content types include it`,
        {
          details: { poolId: pool.id, contentTypes: pool.contentTypes },
        },
      );
    }
    const nodeId = await this.pickNode(pool.id, options.nodeId);
    const [existing] = await repositories.images.findByCatalogIds([entry.id], { poolId: pool.id });
    let image: Image;
    if (existing) {
      if (existing.phase === 'ready' || BUSY.includes(existing.phase)) return existing;
      image = await repositories.images.update(
        existing.id,
        { phase: 'pending', error: null, progress: null },
        { expectedVersion: existing.version },
      );
    } else {
      const fileName = posix.basename(new URL(entry.sourceUrl).pathname) || `${entry.id}.${entry.format}`;
      image = await repositories.images.create({
        name: entry.name,
        description: entry.description,
        kind: entry.kind,
        format: entry.format,
        os: entry.os,
        requirements: entry.requirements,
        catalogId: entry.id,
        checksum: entry.checksum,
        location: { poolId: pool.id, relPath: `${entry.kind === 'iso' ? 'iso' : 'cloud'}/${fileName}` },
        nodeId: pool.shared ? null : nodeId,
      });
    }
    this.run(image, entry, nodeId);
    return image;
  }

  /** Retries a failed (or missing) download from where its partial file stands. */
  async retry(imageId: string, nodeId?: string): Promise<Image> {
    const image = await this.options.repositories.images.require(imageId);
    if (!image.catalogId) {
      throw new QuantixError(
        ErrorCode.INVALID_INPUT,
        `Image ${image.name} did not come from a catalog, so there is nothing to download again`,
      );
    }
    if (!image.location)
      throw new QuantixError(ErrorCode.IMAGE_NO_LOCATION, `Image ${image.name} has no pool location`);
    if (BUSY.includes(image.phase) && this.running.has(image.id)) return image;
    return this.start({ catalogId: image.catalogId, poolId: image.location.poolId, ...(nodeId ? { nodeId } : {}) });
  }

  isRunning(imageId: string): boolean {
    return this.running.has(imageId);
  }

  close(): void {
    this.closed = true;
    for (const timer of this.graceTimers.values()) clearTimeout(timer);
    this.graceTimers.clear();
  }

  private async findEntry(catalogId: string): Promise<CatalogEntry> {
    const entries = await this.options.catalog.list();
    const entry = entries.find((e) => e.id === catalogId);
    if (!entry) {
      throw new QuantixError(
        ErrorCode.NOT_FOUND,
        `No catalog offers an image '${catalogId}'; list the catalog for the ids it has`,
        {
          details: { catalogId },
        },
      );
    }
    return entry;
  }

  /** A connected node on which the pool is active: the one asked for, or any. */
  private async pickNode(poolId: string, wanted?: string): Promise<string> {
    const { repositories, hub } = this.options;
    const states = await repositories.pools.listNodeStates({ poolId });
    const usable = states.filter((s) => s.status === 'active' && hub.isConnected(s.nodeId)).map((s) => s.nodeId);
    if (wanted) {
      if (!hub.isConnected(wanted)) {
        throw new QuantixError(
          ErrorCode.NODE_NOT_CONNECTED,
          `Node ${wanted} is not connected; start its node daemon and retry`,
        );
      }
      if (!usable.includes(wanted)) {
        throw new QuantixError(ErrorCode.POOL_NOT_ACTIVE_ON_NODE, `Pool ${poolId} is not active on node ${wanted}`, {
          details: { poolId, nodeId: wanted },
        });
      }
      return wanted;
    }
    const nodeId = usable[0];
    if (!nodeId) {
      throw new QuantixError(
        ErrorCode.POOL_NOT_ACTIVE_ON_NODE,
        `Pool ${poolId} is not active on any connected node, so nothing can download into it`,
        {
          details: { poolId },
        },
      );
    }
    return nodeId;
  }

  private run(image: Image, entry: CatalogEntry, nodeId: string): void {
    const { repositories, hub, events } = this.options;
    const location = image.location as NonNullable<Image['location']>;
    this.running.set(image.id, nodeId);
    this.disarmGrace(image.id);
    void (async () => {
      const current = await repositories.images.require(image.id);
      if (current.phase === 'pending' || current.phase === 'error') {
        await repositories.images.update(image.id, { phase: 'downloading', error: null });
        events.emit('image.phase', { imageId: image.id, from: image.phase, to: 'downloading', error: null });
      }
      const result = await hub.request(
        nodeId,
        {
          op: 'image.download',
          imageId: image.id,
          poolId: location.poolId,
          relPath: location.relPath,
          sourceUrl: entry.sourceUrl,
          checksum: image.checksum ?? entry.checksum,
          checksumUrl: entry.checksumUrl,
        },
        { timeoutMs: 24 * 3600_000 },
      );
      await this.complete(image.id, result, nodeId);
    })()
      .catch(async (error) => {
        if (isQuantixError(error, ErrorCode.NODE_NOT_CONNECTED)) {
          // The node went away: it resumes when a node with the pool comes back, or fails after the grace.
          this.armGrace(image.id);
          return;
        }
        const code = isQuantixError(error) ? String(error.details.nodeCode ?? error.code) : 'DOWNLOAD_FAILED';
        const failure = { code, message: (error as Error).message, retryable: RETRYABLE.has(code) };
        await this.fail(image.id, failure);
      })
      .finally(() => {
        if (this.running.get(image.id) === nodeId) this.running.delete(image.id);
      });
  }

  /**
   * A node's download finished and was verified: the image becomes ready with what the node
   * found, from whatever phase it was left in (an error recorded while the node was out of
   * reach included), by the legal steps. Nothing changes for an image ready or being deleted.
   */
  private async complete(imageId: string, result: ImageDownloadResult, nodeId: string): Promise<void> {
    const { repositories, events, logger } = this.options;
    let current = await repositories.images.require(imageId);
    const steps = STEPS_TO_READY[current.phase];
    if (!steps) return;
    const from = current.phase;
    for (const phase of steps) current = await repositories.images.update(imageId, { phase });
    await repositories.images.update(imageId, {
      phase: 'ready',
      progress: null,
      error: null,
      sizeBytes: result.sizeBytes,
      ...(result.checksum ? { checksum: result.checksum } : {}),
      ...(result.format ? { format: result.format } : {}),
      ...(result.virtualSizeBytes != null ? { virtualSizeBytes: result.virtualSizeBytes } : {}),
      fileModifiedAt: new Date(),
    });
    this.disarmGrace(imageId);
    events.emit('image.phase', { imageId, from, to: 'ready', error: null });
    logger.info({ imageId, nodeId }, 'download ready');
  }

  /**
   * A node just connected with downloads in hand (say, this control plane restarted while the
   * node kept fetching): a finished one is applied; a running one is taken over — asked for
   * again, the node attaches the request to the download under way instead of fetching twice.
   */
  private async adopt(nodeId: string, downloads: readonly HelloDownload[]): Promise<void> {
    const { repositories, logger } = this.options;
    for (const download of downloads) {
      const image = await repositories.images.get(download.imageId);
      if (
        !image?.location ||
        image.location.poolId !== download.poolId ||
        image.location.relPath !== download.relPath ||
        (image.nodeId !== null && image.nodeId !== nodeId)
      ) {
        continue; // not (or no longer) the image the node is fetching
      }
      if (download.state === 'done') {
        if (download.result && image.phase !== 'ready') {
          logger.info({ imageId: image.id, nodeId }, 'applying a download the node finished');
          await this.complete(image.id, download.result, nodeId);
        }
        continue;
      }
      if (this.running.has(image.id) || !image.catalogId) continue; // uploads are the upload service's
      if (image.phase !== 'error' && !BUSY.includes(image.phase)) continue;
      const entry = await this.findEntry(image.catalogId).catch(() => undefined);
      if (!entry) continue;
      logger.info({ imageId: image.id, nodeId, bytesDone: download.bytesDone }, 'adopting a download under way');
      this.run(image, entry, nodeId);
    }
  }

  private async fail(imageId: string, failure: { code: string; message: string; retryable: boolean }): Promise<void> {
    const { repositories, events, logger } = this.options;
    try {
      const current = await repositories.images.require(imageId);
      if (current.phase === 'error' || current.phase === 'ready') return;
      await repositories.images.update(imageId, { phase: 'error', error: failure, progress: current.progress });
      events.emit('image.phase', { imageId, from: current.phase, to: 'error', error: failure });
    } catch (error) {
      logger.error({ imageId, err: error }, 'could not record a failed download');
    }
  }

  /** A node reported its pools: resume the busy downloads in pools it has active. */
  private async resumeOn(nodeId: string): Promise<void> {
    const { repositories } = this.options;
    // Called once the node's report for its latest push is stored: these states are current.
    const active = new Set(
      (await repositories.pools.listNodeStates({ nodeId })).filter((s) => s.status === 'active').map((s) => s.poolId),
    );
    for (const image of await repositories.images.list({ phase: BUSY, poolId: [...active] })) {
      if (this.running.has(image.id) || !image.catalogId) continue;
      if (image.nodeId && image.nodeId !== nodeId) continue;
      const entry = await this.findEntry(image.catalogId).catch(() => undefined);
      if (!entry) {
        await this.fail(image.id, {
          code: ErrorCode.NOT_FOUND,
          message: `catalog entry ${image.catalogId} is gone`,
          retryable: false,
        });
        continue;
      }
      this.options.logger.info({ imageId: image.id, nodeId }, 'resuming interrupted download');
      this.run(image, entry, nodeId);
    }
  }

  private async progress(message: Extract<NodeMessage, { type: 'image.progress' }>, nodeId: string): Promise<void> {
    const { repositories, events, logger } = this.options;
    if (this.running.get(message.imageId) !== nodeId) return;
    const percent = message.bytesTotal ? Math.min(100, (message.bytesDone / message.bytesTotal) * 100) : null;
    const progress = { bytesDone: message.bytesDone, bytesTotal: message.bytesTotal, percent };
    events.emit('image.progress', {
      imageId: message.imageId,
      progress,
      bytesPerSecond: message.bytesPerSecond,
      etaSeconds: message.etaSeconds,
    });
    const now = Date.now();
    const phaseChange = message.phase === 'verifying';
    if (
      !phaseChange &&
      now - (this.lastProgressWrite.get(message.imageId) ?? 0) < (this.options.progressWriteMs ?? 500)
    )
      return;
    this.lastProgressWrite.set(message.imageId, now);
    try {
      const current = await repositories.images.require(message.imageId);
      if (!BUSY.includes(current.phase)) return;
      await repositories.images.update(message.imageId, {
        progress,
        ...(phaseChange && current.phase === 'downloading' ? { phase: 'verifying' } : {}),
      });
    } catch (error) {
      logger.warn({ imageId: message.imageId, err: error }, 'could not record progress');
    }
  }

  private armGrace(imageId: string): void {
    // Closing: the rows stay busy for the next start to reconcile.
    if (this.closed || this.graceTimers.has(imageId)) return;
    const timer = setTimeout(() => {
      this.graceTimers.delete(imageId);
      if (this.running.has(imageId)) return;
      void this.fail(imageId, {
        code: 'DOWNLOAD_INTERRUPTED',
        message: 'the download was interrupted and no node holding its pool came back in time; retry it',
        retryable: true,
      });
    }, this.options.resumeGraceMs ?? 120_000);
    timer.unref();
    this.graceTimers.set(imageId, timer);
  }

  private disarmGrace(imageId: string): void {
    const timer = this.graceTimers.get(imageId);
    if (timer) clearTimeout(timer);
    this.graceTimers.delete(imageId);
  }
}
