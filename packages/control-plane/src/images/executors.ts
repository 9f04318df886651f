import {
  backendFor,
  type Checksum,
  type ChecksumAlgorithm,
  callBackend,
  ErrorCode,
  type FetchProgress,
  type HelloDownload,
  type ImageDownloadResult,
  type ImageFetcher,
  type ImageImportResultMessage,
  type ImageProgressStage,
  isQuantixError,
  type NodeMessage,
  QuantixError,
  type Repositories,
  type StorageBackend,
} from '@quantix/core';
import { type NodeHub, nodeNotConnected } from '../hub/node-hub.js';
import { nodesWithActivePool } from '../nodes/placement.js';
import type { ImportOptions } from './source.js';

/** How long a node may take over one download, import or copy (a day: a slow mirror, a huge image). */
const NODE_TRANSFER_TIMEOUT_MS = 24 * 3600_000;

/** The abort reason of downloads stopped because the control plane shuts down (not cancelled). */
export const DOWNLOAD_SHUTDOWN = 'the control plane is shutting down';

/** A download to run: the image's place in a pool and where its bytes come from. */
export interface DownloadRequest {
  imageId: string;
  poolId: string;
  relPath: string;
  /** The node a node-local pool belongs to (its image rows carry it); null for a shared pool. */
  nodeId: string | null;
  sourceUrl: string;
  checksum: Checksum | null;
  checksumUrl: string | null;
  checksumAlgorithm: ChecksumAlgorithm | null;
  /** An import: the node converts what arrived (image.import) instead of keeping it as it is. */
  import?: ImportOptions;
}

/** A copy of a file a runner reaches into a download's place (DownloadExecutor.copy). */
export interface LocalCopyRequest {
  imageId: string;
  sourcePoolId: string;
  sourceRelPath: string;
  poolId: string;
  relPath: string;
  checksum: Checksum;
}

export interface DownloadProgressUpdate {
  /** `verifying`: every byte is in and is being checked (an import: converted). */
  phase?: 'downloading' | 'verifying';
  /** An import's stage after the download, with its percent. */
  stage?: ImageProgressStage;
  percent?: number | null;
  bytesDone: number;
  bytesTotal: number | null;
  bytesPerSecond: number | null;
  etaSeconds: number | null;
}

/**
 * Where a download's bytes move — the one port of the one download lifecycle (DownloadService):
 * on a node that holds the pool, over the node hub (NodeDownloadExecutor), or in this process
 * with the fetcher and storage backends of this instance (LocalDownloadExecutor), for an
 * embedder with no nodes. The lifecycle — rows, phases, progress, retries, restarts — is the
 * same either way.
 */
export interface DownloadExecutor {
  /**
   * Who can run a download into this pool now: a runner id (a node id, or 'local'), or null when
   * nobody can at the moment (onReady says when one can). With `wanted`, that runner or the
   * reason it cannot (NODE_NOT_CONNECTED, POOL_NOT_ACTIVE_ON_NODE).
   */
  pick(target: { poolId: string; nodeId: string | null }, wanted?: string): Promise<string | null>;
  /**
   * Runs the download on `runner` until the file is complete and verified. Rejects with
   * NODE_NOT_CONNECTED when the runner went away (the download may continue when it is back);
   * with the fetch's own error otherwise. `signal` cancels it (the partial file stays).
   */
  run(
    runner: string,
    request: DownloadRequest,
    options: { onProgress: (update: DownloadProgressUpdate) => void; signal: AbortSignal },
  ): Promise<ImageDownloadResult | ImageImportResultMessage>;
  /**
   * Refuses a source before anything is recorded, where the executor can tell: by the local
   * fetcher's source policy, or by asking `runner` (a node judges its own sources). Where it
   * cannot tell (a node of an older protocol), the fetch judges it.
   */
  preflight?(source: { sourceUrl: string; checksumUrl: string | null }, runner: string | null): Promise<void>;
  /**
   * Copies a file the runner reaches (another pool it holds active, or another place) into the
   * download's place, verified against `checksum`: no HTTP, the bytes cloned where the file
   * system can. Absent: copies go through `run` with the control plane's content URL.
   */
  copy?(
    runner: string,
    request: LocalCopyRequest,
    options: { onProgress: (update: DownloadProgressUpdate) => void; signal: AbortSignal },
  ): Promise<ImageDownloadResult>;
  /**
   * What the file system a file at `relPath` of the pool would be written to has free, as the
   * runner reads it now; null where it cannot tell. Absent: nothing is asked up front, and the
   * transfer refuses a file without room when it starts.
   */
  freeBytes?(runner: string, target: { poolId: string; relPath: string }): Promise<number | null>;
  /** Says when a runner can take downloads for its pools (a node reported them active). */
  onReady(listener: (runner: string) => Promise<void> | void): void;
  /** Says which downloads a runner has in hand (a node that connected while fetching). */
  onInHand(listener: (runner: string, downloads: readonly HelloDownload[]) => Promise<void> | void): void;
}

