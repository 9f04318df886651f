import { performance } from 'node:perf_hooks';
import {
  callBackend,
  type DiscoveredImage,
  ErrorCode,
  type EventBus,
  type FileInspector,
  type Firmware,
  type Image,
  type ImageError,
  type ImagePatch,
  type ImageRepository,
  imageIdForLocation,
  isQuantixError,
  type PoolFile,
  type PoolListing,
  type StorageBackend,
  type StoragePool,
} from '@quantix/core';
import { identifyOs, type OsIdentification } from './identify.js';
import { type IsoInfo, readIsoInfo } from './iso9660.js';
import { getOsinfoDatabase, type LoadOsinfoOptions, type OsinfoDatabase } from './osinfo.js';

/** The few logger methods used; a pino logger (the plugin context's) fits. */
export interface IsoLogger {
  debug(object: object, message?: string): void;
  warn(object: object, message?: string): void;
}

/** Labels the scanner and upload write on ISO image rows; other labels on a row are left alone. */
export const ISO_LABELS = {
  volumeId: 'iso.quantix.io/volume-id',
  /** Bootable platforms, comma-separated ('bios,uefi'), or 'none'. */
  boot: 'iso.quantix.io/boot',
  /** 'NSR02' or 'NSR03' on UDF bridge media. */
  udf: 'iso.quantix.io/udf',
  osSource: 'os.quantix.io/source',
  osRule: 'os.quantix.io/rule',
} as const;

const OWN_LABELS = new Set<string>(Object.values(ISO_LABELS));
const DEFAULT_CONCURRENCY = 8;
/** Phases whose rows a scan keeps in step with the files; rows in any other phase belong to someone else. */
const SCANNED_PHASES = new Set<Image['phase']>(['ready', 'missing']);

/** What reading and identifying one ISO found. */
export interface InspectedIso {
  relPath: string;
  sizeBytes: number;
  modifiedAt: Date;
  iso: IsoInfo;
  identification: OsIdentification;
  labels: Record<string, string>;
  firmware: Firmware;
}

export interface InvalidIso {
  relPath: string;
  /** An ISO_* code (ISO_TRUNCATED, ISO_EMPTY, ISO_NOT_ISO9660, …), or PATH_ESCAPES_POOL. */
  code: string;
  message: string;
}

/** The labels an ISO's descriptors and identification give its image row. */
export function isoLabels(iso: IsoInfo, identification: OsIdentification): Record<string, string> {
  const labels: Record<string, string> = {
    [ISO_LABELS.volumeId]: iso.volumeId || iso.udf?.volumeId || '',
    [ISO_LABELS.boot]: iso.boot?.platforms.join(',') || 'none',
    [ISO_LABELS.osSource]: identification.source,
  };
  if (!labels[ISO_LABELS.volumeId]) delete labels[ISO_LABELS.volumeId];
  if (iso.udf) labels[ISO_LABELS.udf] = iso.udf.revision;
  if (identification.rule) labels[ISO_LABELS.osRule] = identification.rule;
  return labels;
}

/** The firmware a VM needs to boot the ISO: what its El Torito catalog offers. */
export function isoFirmware(iso: IsoInfo): Firmware {
  const platforms = iso.boot?.platforms ?? [];
  const bios = platforms.includes('bios');
  const uefi = platforms.includes('uefi');
  if (uefi && !bios) return 'uefi';
  if (bios && !uefi) return 'bios';
  return 'any';
}

export interface InspectIsoOptions {
  /** Absolute path of the file. */
  path: string;
  /** relPath or file name, used for identification by name as a last resort. */
  fileName: string;
  osinfo: OsinfoDatabase | null;
  signal?: AbortSignal;
}

/** Reads one ISO's descriptors and identifies its OS. Throws the reader's ISO_* errors. */
export async function inspectIso(options: InspectIsoOptions): Promise<Omit<InspectedIso, 'relPath' | 'modifiedAt'>> {
  const iso = await readIsoInfo({ path: options.path, signal: options.signal });
  const identification = identifyOs({ iso, fileName: options.fileName, osinfo: options.osinfo });
  return {
    sizeBytes: iso.fileSizeBytes,
    iso,
    identification,
    labels: isoLabels(iso, identification),
    firmware: isoFirmware(iso),
  };
}

/** What a node's scan reports about one ISO beyond its size and date (the shape of core's ScannedFile fields). */
export interface IsoScanDetails {
  format: 'iso';
  name?: string;
  os: Pick<
    OsIdentification['os'],
    'family' | 'distribution' | 'version' | 'arch' | 'shortId' | 'confidence' | 'osinfoVersion'
  >;
  labels: Record<string, string>;
}

