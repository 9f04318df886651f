import { QuantixError } from '@quantix/core';
import { ImagesCloudErrorCode } from '../errors.js';

/** VMDK layouts that are one self-contained file; every other createType names other files. */
export const SELF_CONTAINED_VMDK = ['monolithicSparse', 'streamOptimized'] as const;

/** How much of a file the header checks read: enough for a qcow2 header and a VMDK's embedded descriptor. */
export const HEADER_BYTES = 64 * 1024;

function unsafe(path: string, message: string, details: Record<string, unknown>): QuantixError {
  return new QuantixError(ImagesCloudErrorCode.IMAGE_UNSAFE, `${path}: ${message}`, {
    details: { path, ...details, retryable: false },
  });
}

/** The createType and the parent hint of a VMDK descriptor's text. */
function readVmdkDescriptor(text: string): { createType: string | null; parent: string | null } {
  const createType = /^\s*createType\s*=\s*"([^"]*)"/m.exec(text)?.[1] ?? null;
  const parent = /^\s*parentFileNameHint\s*=\s*"([^"]*)"/m.exec(text)?.[1] ?? null;
  return { createType, parent };
}

/**
 * Refuses, from a file's first HEADER_BYTES alone and before qemu-img opens it, an image that
 * would make qemu read other files: `qemu-img info` of a VMDK descriptor opens the extents it
 * names (a descriptor naming /etc/passwd is read), and a qcow2 with an external data file opens
 * that file. Checked: a qcow2 naming a backing file or with the external-data-file feature bit;
 * a VMDK text descriptor (every such layout names other files); a sparse VMDK whose embedded
 * descriptor is not monolithicSparse/streamOptimized or names a parent. IMAGE_UNSAFE.
 */
export function assertSelfContained(head: Buffer, path: string): void {
  if (head.length >= 8 && head.readUInt32BE(0) === 0x514649fb) {
    // qcow2: backing_file_offset at 8; incompatible_features at 72 (version 3), bit 2 = data file.
    const version = head.readUInt32BE(4);
    if (head.length >= 16 && head.readBigUInt64BE(8) !== 0n) {
      throw unsafe(path, 'is a qcow2 that names a backing file; an imported image must stand alone', {
        reason: 'backing-file',
      });
    }
    if (version >= 3 && head.length >= 80 && (head.readBigUInt64BE(72) & 4n) !== 0n) {
      throw unsafe(path, 'is a qcow2 whose data lives in an external data file; an imported image must stand alone', {
        reason: 'data-file',
      });
    }
    return;
  }
  if (head.length >= 44 && head.toString('latin1', 0, 4) === 'KDMV') {
    // Sparse VMDK (little-endian): descriptorOffset at 28, descriptorSize at 36, in sectors.
    const offset = Number(head.readBigUInt64LE(28)) * 512;
    const size = Number(head.readBigUInt64LE(36)) * 512;
    if (offset === 0 || size === 0) return; // no embedded descriptor: the file is its own one extent
    if (offset + size > head.length) {
      throw unsafe(path, 'is a sparse VMDK whose embedded descriptor lies outside its header', {
        reason: 'vmdk-descriptor',
      });
    }
    const { createType, parent } = readVmdkDescriptor(head.toString('latin1', offset, offset + size));
    checkVmdk(path, createType, parent);
    return;
  }
  const text = head.toString('latin1', 0, Math.min(head.length, 4096));
  if (/^#\s*Disk DescriptorFile/m.test(text) || /^\s*createType\s*=/m.test(text)) {
    const { createType } = readVmdkDescriptor(text);
    throw unsafe(path, `is a VMDK descriptor (${createType ?? 'unknown layout'}) that names other files`, {
      reason: 'vmdk-descriptor',
      createType,
    });
  }
}

function checkVmdk(path: string, createType: string | null, parent: string | null): void {
  if (parent !== null && parent !== '') {
    throw unsafe(path, `is a VMDK that names a parent disk (${parent})`, { reason: 'backing-file', parent });
  }
  if (createType !== null && !(SELF_CONTAINED_VMDK as readonly string[]).includes(createType)) {
    throw unsafe(path, `is a VMDK of layout ${createType}, whose extents are other files`, {
      reason: 'vmdk-extents',
      createType,
    });
  }
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