/** Downloads run by nodes, each by a connected node on which the pool is active. */
export class NodeDownloadExecutor implements DownloadExecutor {
  private readonly progress = new Map<string, (update: DownloadProgressUpdate) => void>();
  private ready: ((runner: string) => Promise<void> | void) | undefined;
  private inHand: ((runner: string, downloads: readonly HelloDownload[]) => Promise<void> | void) | undefined;

  constructor(private readonly options: { hub: NodeHub; repositories: Repositories }) {
    const { hub } = options;
    // The hub awaits these, so node traffic stays bounded: welcomes and progress within its share
    // of the database, pools synced in the download service's batches.
    hub.onPoolsSynced = (nodeId) => this.ready?.(nodeId);
    hub.onNodeWelcomed = (nodeId, hello) => this.inHand?.(nodeId, hello.downloads ?? []);
    hub.onImageProgress = (message, nodeId) => this.deliver(message, nodeId);
  }

  async pick(target: { poolId: string; nodeId: string | null }, wanted?: string): Promise<string | null> {
    const { hub, repositories } = this.options;
    // Only nodes whose link is on this replica: a download's progress arrives where the node's
    // link is, so a node held by another replica (or by one that died, until its lease runs
    // out) is waited for like a disconnected one.
    const here = { isConnected: (nodeId: string) => hub.isConnectedHere(nodeId) };
    const usable = await nodesWithActivePool({ repositories, hub: here, poolId: target.poolId, nodeId: target.nodeId });
    if (wanted) {
      if (!hub.isConnectedHere(wanted)) {
        throw nodeNotConnected(wanted);
      }
      if (!usable.includes(wanted)) {
        throw new QuantixError(
          ErrorCode.POOL_NOT_ACTIVE_ON_NODE,
          `Pool ${target.poolId} is not active on node ${wanted}`,
          {
            details: { poolId: target.poolId, nodeId: wanted },
          },
        );
      }
      return wanted;
    }
    return usable[0] ?? null;
  }

  async preflight(source: { sourceUrl: string; checksumUrl: string | null }, runner: string | null): Promise<void> {
    if (runner === null) return;
    try {
      await this.options.hub.request(runner, { op: 'source.check', ...source }, { timeoutMs: 30_000 });
    } catch (error) {
      // A node too old to be asked judges the source when it fetches, as before.
      if (isQuantixError(error, ErrorCode.UNSUPPORTED_OPERATION) && error.details?.op === 'source.check') return;
      throw error;
    }
  }

  async freeBytes(runner: string, target: { poolId: string; relPath: string }): Promise<number | null> {
    const stat = await this.options.hub.request(runner, { op: 'file.stat', ...target }, { timeoutMs: 30_000 });
    return stat.availableBytes ?? null;
  }