/**
 * A file inspector for scans that run on a node and report to the control plane (a node agent's
 * `pool.scan`): ISOs are read and identified, with osinfo-db loaded once on first use; other
 * content gives null. A file that is not a usable ISO throws its ISO_* error.
 */
/**
 * The ISO reader as a FileInspector: what a scan on a node reports about each ISO, and what
 * decides whether an uploaded ISO is kept. A file that is no ISO is refused with its ISO_* code.
 * osinfo-db is loaded once, at the first ISO.
 */
export function createIsoInspector(
  options: { osinfo?: LoadOsinfoOptions | false; logger?: IsoLogger } = {},
): FileInspector {
  let osinfo: Promise<OsinfoDatabase | null> | undefined;
  return {
    async inspect(file) {
      if (file.content !== 'iso') return null;
      osinfo ??= options.osinfo === false ? Promise.resolve(null) : loadOsinfo(options.osinfo ?? {}, options.logger);
      const found = await inspectIso({
        path: file.path,
        fileName: file.relPath,
        osinfo: await osinfo,
        ...(file.signal ? { signal: file.signal } : {}),
      });
      const { family, distribution, version, arch, shortId, confidence, osinfoVersion } = found.identification.os;
      return {
        format: 'iso',
        ...(found.identification.name ? { name: found.identification.name } : {}),
        os: { family, distribution, version, arch, shortId, confidence, osinfoVersion },
        labels: found.labels,
        firmware: found.firmware,
      };
    },
  };
}

export interface ScanPoolOptions {
  pool: StoragePool;
  /** The backend serving the pool's type; it lists the files and resolves their paths. */
  backend: StorageBackend;
  images: ImageRepository;
  /** The node doing the scan; recorded on rows of pools that are not shared. */
  nodeId?: string | null;
  /** Where osinfo-db is (loaded once per process), or false for the built-in table only. */
  osinfo?: LoadOsinfoOptions | false;
  /** Files read at once. Default 8. */
  concurrency?: number;
  signal?: AbortSignal;
  logger?: IsoLogger;
  /** When given, phase changes the scan makes are announced as `image.phase`. */
  events?: EventBus;
}

export interface ScanPoolResult {
  poolId: string;
  /** ISO files the backend listed. */
  listed: number;
  /** New rows. */
  added: number;
  /** Rows whose file changed (size or mtime) and was read again. */
  changed: number;
  /** Rows whose file has the size and mtime recorded: not read. */
  unchanged: number;
  /** `missing` rows whose file is back: `ready` again. */
  restored: number;
  /** `ready` rows whose file is gone, or is no longer a readable ISO: now `missing`. */
  missing: number;
  /** Files that are not usable ISOs; they get no row (and an existing row goes `missing` with the reason). */
  invalid: InvalidIso[];
  /** Files whose row is in another phase (downloading, deleting, …), left to whoever owns it. */
  busy: number;
  /** Rows changed by someone else during the scan; left as they are for the next scan. */
  conflicts: number;
  /** Directories the listing did not enter; rows under them are not marked missing. */
  skipped: PoolListing['skipped'];
  filesRead: number;
  bytesRead: number;
  durationMs: number;
}

