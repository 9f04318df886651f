import type { Firmware, ImageFormat } from '../domain/image.js';
import type { PoolContentType } from '../domain/pool.js';
import type { ScannedFile } from '../protocol/messages.js';

/** What looking inside a file learns beyond its size and date (the OS on an ISO, say). */
export interface InspectedFile {
  format?: ImageFormat | null;
  /** A human-readable name ("Ubuntu 24.04 LTS"), when the file says. */
  name?: string;
  os?: ScannedFile['os'];
  labels?: Record<string, string>;
  /** The firmware the medium boots with, when it boots with only one. */
  firmware?: Firmware;
}

/**
 * Looks inside files of a content type: what a scan reports about each file, and what decides
 * whether an upload is kept. `null`: nothing to say about this content type. A file that is not
 * what its content type says (a text file named `.iso`) is refused with the inspector's own
 * error code (ISO_NOT_ISO9660, …): a scan leaves that file out, an upload is refused (422).
 */
export interface FileInspector {
  inspect(options: {
    path: string;
    relPath: string;
    content: PoolContentType;
    signal?: AbortSignal;
  }): Promise<InspectedFile | null>;
}