  async run(
    runner: string,
    request: DownloadRequest,
    options: { onProgress: (update: DownloadProgressUpdate) => void; signal: AbortSignal },
  ): Promise<ImageDownloadResult> {
    const { hub } = this.options;
    const download = {
      imageId: request.imageId,
      poolId: request.poolId,
      relPath: request.relPath,
      sourceUrl: request.sourceUrl,
      checksum: request.checksum,
      checksumUrl: request.checksumUrl,
      checksumAlgorithm: request.checksumAlgorithm,
    };
    return this.tracked(runner, request.imageId, options, () =>
      request.import
        ? hub.request(
            runner,
            {
              op: 'image.import',
              ...download,
              targetFormat: request.import.format,
              claimedFormat: request.import.claimedFormat,
              keepOriginal: request.import.keepOriginal,
            },
            { timeoutMs: NODE_TRANSFER_TIMEOUT_MS },
          )
        : hub.request(runner, { op: 'image.download', ...download }, { timeoutMs: NODE_TRANSFER_TIMEOUT_MS }),
    );
  }

  async copy(
    runner: string,
    request: LocalCopyRequest,
    options: { onProgress: (update: DownloadProgressUpdate) => void; signal: AbortSignal },
  ): Promise<ImageDownloadResult> {
    const result = await this.tracked(runner, request.imageId, options, () =>
      this.options.hub.request(runner, { op: 'file.copy', ...request }, { timeoutMs: NODE_TRANSFER_TIMEOUT_MS }),
    );
    return { sizeBytes: result.sizeBytes, checksum: result.checksum, bytesTransferred: 0 };
  }

  /**
   * A node's long transfer of one image (download, import, copy): its image.progress goes to
   * `onProgress` meanwhile, and `signal` ends the wait — and, unless the control plane is only
   * shutting down (the next start adopts it), stops it on the node too (image.cancel).
   */
  private async tracked<T>(
    runner: string,
    imageId: string,
    options: { onProgress: (update: DownloadProgressUpdate) => void; signal: AbortSignal },
    transfer: () => Promise<T>,
  ): Promise<T> {
    const { hub } = this.options;
    this.progress.set(imageId, options.onProgress);
    let onAbort: (() => void) | undefined;
    const aborted = new Promise<never>((_, reject) => {
      onAbort = () => {
        if (options.signal.reason !== DOWNLOAD_SHUTDOWN) {
          void hub.request(runner, { op: 'image.cancel', imageId }, { timeoutMs: 15_000 }).catch(() => {});
        }
        reject(options.signal.reason);
      };
      options.signal.addEventListener('abort', onAbort, { once: true });
    });
    try {
      return await Promise.race([transfer(), aborted]);
    } finally {
      if (onAbort) options.signal.removeEventListener('abort', onAbort);
      if (this.progress.get(imageId) === options.onProgress) this.progress.delete(imageId);
    }
  }

  onReady(listener: (runner: string) => Promise<void> | void): void {
    this.ready = listener;
  }

  onInHand(listener: (runner: string, downloads: readonly HelloDownload[]) => Promise<void> | void): void {
    this.inHand = listener;
  }

  private deliver(message: Extract<NodeMessage, { type: 'image.progress' }>, _nodeId: string): void {
    this.progress.get(message.imageId)?.({
      ...(message.phase ? { phase: message.phase } : {}),
      ...(message.stage ? { stage: message.stage, percent: message.percent ?? null } : {}),
      bytesDone: message.bytesDone,
      bytesTotal: message.bytesTotal,
      bytesPerSecond: message.bytesPerSecond,
      etaSeconds: message.etaSeconds,
    });
  }
}

/**
 * Downloads run in this process, with this instance's fetchers and storage backends — for an
 * embedder that has no nodes. Its one runner is 'local', always ready.
 */
