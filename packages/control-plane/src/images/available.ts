import { posix } from 'node:path';
import {
  type Image,
  type ImageCatalog,
  type ImageError,
  type ImageKind,
  type ImageProgress,
  isDataDisc,
  type RankedImages,
  type Repositories,
} from '@quantix/core';

export const AVAILABILITY = ['ready', 'downloading', 'error', 'not-downloaded', 'unavailable'] as const;
export type Availability = (typeof AVAILABILITY)[number];

/** One choice in the VM-creation view: a catalog entry, an image row, or both. */
export interface AvailableImage {
  /** `image:<id>` when a row exists, else `catalog:<id>`. */
  key: string;
  catalogId: string | null;
  imageId: string | null;
  name: string;
  kind: ImageKind;
  os: Image['os'];
  status: Availability;
  /** Only `ready` images can boot a VM on this node, and of ISOs only those with a boot record (isDataDisc). */
  selectable: boolean;
  /** Why it cannot be chosen now, as a person can act on it; null when selectable. */
  reason: string | null;
  poolId: string | null;
  relPath: string | null;
  /** Absolute path of the file on the node asked about (ready images only). */
  path: string | null;
  progress: ImageProgress | null;
  error: ImageError | null;
  sizeBytes: number | null;
  /** The catalog entry's source, for a download button. */
  sourceUrl: string | null;
}

const BUSY = new Set(['pending', 'downloading', 'verifying']);

/** Absolute path of a pool-relative location on a node whose pool root is `mountPath`. */
export function pathOnNode(mountPath: string, relPath: string): string {
  return posix.join(mountPath, relPath);
}

type PoolOnNode = RankedImages['images'][number]['pool'];

/** Why a row can or cannot be chosen on the node, and its path there when it can. */
interface RowDescription {
  status: Availability;
  reason: string | null;
  path: string | null;
}

/** Written as plain literals: run for every row of every page, where spreads showed in profiles. */
function describeRow(image: Image, pool: PoolOnNode, nodeId: string): RowDescription {
  const state = pool?.state ?? undefined;
  const location = image.location;
  if (BUSY.has(image.phase)) {
    return { status: 'downloading', reason: `being downloaded (${image.phase})`, path: null };
  }
  if (image.phase === 'error') {
    return { status: 'error', reason: image.error?.message ?? 'the download failed', path: null };
  }
  if (image.phase === 'missing') {
    return { status: 'unavailable', reason: 'its file has disappeared from the pool', path: null };
  }
  if (image.phase === 'deleting') {
    return { status: 'unavailable', reason: 'it is being deleted', path: null };
  }
  if (!location || !pool) return { status: 'unavailable', reason: 'it has no location in a pool', path: null };
  if (image.nodeId && image.nodeId !== nodeId) {
    return {
      status: 'unavailable',
      reason: `its file is on node ${image.nodeId}, in a pool local to that node`,
      path: null,
    };
  }
  if (state?.status !== 'active' || !state.mountPath) {
    const why =
      state?.lastError ??
      (state
        ? `pool ${pool.name} is ${state.status} on this node`
        : `pool ${pool.name} has not reported from this node yet`);
    return { status: 'unavailable', reason: why, path: null };
  }
  return { status: 'ready', reason: null, path: pathOnNode(state.mountPath, location.relPath) };
}

export interface AvailableImagesPage {
  /** Whether the node exists: an unknown node's view is empty. */
  nodeFound: boolean;
  images: AvailableImage[];
  /** Choices in the whole view, for paging. */
  total: number;
}

/** Largest page of the view; the default too. */
export const MAX_AVAILABLE_PAGE = 1000;

const DATA_DISC_REASON = 'no boot record: a data disc (drivers, tools), to insert into a VM’s drive, not to boot from';

const STATUS_OF_RANK: Availability[] = ['ready', 'downloading', 'unavailable', 'error'];

