import {
  type CatalogEntry,
  CHECKSUM_ALGORITHMS,
  type Checksum,
  type ChecksumAlgorithm,
  checksumSchema,
  ErrorCode,
  fileNameOfUrl,
  IMAGE_IMPORT_TARGETS,
  type Image,
  type ImageFormat,
  type ImageImportTarget,
  type ImageKind,
  parseOrThrow,
  QuantixError,
} from '@quantix/core';

/**
 * Where an image's bytes come from. It is written into the image row (as labels) when the row
 * is made, so that a process resuming the download after a restart needs nothing but the row —
 * not the catalog entry, which may have changed or gone since.
 */
export interface DownloadSource {
  url: string;
  checksum: Checksum | null;
  checksumUrl: string | null;
  checksumAlgorithm: ChecksumAlgorithm | null;
  /** Set for an import: what arrives is converted on the node (image.import) rather than kept as it is. */
  import?: ImportOptions;
}

/** How an import converts what it downloaded. */
export interface ImportOptions {
  format: ImageImportTarget;
  keepOriginal: boolean;
  /** What the source claims to be, in qemu-img's names; null: what its URL's file name claims. */
  claimedFormat: string | null;
}

export const SOURCE_LABELS = {
  url: 'quantix.io/source-url',
  checksumUrl: 'quantix.io/checksum-url',
  checksum: 'quantix.io/checksum',
  checksumAlgorithm: 'quantix.io/checksum-algorithm',
  importFormat: 'quantix.io/import-format',
  importKeepOriginal: 'quantix.io/import-keep-original',
  importClaimedFormat: 'quantix.io/import-claimed-format',
} as const;

/** Label values are at most this long (core's label schema). */
const MAX_LABEL_VALUE = 512;

export function sourceOfEntry(entry: CatalogEntry): DownloadSource {
  return {
    url: entry.sourceUrl,
    checksum: entry.checksum,
    checksumUrl: entry.checksumUrl,
    checksumAlgorithm: entry.checksumAlgorithm,
  };
}

export function sourceToLabels(source: DownloadSource): Record<string, string> {
  const labels: Record<string, string> = { [SOURCE_LABELS.url]: source.url };
  if (source.checksumUrl) labels[SOURCE_LABELS.checksumUrl] = source.checksumUrl;
  if (source.checksum) labels[SOURCE_LABELS.checksum] = `${source.checksum.algorithm}:${source.checksum.value}`;
  if (source.checksumAlgorithm) labels[SOURCE_LABELS.checksumAlgorithm] = source.checksumAlgorithm;
  if (source.import) {
    labels[SOURCE_LABELS.importFormat] = source.import.format;
    labels[SOURCE_LABELS.importKeepOriginal] = String(source.import.keepOriginal);
    if (source.import.claimedFormat) labels[SOURCE_LABELS.importClaimedFormat] = source.import.claimedFormat;
  }
  for (const [key, value] of Object.entries(labels)) {
    if (value.length > MAX_LABEL_VALUE) {
      throw new QuantixError(
        ErrorCode.INVALID_INPUT,
        `Invalid download source: ${key} is longer than ${MAX_LABEL_VALUE} characters`,
        { details: { issues: [{ path: key, message: `at most ${MAX_LABEL_VALUE} characters` }] } },
      );
    }
  }
  return labels;
}

/** The source recorded in an image row, or null when the row was not made by a download. */
export function sourceFromImage(image: Image): DownloadSource | null {
  const url = image.labels[SOURCE_LABELS.url];
  if (!url) return null;
  const recorded = image.labels[SOURCE_LABELS.checksum];
  let checksum: Checksum | null = null;
  if (recorded) {
    const [algorithm, value] = recorded.split(':');
    if ((CHECKSUM_ALGORITHMS as readonly string[]).includes(algorithm ?? '') && value) {
      checksum = { algorithm: algorithm as ChecksumAlgorithm, value };
    }
  }
  const algorithm = image.labels[SOURCE_LABELS.checksumAlgorithm];
  const importFormat = image.labels[SOURCE_LABELS.importFormat];
  const importing = (IMAGE_IMPORT_TARGETS as readonly string[]).includes(importFormat ?? '')
    ? {
        import: {
          format: importFormat as ImageImportTarget,
          keepOriginal: image.labels[SOURCE_LABELS.importKeepOriginal] === 'true',
          claimedFormat: image.labels[SOURCE_LABELS.importClaimedFormat] ?? null,
        },
      }
    : {};
  return {
    ...importing,
    url,
    checksum,
    checksumUrl: image.labels[SOURCE_LABELS.checksumUrl] ?? null,
    checksumAlgorithm: (CHECKSUM_ALGORITHMS as readonly string[]).includes(algorithm ?? '')
      ? (algorithm as ChecksumAlgorithm)
      : null,
  };
}

