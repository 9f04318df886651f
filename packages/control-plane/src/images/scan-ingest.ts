import type { DiscoveredImage, ImageKind, PoolContentType, Repositories, ScannedFile } from '@quantix/core';
import { ErrorCode, isVmFileRelPath, QuantixError } from '@quantix/core';

export interface ScanIngestResult {
  inserted: number;
  updated: number;
  untouched: number;
  /** Ready images whose files were not in the scan, now `missing`. */
  missing: number;
}

const KIND_OF_CONTENT: Record<PoolContentType, ImageKind> = { iso: 'iso', images: 'cloud' };

/**
 * Applies a node's complete scan of one content type of one pool to the database: new and
 * changed files are upserted (deterministic ids, so re-scans never duplicate), and ready rows
 * whose files are gone become `missing` — they are not deleted, so nothing a user relied on
 * disappears silently. Files in the VM-files directory (`vms/`) are ignored.
 */
export async function ingestScan(options: {
  repositories: Repositories;
  nodeId: string;
  poolId: string;
  content: PoolContentType;
  files: readonly ScannedFile[];
}): Promise<ScanIngestResult> {
  const { repositories, nodeId, poolId, content } = options;
  // A VM's own files (its disk, its seed with user data and keys) are never images, whatever a
  // node of an older version still lists.
  const files = options.files.filter((file) => !isVmFileRelPath(file.relPath));
  const pool = await repositories.pools.require(poolId);
  if (!pool.nodeIds.includes(nodeId)) {
    throw new QuantixError(
      ErrorCode.INVALID_INPUT,
      `Pool ${poolId} is not assigned to node ${nodeId}; its scan is ignored`,
      {
        details: { poolId, nodeId },
      },
    );
  }
  const kind = KIND_OF_CONTENT[content];
  const rowNodeId = pool.shared ? null : nodeId;
  const found: DiscoveredImage[] = files.map((file) => ({
    poolId,
    relPath: file.relPath,
    kind: file.kind ?? kind,
    name: file.name,
    format: file.format,
    sizeBytes: file.sizeBytes,
    fileModifiedAt: new Date(file.modifiedAt),
    nodeId: rowNodeId,
    os: file.os,
    labels: file.labels,
  }));
  const upserted = await repositories.images.upsertByLocation(found);

  const present = new Set(files.map((f) => f.relPath));
  let missing = 0;
  for (const image of await repositories.images.list({ poolId, kind, phase: 'ready' })) {
    if (image.location && !present.has(image.location.relPath)) {
      await repositories.images.update(image.id, { phase: 'missing' }, { expectedVersion: image.version }).then(
        () => missing++,
        (error) => {
          // Changed by someone else meanwhile (e.g. being deleted): their write wins.
          if ((error as QuantixError).code !== ErrorCode.VERSION_CONFLICT) throw error;
        },
      );
    }
  }
  return { ...upserted, missing };
}
