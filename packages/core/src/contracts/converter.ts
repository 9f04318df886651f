import type { Checksum } from '../domain/image.js';

/** Where an import is after its bytes arrived. */
export const IMAGE_IMPORT_STAGES = ['decompressing', 'inspecting', 'converting', 'verifying'] as const;
export type ImageImportStage = (typeof IMAGE_IMPORT_STAGES)[number];

/** What an import converts to. */
export const IMAGE_IMPORT_TARGETS = ['qcow2', 'raw'] as const;
export type ImageImportTarget = (typeof IMAGE_IMPORT_TARGETS)[number];

export interface ImageImportProgress {
  stage: ImageImportStage;
  /** Of the current stage; null when unknown (decompressing counts bytes only). */
  percent: number | null;
  bytesDone?: number;
}

/** What an OVF descriptor says of its virtual machine: the facts that pre-fill a VM. */
export interface OvfFacts {
  name: string | null;
  cpuCount: number | null;
  memoryMiB: number | null;
  firmware: 'bios' | 'uefi' | null;
  /** In the order the descriptor's DiskSection lists them. */
  disks: { diskId: string; fileName: string; capacityBytes: number | null }[];
}

export interface ImageImportRequest {
  /** The file as it arrived (downloaded), beside its destination in the pool. */
  sourcePath: string;
  /** Where the converted image ends up (absolute); written under a temporary name first. */
  destinationPath: string;
  /** Default qcow2. */
  targetFormat?: ImageImportTarget;
  /** What the source is said to be, in qemu-img's names ('vpc' for VHD); default: what its name claims. */
  claimedFormat?: string | null;
  /** The name the file arrived under (a URL's file name), when sourcePath is a staging name. */
  originalName?: string;
  /** Remove the source once it is converted or refused as unsafe. Default false. */
  removeSource?: boolean;
  signal?: AbortSignal;
  onProgress?: (progress: ImageImportProgress) => void;
}

export interface ImportedDisk {
  path: string;
  format: ImageImportTarget;
  virtualSizeBytes: number;
  sizeBytes: number;
  checksum: Checksum;
  /** What the content was, as qemu-img names it. */
  sourceFormat: string;
  compression: string | null;
}

export interface ImageImportResult {
  /** The converted disks: one, unless the source is an OVA of several (the first at destinationPath). */
  disks: ImportedDisk[];
  /** What the OVF descriptor said, when the source is an OVA. */
  ovf: OvfFacts | null;
}

/**
 * Turns a file that arrived on a node (a VMDK, VHD(X), VDI, raw or qcow2, maybe compressed, or
 * an OVA) into a qcow2 or raw image in the pool, refusing what is unsafe before reading it.
 */
export interface ImageConverter {
  importImage(request: ImageImportRequest): Promise<ImageImportResult>;
}
