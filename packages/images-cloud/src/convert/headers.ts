import { foreignFileReference, QuantixError, vmdkLayoutReference } from '@quantix/core';
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

function checkVmdk(path: string, createType: string | null, parent: string | null): void {
  const found = vmdkLayoutReference(createType, parent);
  if (found) throw unsafe(path, found.message, { reason: found.reason, ...found.details });
}

/**
 * The second line, after qemu-img info: what it reports must show a file standing alone (no
 * backing file, no data file, a VMDK whose one extent is the file itself).
 */
export function assertInfoSelfContained(info: Record<string, unknown>, path: string): void {
  const backing = info['backing-filename'] ?? info['full-backing-filename'];
  if (typeof backing === 'string' && backing !== '') {
    throw unsafe(path, `names a backing file (${backing}); an imported image must stand alone`, {
      reason: 'backing-file',
      backingFile: backing,
    });
  }
  const specific = (info['format-specific'] as { type?: string; data?: Record<string, unknown> } | undefined) ?? {};
  const data = specific.data ?? {};
  if (typeof data['data-file'] === 'string') {
    throw unsafe(path, `keeps its data in an external file (${data['data-file']})`, {
      reason: 'data-file',
      dataFile: data['data-file'],
    });
  }
  if (specific.type === 'vmdk') {
    const createType = typeof data['create-type'] === 'string' ? data['create-type'] : null;
    checkVmdk(path, createType, null);
    const extents = Array.isArray(data.extents) ? (data.extents as { filename?: unknown }[]) : [];
    const foreign = extents.find((extent) => extent.filename !== path);
    if (extents.length !== 1 || foreign) {
      throw unsafe(path, 'is a VMDK whose extents are other files', {
        reason: 'vmdk-extents',
        extents: extents.map((extent) => extent.filename),
      });
    }
  }
}
