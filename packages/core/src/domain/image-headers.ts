/**
 * Whether a disk image file names other files, read from its header alone — before qemu-img
 * opens it. `qemu-img info` (and any open by QEMU) of a VMDK descriptor opens the extents it
 * names (one naming /etc/passwd or a device is opened), and a qcow2 with an external data file
 * opens that file; a qcow2's backing file is opened by whatever runs the image. The rule is one,
 * used wherever an image from outside is looked at: an import, a download's inspection, a VM's
 * base image. Each caller throws its own error from what is found.
 */

/** How much of a file the header check reads: enough for a qcow2 header and a VMDK's embedded descriptor. */
export const IMAGE_HEADER_BYTES = 64 * 1024;

/** VMDK layouts that are one self-contained file; every other createType names other files. */
export const SELF_CONTAINED_VMDK = ['monolithicSparse', 'streamOptimized'] as const;

/** Another file an image depends on, as its header says: why, in words, and the file when the header names it. */
export interface ForeignFileReference {
  reason: 'backing-file' | 'data-file' | 'vmdk-descriptor' | 'vmdk-extents';
  /** Completes "<path> …": `is a qcow2 that names a backing file (/etc/shadow)`. */
  message: string;
  details: Record<string, unknown>;
}

const QCOW2_MAGIC = 0x514649fb;
/** qcow2 header extension that names the external data file ("DATA"). */
const QCOW2_DATA_FILE_EXTENSION = 0x44415441;

/**
 * What a file's first IMAGE_HEADER_BYTES say it depends on: a qcow2 naming a backing file or
 * with the external-data-file feature bit; a VMDK text descriptor (every such layout names other
 * files); a sparse VMDK whose embedded descriptor is not monolithicSparse/streamOptimized, names
 * a parent, or lies outside the header. Null for a file that stands alone (raw bytes included).
 */
export function foreignFileReference(head: Buffer): ForeignFileReference | null {
  if (isQcow2Header(head) && head.length >= 8) return qcow2Reference(head);
  if (head.length >= 44 && isSparseVmdkHeader(head)) {
    // Sparse VMDK (little-endian): descriptorOffset at 28, descriptorSize at 36, in sectors.
    const offset = Number(head.readBigUInt64LE(28)) * 512;
    const size = Number(head.readBigUInt64LE(36)) * 512;
    if (offset === 0 || size === 0) return null; // no embedded descriptor: the file is its own one extent
    if (offset + size > head.length) {
      return {
        reason: 'vmdk-descriptor',
        message: 'is a sparse VMDK whose embedded descriptor lies outside its header',
        details: {},
      };
    }
    const { createType, parent } = readVmdkDescriptor(head.toString('latin1', offset, offset + size));
    return vmdkLayoutReference(createType, parent);
  }
  const text = head.toString('latin1', 0, Math.min(head.length, 4096));
  if (/^#\s*Disk DescriptorFile/m.test(text) || /^\s*createType\s*=/m.test(text)) {
    const { createType } = readVmdkDescriptor(text);
    return {
      reason: 'vmdk-descriptor',
      message: `is a VMDK descriptor (${createType ?? 'unknown layout'}) that names other files`,
      details: { createType },
    };
  }
  return null;
}

/** Whether a file's first bytes are a qcow2's magic ('QFI' 0xfb). */
export function isQcow2Header(head: Buffer): boolean {
  return head.length >= 4 && head.readUInt32BE(0) === QCOW2_MAGIC;
}

/** Whether a file's first bytes are a sparse VMDK's magic ('KDMV'). */
export function isSparseVmdkHeader(head: Buffer): boolean {
  return head.length >= 4 && head.toString('latin1', 0, 4) === 'KDMV';
}

/** A VMDK layout (createType) or parent hint that makes it depend on other files; null when it stands alone. */
function vmdkLayoutReference(createType: string | null, parent: string | null): ForeignFileReference | null {
  if (parent !== null && parent !== '') {
    return { reason: 'backing-file', message: `is a VMDK that names a parent disk (${parent})`, details: { parent } };
  }
  if (createType !== null && !(SELF_CONTAINED_VMDK as readonly string[]).includes(createType)) {
    return {
      reason: 'vmdk-extents',
      message: `is a VMDK of layout ${createType}, whose extents are other files`,
      details: { createType },
    };
  }
  return null;
}

