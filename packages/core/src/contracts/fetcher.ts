import type { Checksum, ChecksumAlgorithm, ImageFormat } from '../domain/image.js';

export interface FetchProgress {
  bytesDone: number;
  bytesTotal: number | null;
  percent: number | null;
  bytesPerSecond: number | null;
  etaSeconds: number | null;
}

export interface FetchRequest {
  sourceUrl: string;
  /** Absolute path of the destination on the node; the fetcher writes `${path}.partial` first. */
  destinationPath: string;
  checksum?: Checksum | null;
  checksumUrl?: string | null;
  /** Which line of a checksum file to use when it lists several algorithms; default: the strongest. */
  checksumAlgorithm?: ChecksumAlgorithm | null;
  signal?: AbortSignal;
  onProgress?: (progress: FetchProgress) => void;
  /**
   * Look at what arrived (qemu-img) before it is renamed into place. Default true; false when
   * the caller examines the file itself (an import, which must not let qemu-img open it unchecked).
   */
  inspect?: boolean;
}

export interface FetchResult {
  path: string;
  sizeBytes: number;
  checksum: Checksum;
  /** Bytes transferred by this call; less than sizeBytes when it resumed a partial file. */
  bytesTransferred: number;
  resumed: boolean;
  /**
   * What the file is, when the fetcher looked (qemu-img, after checking the header names no
   * other file): its format and virtual size. Left out, a node takes the format from the file's
   * name and knows no virtual size; it never runs qemu-img on a file nobody checked.
   */
  format?: ImageFormat | null;
  virtualSizeBytes?: number | null;
}

/** Moves bytes from a source into a pool: resumable, verified, cancellable, with progress. */
export interface ImageFetcher {
  /** URL schemes this fetcher handles: ['http', 'https']. */
  readonly schemes: readonly string[];
  fetch(request: FetchRequest): Promise<FetchResult>;
  /**
   * The checksum a checksum file lists for the source's file now, read the way `fetch` reads it
   * (same source policy, size limit and retries), without fetching the file: what a golden image
   * compares with the revision it has. Optional: a fetcher without it cannot follow upstream.
   */
  readChecksum?(request: ChecksumRequest): Promise<Checksum>;
  /**
   * Refuses a source (and its checksum file) that `fetch` would refuse by its source policy,
   * without requesting anything: lets a download be refused before it is recorded. Optional: a
   * fetcher without it judges its sources when it fetches.
   */
  checkSource?(request: { sourceUrl: string; checksumUrl?: string | null }): Promise<void>;
  /**
   * Removes what fetches toward `destinationPath` left to resume from (a partial file and its
   * notes), when the image they were for is deleted; nothing there is no error. Optional: a
   * fetcher that leaves nothing behind needs none.
   */
  discard?(destinationPath: string): Promise<void>;
}

export interface ChecksumRequest {
  sourceUrl: string;
  checksumUrl: string;
  /** Which line to use when the file lists several algorithms; default: the strongest. */
  checksumAlgorithm?: ChecksumAlgorithm | null;
  signal?: AbortSignal;
}
