import type {
  DiscoveredImage,
  EventBus,
  Image,
  ImageError,
  ImageFileState,
  ImageKind,
  PoolContentType,
  Repositories,
  ScanInvalid,
  ScannedFile,
  ScanSkipped,
} from '@quantix/core';
import {
  ErrorCode,
  IMAGE_PHASES,
  imageIdForLocation,
  isQuantixError,
  isVmFileRelPath,
  QuantixError,
} from '@quantix/core';

export interface ScanIngestResult {
  inserted: number;
  updated: number;
  untouched: number;
  /** Ready images whose files were not in the scan, or are no longer usable, now `missing`. */
  missing: number;
  /** Files the node found unusable (not ISOs); they get no row. */
  invalid: number;
  /** Rows under paths the node skipped or refused: left as they were, since nobody looked. */
  leftAlone: number;
  /** Rows changed by someone else while the scan was applied; their write wins. */
  conflicts: number;
}

const KIND_OF_CONTENT: Record<PoolContentType, ImageKind> = { iso: 'iso', images: 'cloud' };
/**
 * Rows read before every ingest: all but `missing` ones, which are as many as the pool's live files
 * and transfers. Missing rows pile up over a pool's life (a node sending scan after scan of new
 * files makes thousands), so they are read only when a scan brings some back.
 */
const LIVE_PHASES = IMAGE_PHASES.filter((phase) => phase !== 'missing');

function underSkipped(relPath: string, skipped: readonly ScanSkipped[]): boolean {
  return skipped.some((s) => relPath === s.relPath || relPath.startsWith(`${s.relPath}/`));
}

const sameFile = (row: ImageFileState, file: ScannedFile): boolean =>
  row.sizeBytes === file.sizeBytes && row.fileModifiedMs === Date.parse(file.modifiedAt);

/**
 * Applies a node's complete scan of one content type of one pool to the database: new and
 * changed files are upserted (deterministic ids, so re-scans never duplicate), and ready rows
 * whose files are gone become `missing` — they are not deleted, so nothing a user relied on
 * disappears silently. Applying the same scan twice changes nothing the second time.
 *
 * - Rows at or under a path the node `skipped` (an unreadable directory, one beyond maxDepth, a
 *   symbolic link it refused) are left exactly as they are: not looked at is not gone.
 * - A file the node reports `invalid` (not an ISO) gets no row; a ready row for it becomes
 *   `missing` with the reason in its `error`, and becomes ready again once the file is fixed.
 * - Rows in other phases (downloading, deleting…) belong to whoever runs them and are not touched.
 * - A medium that boots with one firmware only records it in the row's requirements.
 *
 * Files in the VM-files directory (`vms/`) are ignored.
 *
 * A delta (`removed` given) is applied as the full scan it stands for would be, given that the
 * rows are still those the node's last report left (the hub checks that first).
 */
