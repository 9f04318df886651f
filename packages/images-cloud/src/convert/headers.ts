import { foreignFileReference, QuantixError, qemuImgInfoForeignFile } from '@quantix/core';
import { ImagesCloudErrorCode } from '../errors.js';

function unsafe(path: string, message: string, details: Record<string, unknown>): QuantixError {
  return new QuantixError(ImagesCloudErrorCode.IMAGE_UNSAFE, `${path}: ${message}`, {
    details: { path, ...details, retryable: false },
  });
}

/**
 * Refuses, from a file's first IMAGE_HEADER_BYTES alone and before qemu-img opens it, an image
 * that names other files (core's foreignFileReference: a backing file, an external data file,
 * VMDK extents or a descriptor naming other files). IMAGE_UNSAFE.
 */
export function assertSelfContained(head: Buffer, path: string): void {
  const found = foreignFileReference(head);
  if (found) {
    throw unsafe(path, `${found.message}; an imported image must stand alone`, {
      reason: found.reason,
      ...found.details,
    });
  }
}

/**
 * The second line, after qemu-img info: what it reports must show a file standing alone (core's
 * qemuImgInfoForeignFile: no backing file, no data file, a VMDK whose one extent is the file itself).
 */
export function assertInfoSelfContained(info: Record<string, unknown>, path: string): void {
  const found = qemuImgInfoForeignFile(info, path);
  if (found) {
    throw unsafe(path, `${found.message}; an imported image must stand alone`, {
      reason: found.reason,
      ...found.details,
    });
  }
}