/** Checks a source a caller gives by hand (the catalog's entries are checked when the catalog is made). */
export function validateSource(source: DownloadSource): DownloadSource {
  let url: URL;
  try {
    url = new URL(source.url);
  } catch (error) {
    throw new QuantixError(
      ErrorCode.INVALID_INPUT,
      `Invalid download source: ${JSON.stringify(source.url)} is not a URL`,
      {
        details: { issues: [{ path: 'url', message: 'not a URL' }] },
        cause: error,
      },
    );
  }
  if (fileNameOfUrl(url) === '') {
    throw new QuantixError(ErrorCode.INVALID_INPUT, `Invalid download source: ${source.url} names no file`, {
      details: { issues: [{ path: 'url', message: 'must end in a file name' }] },
    });
  }
  return {
    url: source.url,
    checksum: source.checksum ? parseOrThrow(checksumSchema, source.checksum, 'download source checksum') : null,
    checksumUrl: source.checksumUrl ?? null,
    checksumAlgorithm: source.checksumAlgorithm ?? source.checksum?.algorithm ?? null,
    ...(source.import ? { import: source.import } : {}),
  };
}

const EXTENSIONS: Record<ImageFormat, string> = { qcow2: 'qcow2', raw: 'raw', iso: 'iso', vmdk: 'vmdk', vhdx: 'vhdx' };

/** The folder of a pool each kind of image goes to. */
const FOLDER: Record<ImageKind, string> = { cloud: 'images', iso: 'iso' };

/**
 * Where a catalog image goes in a pool unless the caller says otherwise: `images/<entry id>.<ext>`
 * (`iso/…` for ISOs). Named by the entry, not by its URL: two entries whose URLs end in the same
 * file name (`…/current/disk.img`) never collide.
 */
export function defaultRelPathForEntry(entry: Pick<CatalogEntry, 'id' | 'kind' | 'format'>): string {
  return `${FOLDER[entry.kind]}/${entry.id}.${EXTENSIONS[entry.format] ?? 'img'}`;
}

/**
 * Where an imported image goes: `images/<file name without its extensions>.<target format>`
 * (`…/appliance.ova` → `images/appliance.qcow2`, `disk.vmdk.xz` → `images/disk.qcow2`).
 */
export function defaultRelPathForImport(url: string, format: ImageImportTarget): string {
  const name = defaultRelPathForUrl(url).slice('images/'.length);
  // win.vhdx.xz → win: the compression's suffix, then the format's.
  const stem = name.replace(/\.(xz|gz|zst|bz2)$/i, '').replace(/\.[A-Za-z0-9]+$/, '') || 'image';
  return `images/${stem}.${format}`;
}

/** Where an uploaded file goes: beside the downloads of its kind (`iso/<file name>`, `images/<file name>`). */
export function defaultRelPathForUpload(fileName: string, kind: ImageKind): string {
  return `${FOLDER[kind]}/${fileName}`;
}

/** Where an image from a bare URL goes: `images/<file name of the URL>`, made safe as a file name. */
export function defaultRelPathForUrl(url: string, kind: ImageKind = 'cloud'): string {
  const name = fileNameOfUrl(url)
    .replace(/[^A-Za-z0-9._-]/g, '_')
    .replace(/^\.+/, '_');
  return `${FOLDER[kind]}/${name || 'image.img'}`;
}
