import type {
  Checksum,
  ChecksumAlgorithm,
  ImageFormat,
  ImageKind,
  ImageRequirements,
  OsInfo,
} from '../domain/image.js';

/** One downloadable image offered by a catalog (a cloud image or an ISO). */
export interface CatalogEntry {
  /** Stable across catalog versions: 'ubuntu-24.04'. Becomes Image.catalogId. */
  id: string;
  name: string;
  description: string;
  kind: ImageKind;
  format: ImageFormat;
  os: OsInfo;
  requirements: ImageRequirements;
  sourceUrl: string;
  /** A known checksum, or where to fetch one (a SHA256SUMS-style file). */
  checksum: Checksum | null;
  checksumUrl: string | null;
  checksumAlgorithm: ChecksumAlgorithm | null;
  sizeBytes: number | null;
}

export interface ImageCatalog {
  /** Names the catalog in logs and in merged listings. */
  readonly name: string;
  list(options?: { kind?: ImageKind }): Promise<CatalogEntry[]>;
  get?(options: { id: string }): Promise<CatalogEntry | undefined>;
}