/** Runs at most `limit` tasks at once. */
async function eachLimited<T>(items: readonly T[], limit: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const item = items[next++] as T;
      await work(item);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

const sameFile = (row: Image, file: PoolFile): boolean =>
  row.sizeBytes === file.sizeBytes && row.fileModifiedAt?.getTime() === file.modifiedAt.getTime();

/** An `error` the scanner put on a row whose file is not a usable ISO. */
const isIsoError = (error: ImageError | null): error is ImageError =>
  error !== null && (error.code.startsWith('ISO_') || error.code === ErrorCode.PATH_ESCAPES_POOL);

function underSkipped(relPath: string, skipped: PoolListing['skipped']): boolean {
  return skipped.some((s) => relPath === s.relPath || relPath.startsWith(`${s.relPath}/`));
}

function mergeLabels(existing: Record<string, string>, ours: Record<string, string>): Record<string, string> {
  const labels: Record<string, string> = {};
  for (const [key, value] of Object.entries(existing)) if (!OWN_LABELS.has(key)) labels[key] = value;
  return { ...labels, ...ours };
}

/**
 * Brings the ISO image rows of one pool in step with its files: lists the pool's ISOs through its
 * StorageBackend, reads and identifies new and changed files, and writes through the
 * ImageRepository.
 *
 * - A new file becomes a `ready` row (deterministic id from pool and relPath) with its size, mtime,
 *   OS and descriptor labels.
 * - A file with the size and mtime its row records is not read again.
 * - A changed file is read again and its row refreshed (a `missing` row becomes `ready`).
 * - A `ready` row whose file is gone becomes `missing`; so does one whose file is no longer a
 *   usable ISO, with the reason in its `error`. Rows under directories the listing skipped are
 *   left alone, and rows in other phases (downloads, deletions) are never touched.
 * - A file that is not a usable ISO gets no row; it is reported in `invalid` with its ISO_* code.
 *
 * A pool that cannot be listed fails the scan (POOL_UNAVAILABLE from the backend) before anything
 * is written: an unreachable pool never turns its images `missing`.
 */
export async function scanPool(options: ScanPoolOptions): Promise<ScanPoolResult> {
  const started = performance.now();
  const { pool, backend, images, signal, logger, events } = options;
  const nodeId = pool.shared ? null : (options.nodeId ?? null);
  const result: ScanPoolResult = {
    poolId: pool.id,
    listed: 0,
    added: 0,
    changed: 0,
    unchanged: 0,
    restored: 0,
    missing: 0,
    invalid: [],
    busy: 0,
    conflicts: 0,
    skipped: [],
    filesRead: 0,
    bytesRead: 0,
    durationMs: 0,
  };

  // The listing and the rows are independent: fetch them together (a warm scan is little else).
  const [listing, rows] = await Promise.all([
    backend.list({ pool, content: 'iso', signal }),
    images.list({ poolId: pool.id, kind: 'iso' }),
  ]);
  result.listed = listing.files.length;
  result.skipped = listing.skipped;
  const byPath = new Map<string, Image>();
  for (const row of rows) if (row.location) byPath.set(row.location.relPath, row);

  const toRead: { file: PoolFile; row: Image | undefined }[] = [];
  const restore: DiscoveredImage[] = [];
  for (const file of listing.files) {
    const row = byPath.get(file.relPath);
    if (row && !SCANNED_PHASES.has(row.phase)) {
      result.busy += 1;
    } else if (row && sameFile(row, file)) {
      if (row.phase === 'ready') result.unchanged += 1;
      else if (isIsoError(row.error)) {
        result.invalid.push({ relPath: file.relPath, code: row.error.code, message: row.error.message });
      } else {
        restore.push({
          poolId: pool.id,
          relPath: file.relPath,
          kind: 'iso',
          sizeBytes: file.sizeBytes,
          fileModifiedAt: file.modifiedAt,
          nodeId,
        });
      }
    } else {
      toRead.push({ file, row });
    }
  }

  const osinfo =
    options.osinfo === false || toRead.length === 0 ? null : await loadOsinfo(options.osinfo ?? {}, logger);
  const inspected: { file: PoolFile; row: Image | undefined; found: InspectedIso }[] = [];
  const broken: { file: PoolFile; row: Image | undefined; error: ImageError }[] = [];
  await eachLimited(toRead, options.concurrency ?? DEFAULT_CONCURRENCY, async ({ file, row }) => {
    signal?.throwIfAborted();
    try {
      const path = await callBackend(backend, 'resolve', { pool, relPath: file.relPath });
      const found = await inspectIso({ path, fileName: file.relPath, osinfo, signal });
      result.filesRead += 1;
      result.bytesRead += found.iso.bytesRead;
      // The listing's size and mtime are what the next scan compares with.
      inspected.push({ file, row, found: { ...found, relPath: file.relPath, modifiedAt: file.modifiedAt } });
    } catch (error) {
      if (!isQuantixError(error)) throw error;
      if (error.code === ErrorCode.NOT_FOUND) return; // deleted since the listing; the next scan sees it gone
      if (!error.code.startsWith('ISO_') && error.code !== ErrorCode.PATH_ESCAPES_POOL) throw error;
      result.filesRead += 1;
      logger?.debug({ poolId: pool.id, relPath: file.relPath, code: error.code }, error.message);
      broken.push({ file, row, error: { code: error.code, message: error.message, retryable: false } });
      result.invalid.push({ relPath: file.relPath, code: error.code, message: error.message });
    }
  });
  signal?.throwIfAborted();

  // New files and restored ones go in one batch; the repository derives their ids.
  const fresh = inspected.filter((i) => i.row === undefined);
  const batch: DiscoveredImage[] = [
    ...restore,
    ...fresh.map(({ file, found }) => ({
      poolId: pool.id,
      relPath: file.relPath,
      kind: 'iso' as const,
      format: 'iso' as const,
      sizeBytes: file.sizeBytes,
      fileModifiedAt: file.modifiedAt,
      nodeId,
      os: found.identification.os,
      labels: found.labels,
    })),
  ];
  if (batch.length > 0) {
    const upserted = await images.upsertByLocation(batch);
    result.added += upserted.inserted;
    result.restored += restore.length;
    for (const item of restore) emitPhase(events, imageIdForLocation(pool.id, item.relPath), 'missing', 'ready');
  }
  for (const { file, found } of fresh) {
    const id = imageIdForLocation(pool.id, file.relPath);
    emitPhase(events, id, null, 'ready');
    // Discovered rows start with no firmware requirement; record one when the media demand it.
    if (found.firmware !== 'any') {
      await guard(result, () =>
        images
          .require(id)
          .then((row) =>
            images.update(
              id,
              { requirements: { ...row.requirements, firmware: found.firmware } },
              { expectedVersion: row.version },
            ),
          ),
      );
    }
  }

  for (const { row, found, file } of inspected) {
    if (!row) continue;
    const patch: ImagePatch = {
      phase: 'ready',
      format: 'iso',
      sizeBytes: file.sizeBytes,
      fileModifiedAt: file.modifiedAt,
      os: { ...found.identification.os, defaultUser: row.os.defaultUser, cloudInit: row.os.cloudInit },
      labels: mergeLabels(row.labels, found.labels),
      requirements: { ...row.requirements, firmware: found.firmware },
      error: null,
      ...(nodeId ? { nodeId } : {}),
    };
    if (await guard(result, () => images.update(row.id, patch, { expectedVersion: row.version }))) {
      result.changed += 1;
      if (row.phase === 'missing') {
        result.restored += 1;
        emitPhase(events, row.id, 'missing', 'ready');
      }
    }
  }

  // A changed file that is no longer a usable ISO: its image is gone as surely as a deleted file.
  for (const { row, file, error } of broken) {
    if (!row) continue;
    const patch: ImagePatch = { phase: 'missing', error, sizeBytes: file.sizeBytes, fileModifiedAt: file.modifiedAt };
    if (await guard(result, () => images.update(row.id, patch, { expectedVersion: row.version }))) {
      if (row.phase === 'ready') {
        result.missing += 1;
        emitPhase(events, row.id, 'ready', 'missing', error);
      }
    }
  }

  const present = new Set(listing.files.map((f) => f.relPath));
  for (const row of rows) {
    const relPath = row.location?.relPath;
    if (row.phase !== 'ready' || relPath === undefined || present.has(relPath)) continue;
    if (underSkipped(relPath, listing.skipped)) continue; // not looked at, so not known to be gone
    if (await guard(result, () => images.update(row.id, { phase: 'missing' }, { expectedVersion: row.version }))) {
      result.missing += 1;
      emitPhase(events, row.id, 'ready', 'missing');
    }
  }

  // One line for the scan however many files are broken (a pool of 21,000 is one problem, not 21,000).
  if (result.invalid.length > 0) {
    logger?.warn(
      { poolId: pool.id, count: result.invalid.length, first: result.invalid.slice(0, 5) },
      `${result.invalid.length} of ${result.listed} files in pool ${pool.id} are not usable ISOs`,
    );
  }
  result.durationMs = performance.now() - started;
  logger?.debug({ ...result, invalid: result.invalid.length, skipped: result.skipped.length }, 'ISO scan done');
  return result;
}

/** osinfo-db, or null (the built-in table alone) when it cannot be loaded: identification degrades, scans go on. */
export async function loadOsinfo(options: LoadOsinfoOptions, logger?: IsoLogger): Promise<OsinfoDatabase | null> {
  try {
    return await getOsinfoDatabase(options);
  } catch (error) {
    logger?.warn(
      { error: (error as Error).message },
      'osinfo-db could not be loaded; identifying with the built-in table',
    );
    return null;
  }
}

/** Runs a row update; a row changed by someone else meanwhile is counted and left to them. */
async function guard(result: ScanPoolResult, write: () => Promise<unknown>): Promise<boolean> {
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
}

function emitPhase(
  events: EventBus | undefined,
  imageId: string,
  from: Image['phase'] | null,
  to: Image['phase'],
  error: ImageError | null = null,
): void {
  events?.emit('image.phase', { imageId, from, to, error });
}