export async function ingestScan(options: {
  repositories: Repositories;
  nodeId: string;
  poolId: string;
  content: PoolContentType;
  files: readonly ScannedFile[];
  /** Paths the node did not look into (absent from nodes of protocol 1: none). */
  skipped?: readonly ScanSkipped[];
  /** Files that are there but unusable (absent from nodes of protocol 1: none). */
  invalid?: readonly ScanInvalid[];
  /**
   * Given for a delta scan (scan.delta): `files` are then only the files added or changed, and
   * these are the files gone since the node's last report; rows of files named in neither are left
   * as they are. Absent: `files` is the whole pool, and ready rows of files not in it become missing.
   */
  removed?: readonly string[];
  /** When given, phase changes are announced as `image.phase`. */
  events?: EventBus;
}): Promise<ScanIngestResult> {
  const { repositories, nodeId, poolId, content, events } = options;
  const skipped = options.skipped ?? [];
  // A VM's own files (its disk, its seed with user data and keys) are never images, whatever a
  // node of an older version still lists.
  const files = options.files.filter((file) => !isVmFileRelPath(file.relPath));
  const invalid = (options.invalid ?? []).filter((file) => !isVmFileRelPath(file.relPath));
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
  const result: ScanIngestResult = {
    inserted: 0,
    updated: 0,
    untouched: 0,
    missing: 0,
    invalid: invalid.length,
    leftAlone: 0,
    conflicts: 0,
  };
  // The rows before the upsert: which files are new or changed (for firmware and events).
  // Their file facts only: a pool of 20,000 files is compared without reading 20,000 whole rows.
  const before = new Map<string, ImageFileState>();
  for (const row of await repositories.images.listFileStates({ poolId, kind, phase: LIVE_PHASES })) {
    before.set(row.relPath, row);
  }
  // Only files the upsert could change are sent to it: a live row that is ready with the same size
  // and mtime, or that belongs to a transfer (downloading, deleting…), would be left untouched by
  // it anyway. A warm scan of 20,000 unchanged files then writes, and sends, nothing.
  const candidates = files.filter((file) => {
    const row = before.get(file.relPath);
    return row === undefined || (row.phase === 'ready' && !sameFile(row, file));
  });
  result.untouched += files.length - candidates.length;
  const found: DiscoveredImage[] = candidates.map((file) => ({
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
  if (found.length > 0) {
    const written = await repositories.images.upsertByLocation(found);
    result.inserted += written.inserted;
    result.updated += written.updated;
    result.untouched += written.untouched;
  }
  // Files with no live row were new or back from missing. When all of them were inserted, none was
  // back; else the ready rows say which: a row inserted now is at version 1, one that was missing
  // has been written at least twice.
  const unknown = files.filter((file) => !before.has(file.relPath));
  const back = new Set<string>();
  if (unknown.length > result.inserted) {
    const unknownPaths = new Set(unknown.map((file) => file.relPath));
    for (const row of await repositories.images.listFileStates({ poolId, kind, phase: 'ready' })) {
      if (unknownPaths.has(row.relPath) && row.version > 1) back.add(row.relPath);
    }
  }
  // An unusable file whose row is already missing (an earlier reason): read those rows only then.
  if (invalid.some((bad) => !before.has(bad.relPath))) {
    for (const row of await repositories.images.listFileStates({ poolId, kind, phase: 'missing' })) {
      if (!before.has(row.relPath)) before.set(row.relPath, row);
    }
  }

  /** Runs a row update; a row changed by someone else meanwhile (e.g. being deleted) is theirs. */
  const guard = async (write: () => Promise<unknown>): Promise<boolean> => {
    try {
      await write();
      return true;
    } catch (error) {
      if (isQuantixError(error, ErrorCode.VERSION_CONFLICT) || isQuantixError(error, ErrorCode.NOT_FOUND)) {
        result.conflicts += 1;
        return false;
      }
      throw error;
    }
  };
  const announce = (imageId: string, from: Image['phase'] | null, to: Image['phase'], error: ImageError | null) =>
    events?.emit('image.phase', { imageId, from, to, error });

  for (const file of files) {
    const row = before.get(file.relPath);
    const returned = back.has(file.relPath);
    const fresh = row === undefined && !returned;
    const changed = row !== undefined && row.phase === 'ready' && !sameFile(row, file);
    if (!fresh && !returned && !changed) continue;
    const id = imageIdForLocation(poolId, file.relPath);
    if (fresh) announce(id, null, 'ready', null);
    else if (returned) announce(id, 'missing', 'ready', null);
    // Discovered rows start with no firmware requirement; record one when the medium demands it,
    // and follow a changed medium either way.
    if (file.firmware && (file.firmware !== 'any' || !fresh)) {
      await guard(async () => {
        const current = await repositories.images.require(id);
        if (current.phase !== 'ready' || current.requirements.firmware === file.firmware) return;
        await repositories.images.update(
          id,
          { requirements: { ...current.requirements, firmware: file.firmware } },
          { expectedVersion: current.version },
        );
      });
    }
  }

  // Unusable files: the image is gone as surely as with a deleted file, but say why.
  for (const bad of invalid) {
    const row = before.get(bad.relPath);
    if (!row || (row.phase !== 'ready' && row.phase !== 'missing')) continue;
    if (row.phase === 'missing' && row.errorCode === bad.code) continue; // already said: idempotent
    const error: ImageError = { code: bad.code, message: bad.message, retryable: false };
    if (
      await guard(() =>
        repositories.images.update(row.id, { phase: 'missing', error }, { expectedVersion: row.version }),
      )
    ) {
      if (row.phase === 'ready') {
        result.missing += 1;
        announce(row.id, 'ready', 'missing', error);
      }
    }
  }

  const present = new Set([...files.map((f) => f.relPath), ...invalid.map((f) => f.relPath)]);
  const gone = options.removed ? options.removed.flatMap((relPath) => before.get(relPath) ?? []) : before.values();
  for (const row of gone) {
    const relPath = row.relPath;
    if (present.has(relPath)) continue;
    if (underSkipped(relPath, skipped)) {
      result.leftAlone += 1;
      continue;
    }
    if (row.phase !== 'ready') continue;
    if (await guard(() => repositories.images.update(row.id, { phase: 'missing' }, { expectedVersion: row.version }))) {
      result.missing += 1;
      announce(row.id, 'ready', 'missing', null);
    }
  }
  return result;
}
