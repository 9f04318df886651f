/**
 * What a node's scan and the control plane's upload check read in an ISO: its descriptors, the
 * OS they identify, the labels and firmware an image row gets. Scans themselves run on the path
 * that runs everywhere — a node agent's pool.scan, ingested by @quantix/control-plane — with
 * createIsoInspector as the node's FileInspector; uploads are @quantix/control-plane's UploadService.
 */
import { type FileInspector, type Firmware, ISO_BOOT_LABEL } from '@quantix/core';
import { identifyOs, type OsIdentification } from './identify.js';
import { type IsoInfo, readIsoInfo } from './iso9660.js';
import { getOsinfoDatabase, type LoadOsinfoOptions, type OsinfoDatabase } from './osinfo.js';

/** The few logger methods used; a pino logger (the plugin context's) fits. */
export interface IsoLogger {
  debug(object: object, message?: string): void;
  warn(object: object, message?: string): void;
}

/** Labels a scan and an upload write on ISO image rows; other labels on a row are left alone. */
export const ISO_LABELS = {
  volumeId: 'iso.quantix.io/volume-id',
  /** Bootable platforms, comma-separated ('bios,uefi'), or 'none' (core's isDataDisc reads it). */
  boot: ISO_BOOT_LABEL,
  /** 'NSR02' or 'NSR03' on UDF bridge media. */
  udf: 'iso.quantix.io/udf',
  osSource: 'os.quantix.io/source',
  osRule: 'os.quantix.io/rule',
} as const;

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
  /** Open a symbolic link's target (readIsoInfo's option). Default true. */
  followLinks?: boolean;
}

/** Reads one ISO's descriptors and identifies its OS. Throws the reader's ISO_* errors. */
export async function inspectIso(options: InspectIsoOptions): Promise<Omit<InspectedIso, 'relPath' | 'modifiedAt'>> {
  const iso = await readIsoInfo({
    path: options.path,
    signal: options.signal,
    ...(options.followLinks === undefined ? {} : { followLinks: options.followLinks }),
  });
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
        // A pool file is never a link (listings skip them): one swapped in since is not followed.
        followLinks: false,
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
