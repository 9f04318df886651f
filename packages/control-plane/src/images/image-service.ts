import {
  ErrorCode,
  type Image,
  type ImagePageQuery,
  isQuantixError,
  type PoolNodeState,
  QuantixError,
  type Repositories,
  type ScanInvalid,
  type ScanSkipped,
  vmsUsingImage,
} from '@quantix/core';
import type { NodeHub } from '../hub/node-hub.js';
import { imagePathOnNode, nodesWithActivePool, poolNotActiveAnywhere } from '../nodes/placement.js';
import { SOURCE_LABELS } from './source.js';

/** An image with its path on the node asked about (null: not reachable there, or no node asked). */
export type ImageWithPath = Image & { path: string | null };

export interface RescanResult {
  /** Each pool scanned, with what its node found: the files taken, paths not looked into, files left out as not ISOs. */
  scanned: {
    poolId: string;
    nodeId: string;
    files: number;
    skipped: ScanSkipped[];
    invalid: ScanInvalid[];
  }[];
  failed: { poolId: string; nodeId: string; code: string; error: string }[];
}

/** Image rows as users see and remove them: listings with node paths, rescans, deletion. */
export class ImageService {
  constructor(
    private readonly options: {
      repositories: Repositories;
      hub: Pick<NodeHub, 'isConnected' | 'request'>;
      /** Whether a download runs for an image now (its row must not be deleted under it). */
      isDownloading: (imageId: string) => boolean;
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
   * Asks nodes to scan ISO pools again (all, or one): each connected node on which the pool is
   * active — one for a shared pool, whose files are the same everywhere. Results arrive as
   * scan.result and are ingested as they come; this answers which scans ran and which failed.
   */
  async rescan(poolId?: string): Promise<RescanResult> {
    const result: RescanResult = { scanned: [], failed: [] };
    for (const scan of await this.rescanTargets(poolId)) {
      try {
        const found = await this.options.hub.request(
          scan.nodeId,
          { op: 'pool.scan', poolId: scan.poolId, content: 'iso' },
          { timeoutMs: 300_000 },
        );
        result.scanned.push({ ...scan, files: found.files, skipped: found.skipped, invalid: found.invalid ?? [] });
      } catch (error) {
        const code = isQuantixError(error) ? error.code : ErrorCode.INTERNAL_ERROR;
        result.failed.push({ ...scan, code, error: (error as Error).message });
      }
    }
    return result;
  }

  /** The scans a rescan asks for (see rescan), without running them: the periodic rescan queues them. */
  async rescanTargets(poolId?: string): Promise<{ poolId: string; nodeId: string }[]> {
    const { repositories, hub } = this.options;
    const pools = poolId ? [await repositories.pools.require(poolId)] : await repositories.pools.list();
    const targets: { poolId: string; nodeId: string }[] = [];
    for (const pool of pools.filter((p) => p.contentTypes.includes('iso'))) {
      const nodeIds = await nodesWithActivePool({ repositories, hub, poolId: pool.id });
      for (const nodeId of pool.shared ? nodeIds.slice(0, 1) : nodeIds) targets.push({ poolId: pool.id, nodeId });
    }
    return targets;
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
      const [nodeId] = await nodesWithActivePool({
        repositories,
        hub,
        poolId: image.location.poolId,
        nodeId: image.nodeId,
      });
      try {
        if (!nodeId) {
          throw await poolNotActiveAnywhere({
            repositories,
            hub,
            pool: image.location.poolId,
            nodeId: image.nodeId,
            consequence:
              'the file cannot be removed now (a delete with keepFile, `quantix images delete --keep-file`, forgets the image and leaves its file)',
          });
        }
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
