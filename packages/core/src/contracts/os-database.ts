import type { OsInfo } from '../domain/image.js';

/** CPUs, memory and disk an OS needs (minimum) or runs well with (recommended); null where not said. */
export interface OsResourceFigures {
  cpus: number | null;
  memoryMiB: number | null;
  diskGiB: number | null;
}

/** What identifies an OS: osinfo-db's short id, else its distribution and version. */
export type OsRef = Pick<OsInfo, 'distribution' | 'version' | 'arch'> & { shortId?: string | null | undefined };

export interface OsResources {
  /** The OS's id in libosinfo's scheme ("http://ubuntu.com/ubuntu/24.04"), for a domain's metadata. */
  osId: string;
  name: string;
  /** False when the database does not list this release and the figures are those of `basedOn`. */
  exact: boolean;
  /** The short id of the entry the figures come from ("ubuntu22.10"). */
  basedOn: string;
  minimum: OsResourceFigures | null;
  recommended: OsResourceFigures | null;
}

/** Facts about operating systems (osinfo-db): what a VM of one needs. */
export interface OsDatabase {
  /** null when the database knows neither the OS nor an earlier release of its distribution. */
  resourcesFor(os: OsRef): Promise<OsResources | null>;
}