export class LocalDownloadExecutor implements DownloadExecutor {
  static readonly RUNNER = 'local';

  constructor(
    private readonly options: {
      repositories: Repositories;
      fetchers: readonly ImageFetcher[];
      backends: readonly StorageBackend[];
    },
  ) {}

  async pick(target: { poolId: string }, wanted?: string): Promise<string | null> {
    if (wanted && wanted !== LocalDownloadExecutor.RUNNER) {
      throw new QuantixError(ErrorCode.NODE_NOT_CONNECTED, `Downloads run in this process, not on node ${wanted}`, {
        details: { nodeId: wanted },
      });
    }
    const pool = await this.options.repositories.pools.require(target.poolId);
    backendFor(this.options.backends, pool.type); // UNSUPPORTED_OPERATION naming the type when none
    return LocalDownloadExecutor.RUNNER;
  }

  async run(
    _runner: string,
    request: DownloadRequest,
    options: { onProgress: (update: DownloadProgressUpdate) => void; signal: AbortSignal },
  ): Promise<ImageDownloadResult> {
    if (request.import) {
      throw new QuantixError(
        ErrorCode.UNSUPPORTED_OPERATION,
        'Imports run on a node (image.import); this in-process executor only downloads',
        { details: { retryable: false } },
      );
    }
    const pool = await this.options.repositories.pools.require(request.poolId);
    const backend = backendFor(this.options.backends, pool.type);
    // What a node does when a pool is pushed to it, done here: the pool is made usable (its
    // directory created, its export mounted) — or the download fails saying why it is not.
    const status = backend.activate ? await backend.activate({ pool }) : await backend.status({ pool });
    if (!status.available) {
      throw new QuantixError(ErrorCode.POOL_UNAVAILABLE, `Pool ${pool.name} is not usable here: ${status.reason}`, {
        details: { poolId: pool.id },
      });
    }
    const destinationPath = await callBackend(backend, 'resolve', { pool, relPath: request.relPath });
    const fetcher = this.fetcherFor(request.sourceUrl);
    let total: number | null = null;
    const result = await fetcher.fetch({
      sourceUrl: request.sourceUrl,
      destinationPath,
      checksum: request.checksum,
      checksumUrl: request.checksumUrl,
      checksumAlgorithm: request.checksumAlgorithm,
      signal: options.signal,
      onProgress: (progress: FetchProgress) => {
        total = progress.bytesTotal;
        options.onProgress({
          // Every byte in: what follows is the checksum.
          phase: total !== null && progress.bytesDone >= total ? 'verifying' : 'downloading',
          bytesDone: progress.bytesDone,
          bytesTotal: progress.bytesTotal,
          bytesPerSecond: progress.bytesPerSecond,
          etaSeconds: progress.etaSeconds,
        });
      },
    });
    return {
      sizeBytes: result.sizeBytes,
      checksum: result.checksum,
      format: result.format ?? null,
      virtualSizeBytes: result.virtualSizeBytes ?? null,
      bytesTransferred: result.bytesTransferred,
      resumed: result.resumed,
    };
  }

  async preflight(source: { sourceUrl: string; checksumUrl: string | null }): Promise<void> {
    await this.fetcherFor(source.sourceUrl).checkSource?.(source);
  }

  private fetcherFor(sourceUrl: string): ImageFetcher {
    const scheme = new URL(sourceUrl).protocol.replace(/:$/, '');
    const fetcher = this.options.fetchers.find((f) => f.schemes.includes(scheme));
    if (!fetcher) {
      throw new QuantixError(ErrorCode.UNSUPPORTED_OPERATION, `No fetcher here takes ${scheme} URLs`, {
        details: { scheme, retryable: false },
      });
    }
    return fetcher;
  }

  onReady(): void {
    // Always ready: downloads start at once, and the ones a restart interrupted resume at start.
  }

  onInHand(): void {
    // Nothing runs here but what this process started.
  }
}