/**
 * The VM-creation view for one node: every catalog entry merged with the image rows of the
 * pools assigned to that node, plus rows that come from no catalog (scanned ISOs, uploads);
 * ready first, then downloading, unavailable, failed, and catalog entries not downloaded yet.
 * Ranking and paging run in the database, so a page costs the same with 10 or 10,000 images.
 * `catalog` is usually a CatalogRegistry merging every installed catalog.
 */
export async function listAvailableImages(options: {
  repositories: Repositories;
  catalog: ImageCatalog;
  nodeId: string;
  kind?: ImageKind;
  /** Case-insensitive substring of the name, description, OS distribution, labels or file path in its pool. */
  text?: string;
  limit?: number;
  offset?: number;
}): Promise<AvailableImagesPage> {
  const { repositories, catalog, nodeId, kind } = options;
  const limit = Math.min(Math.max(1, options.limit ?? MAX_AVAILABLE_PAGE), MAX_AVAILABLE_PAGE);
  const offset = Math.max(0, options.offset ?? 0);
  const text = options.text?.trim().toLowerCase() ?? '';
  const entries = await catalog.list(kind ? { kind } : {});
  // Not every catalog filters by kind itself.
  const offered = kind ? entries.filter((entry) => entry.kind === kind) : entries;
  const entryById = new Map(offered.map((entry) => [entry.id, entry]));
  // One statement: the node's pools and their states, the ranked page, the total.
  const ranked = await repositories.images.listRankedForNode({
    nodeId,
    catalogIds: [...entryById.keys()],
    ...(kind ? { kind } : {}),
    ...(text ? { text } : {}),
    limit,
    offset,
  });

  const fromRow = (image: Image, rank: number, pool: PoolOnNode): AvailableImage => {
    const described = describeRow(image, pool, nodeId);
    // The database ranked the row; the description adds the path and the reason.
    const status = STATUS_OF_RANK[rank] ?? described.status;
    // Ready, and a VM could hold it in its drive; never boot from it.
    const dataDisc = status === 'ready' && isDataDisc(image);
    return {
      key: `image:${image.id}`,
      catalogId: image.catalogId,
      imageId: image.id,
      name: image.name,
      kind: image.kind,
      os: image.os,
      status,
      selectable: status === 'ready' && !dataDisc,
      reason: dataDisc ? DATA_DISC_REASON : described.reason,
      poolId: image.location?.poolId ?? null,
      relPath: image.location?.relPath ?? null,
      path: described.path,
      progress: image.progress,
      error: image.error,
      sizeBytes: image.sizeBytes,
      sourceUrl: image.catalogId ? (entryById.get(image.catalogId)?.sourceUrl ?? null) : null,
    };
  };

  const withRows = new Set(ranked.catalogIdsWithRows);
  const notDownloaded = offered
    .filter((entry) => !withRows.has(entry.id))
    .filter(
      (entry) =>
        !text || entry.name.toLowerCase().includes(text) || (entry.os.distribution ?? '').toLowerCase().includes(text),
    )
    .sort((a, b) => a.name.localeCompare(b.name));
  const images = ranked.images.map(({ image, rank, pool }) => fromRow(image, rank, pool));
  // Entries never downloaded come after every row: the page continues into them.
  const start = Math.max(0, offset - ranked.total);
  for (const entry of notDownloaded.slice(start, start + (limit - images.length))) {
    images.push({
      key: `catalog:${entry.id}`,
      catalogId: entry.id,
      imageId: null,
      name: entry.name,
      kind: entry.kind,
      os: entry.os,
      status: 'not-downloaded',
      selectable: false,
      reason: 'not downloaded to a pool of this node yet',
      poolId: null,
      relPath: null,
      path: null,
      progress: null,
      error: null,
      sizeBytes: entry.sizeBytes,
      sourceUrl: entry.sourceUrl,
    });
  }
  return { nodeFound: ranked.nodeFound, images, total: ranked.total + notDownloaded.length };
}