/**
 * The second look, at what `qemu-img info --output=json` says of `path` (the file it was given),
 * for a file that passed the header check: a backing file, an external data file, a VMDK of a
 * layout that names other files or whose one extent is not the file itself. Null when it stands alone.
 */
export function qemuImgInfoForeignFile(info: Record<string, unknown>, path: string): ForeignFileReference | null {
  const backing = info['backing-filename'] ?? info['full-backing-filename'];
  if (typeof backing === 'string' && backing !== '') {
    return { reason: 'backing-file', message: `names a backing file (${backing})`, details: { file: backing } };
  }
  const specific = (info['format-specific'] as { type?: string; data?: Record<string, unknown> } | undefined) ?? {};
  const data = specific.data ?? {};
  const dataFile = data['data-file'];
  if (typeof dataFile === 'string' && dataFile !== '') {
    return {
      reason: 'data-file',
      message: `keeps its data in an external data file (${dataFile})`,
      details: { file: dataFile },
    };
  }
  if (specific.type !== 'vmdk') return null;
  const layout = vmdkLayoutReference(typeof data['create-type'] === 'string' ? data['create-type'] : null, null);
  if (layout) return layout;
  const extents = Array.isArray(data.extents) ? (data.extents as { filename?: unknown }[]) : [];
  if (extents.length === 1 && extents[0]?.filename === path) return null;
  return {
    reason: 'vmdk-extents',
    message: 'is a VMDK whose extents are other files',
    details: { extents: extents.map((extent) => extent.filename) },
  };
}

function qcow2Reference(head: Buffer): ForeignFileReference | null {
  // backing_file_offset (u64) at 8 and backing_file_size (u32) at 16; version 3 adds
  // incompatible_features (u64) at 72, bit 2 = external data file, and header_length (u32) at 100.
  const version = head.readUInt32BE(4);
  if (head.length >= 16 && head.readBigUInt64BE(8) !== 0n) {
    const file = head.length >= 20 ? textAt(head, Number(head.readBigUInt64BE(8)), head.readUInt32BE(16)) : null;
    return {
      reason: 'backing-file',
      message: `is a qcow2 that names a backing file${file === null ? '' : ` (${file})`}`,
      details: file === null ? {} : { file },
    };
  }
  if (version >= 3 && head.length >= 80 && (head.readBigUInt64BE(72) & 4n) !== 0n) {
    const file = head.length >= 104 ? qcow2DataFileName(head, head.readUInt32BE(100)) : null;
    return {
      reason: 'data-file',
      message: `is a qcow2 whose data lives in an external data file${file === null ? '' : ` (${file})`}`,
      details: file === null ? {} : { file },
    };
  }
  return null;
}

/** The data file's name from the header extensions (type, length, data padded to 8 bytes), when within `head`. */
function qcow2DataFileName(head: Buffer, headerLength: number): string | null {
  let at = headerLength;
  while (at + 8 <= head.length) {
    const type = head.readUInt32BE(at);
    const length = head.readUInt32BE(at + 4);
    if (type === 0) return null; // end of the extensions
    if (type === QCOW2_DATA_FILE_EXTENSION) return textAt(head, at + 8, length);
    at += 8 + Math.ceil(length / 8) * 8;
  }
  return null;
}

function textAt(head: Buffer, offset: number, length: number): string | null {
  if (length <= 0 || offset + length > head.length) return null;
  return head.toString('utf8', offset, offset + length);
}

/** The createType and the parent hint of a VMDK descriptor's text. */
function readVmdkDescriptor(text: string): { createType: string | null; parent: string | null } {
  const createType = /^\s*createType\s*=\s*"([^"]*)"/m.exec(text)?.[1] ?? null;
  const parent = /^\s*parentFileNameHint\s*=\s*"([^"]*)"/m.exec(text)?.[1] ?? null;
  return { createType, parent };
}
