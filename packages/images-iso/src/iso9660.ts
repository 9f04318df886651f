import { constants } from 'node:fs';
import { open } from 'node:fs/promises';
import { ErrorCode, QuantixError, type QuantixErrorCode } from '@quantix/core';
import { ImagesIsoErrorCode } from './errors.js';

/**
 * Reads what an ISO image says about itself from its volume descriptors (ECMA-119 / ISO 9660),
 * its El Torito boot catalog, its Joliet supplementary descriptor and, for bridge images such as
 * Windows media, the UDF volume recognition sequence and volume descriptors (ECMA-167 / OSTA UDF).
 *
 * Only the sectors that hold those structures are read — typically under 20 KiB of a multi-GiB
 * file — and every loop over on-disk structures is bounded, so a hostile or damaged file gives a
 * QuantixError with one of the ISO_* codes instead of a crash, a huge read or a hang.
 */

export const ISO_SECTOR_SIZE = 2048;
/** Sectors 0-15 are the system area; the volume descriptor set starts at sector 16. */
export const VOLUME_DESCRIPTOR_START = 16;
/**
 * Volume and extended-area descriptors read before giving up. Real media carry fewer than ten
 * (primary, boot record, one or two supplementary, terminator, BEA01, NSR0x, TEA01).
 */
export const DEFAULT_MAX_DESCRIPTORS = 64;
/** UDF's anchor volume descriptor pointer sits at this sector on 2048-byte media. */
const UDF_ANCHOR_SECTOR = 256;
/** Sectors of the UDF main volume descriptor sequence read at most (ECMA-167 asks for at least 16). */
const UDF_MAX_VDS_SECTORS = 32;
/** Sectors read at once while walking the descriptor sets. */
const READ_BATCH_SECTORS = 4;

export type BootPlatform = 'bios' | 'uefi' | 'powerpc' | 'mac' | 'unknown';
export type BootMedia = 'no-emulation' | 'floppy-1.2M' | 'floppy-1.44M' | 'floppy-2.88M' | 'hard-disk' | 'unknown';

export interface BootEntry {
  platform: BootPlatform;
  /** The entry is marked bootable (0x88), not merely listed. */
  bootable: boolean;
  media: BootMedia;
  /** First sector of the boot image. */
  loadSector: number;
  /** Emulated 512-byte sectors loaded by the firmware (0 for EFI images: the whole image). */
  sectorCount: number;
}

export interface ElToritoInfo {
  catalogSector: number;
  entries: BootEntry[];
  /** Platforms with at least one bootable entry, in catalog order. */
  platforms: BootPlatform[];
}

export interface JolietInfo {
  /** UCS-2 level: 1, 2 or 3 (the escape sequence %/@, %/C or %/E). */
  level: 1 | 2 | 3;
  volumeId: string;
}

export interface UdfInfo {
  /** NSR02 is UDF 1.02-1.50, NSR03 is UDF 2.00 and later. */
  revision: 'NSR02' | 'NSR03';
  /** Whether the anchor volume descriptor pointer was found at sector 256. */
  anchor: boolean;
  /** UDF Primary Volume Descriptor's volume identifier (what blkid reports as the label). */
  volumeId: string | null;
  logicalVolumeId: string | null;
}

export interface IsoInfo {
  /** Primary volume descriptor fields, with trailing padding removed. */
  volumeId: string;
  systemId: string;
  volumeSetId: string;
  publisherId: string;
  dataPreparerId: string;
  applicationId: string;
  /** Volume size in logical blocks, as the primary descriptor declares it. */
  volumeSpaceSize: number;
  logicalBlockSize: number;
  /** volumeSpaceSize × logicalBlockSize: how long the file must at least be. */
  volumeSizeBytes: number;
  createdAt: Date | null;
  modifiedAt: Date | null;
  joliet: JolietInfo | null;
  /** The El Torito boot catalog, when the image has a boot record. */
  boot: ElToritoInfo | null;
  /** At least one bootable El Torito entry. */
  bootable: boolean;
  /** UDF bridge structures, when present. */
  udf: UdfInfo | null;
  fileSizeBytes: number;
  /** Bytes this call read from the file. */
  bytesRead: number;
  /** Oddities that did not stop the read (a bad boot catalog checksum, a missing UDF anchor). */
  warnings: string[];
}

export interface ReadIsoInfoOptions {
  /** Absolute path of the image. */
  path: string;
  /** Descriptors read before the image is declared malformed. Default DEFAULT_MAX_DESCRIPTORS. */
  maxDescriptors?: number;
  signal?: AbortSignal;
  /**
   * Open a symbolic link's target. Default true. A pool scan passes false: its listing never
   * takes a link, and one put in a listed file's place before it is read (a link out of the
   * pool) is then refused, ISO_NOT_ISO9660, instead of read.
   */
  followLinks?: boolean;
}

type FileHandle = Awaited<ReturnType<typeof open>>;

function isoError(
  code: QuantixErrorCode,
  path: string,
  message: string,
  details: Record<string, unknown> = {},
  cause?: unknown,
) {
  return new QuantixError(code, `${path}: ${message}`, { details: { path, ...details }, cause });
}

/** Reads exact byte ranges and counts them; a short read past the end returns what there is. */
class SectorReader {
  bytesRead = 0;
  constructor(
    private readonly handle: FileHandle,
    readonly path: string,
    readonly size: number,
  ) {}

  async read(offset: number, length: number): Promise<Buffer> {
    const available = Math.max(0, Math.min(length, this.size - offset));
    const buffer = Buffer.alloc(available);
    let done = 0;
    while (done < available) {
      let bytes: number;
      try {
        ({ bytesRead: bytes } = await this.handle.read(buffer, done, available - done, offset + done));
      } catch (error) {
        throw unreadable(this.path, error);
      }
      if (bytes === 0) break; // the file shrank under us
      done += bytes;
    }
    this.bytesRead += done;
    return done === available ? buffer : buffer.subarray(0, done);
  }

  sectors(first: number, count: number): Promise<Buffer> {
    return this.read(first * ISO_SECTOR_SIZE, count * ISO_SECTOR_SIZE);
  }
}

function unreadable(path: string, error: unknown): QuantixError {
  const errno = (error as NodeJS.ErrnoException).code ?? 'EIO';
  if (errno === 'ENOENT') {
    return isoError(ErrorCode.NOT_FOUND, path, 'does not exist', { errno }, error);
  }
  return isoError(
    ImagesIsoErrorCode.ISO_UNREADABLE,
    path,
    `cannot be read: ${(error as Error).message}`,
    { errno },
    error,
  );
}

const ascii = (buffer: Buffer, start: number, length: number): string =>
  buffer
    .toString('latin1', start, start + length)
    .replace(/[\0 ]+$/, '')
    .replace(/\0/g, '');

/** Joliet strings are UCS-2 big-endian. */
function ucs2be(buffer: Buffer, start: number, length: number): string {
  const bytes = Buffer.from(buffer.subarray(start, start + (length & ~1)));
  bytes.swap16();
  return bytes
    .toString('utf16le')
    .replace(/[\0 ]+$/, '')
    .replace(/\0/g, '');
}

/** ECMA-119 8.4.26.1: "YYYYMMDDhhmmsscc" in ASCII digits, then the offset from GMT in 15-minute units. */
function decDateTime(buffer: Buffer, start: number): Date | null {
  const text = buffer.toString('latin1', start, start + 16);
  if (!/^\d{16}$/.test(text) || /^0+$/.test(text)) return null;
  const n = (from: number, to: number) => Number(text.slice(from, to));
  const offsetQuarterHours = buffer.readInt8(start + 16);
  const utc = Date.UTC(n(0, 4), n(4, 6) - 1, n(6, 8), n(8, 10), n(10, 12), n(12, 14), n(14, 16) * 10);
  const date = new Date(utc - offsetQuarterHours * 15 * 60_000);
  return Number.isNaN(date.getTime()) || n(0, 4) === 0 ? null : date;
}

const JOLIET_ESCAPES: Record<string, 1 | 2 | 3> = { '%/@': 1, '%/C': 2, '%/E': 3 };
const VRS_IDS = new Set(['BEA01', 'NSR02', 'NSR03', 'TEA01', 'BOOT2', 'CD001', 'CDW02']);

/**
 * A file too short to hold sector 16. It is a truncated ISO when what is there looks like the start
 * of one (a partial `CD001`, or a system area that is empty or holds an isohybrid MBR); any other
 * content (text, a qcow2 header) means it is not an ISO at all.
 */
function classifyShortFile(head: Buffer, path: string, size: number): QuantixError {
  const needed = (VOLUME_DESCRIPTOR_START + 1) * ISO_SECTOR_SIZE;
  const truncated = isoError(
    ImagesIsoErrorCode.ISO_TRUNCATED,
    path,
    `is ${size} bytes long, too short for an ISO's volume descriptors (at least ${needed} bytes)`,
    { sizeBytes: size, expectedAtLeastBytes: needed },
  );
  const pvdStart = VOLUME_DESCRIPTOR_START * ISO_SECTOR_SIZE;
  if (head.length > pvdStart + 1) {
    const seen = head.toString('latin1', pvdStart + 1, Math.min(head.length, pvdStart + 6));
    return 'CD001'.startsWith(seen) ? truncated : notIso(path, 'has no ISO 9660 volume descriptor at sector 16');
  }
  const mbr = head.length >= 512 && head[510] === 0x55 && head[511] === 0xaa;
  if (mbr || head.every((byte) => byte === 0)) return truncated;
  return notIso(path, `is ${size} bytes of something other than an ISO image`);
}

function notIso(path: string, why: string): QuantixError {
  return isoError(ImagesIsoErrorCode.ISO_NOT_ISO9660, path, `is not an ISO 9660 image: ${why}`);
}

/**
 * Reads the volume descriptors of the ISO image at `path`.
 *
 * Errors (QuantixError codes): ISO_EMPTY for a zero-byte file; ISO_TRUNCATED when the file ends
 * before its descriptors or before the volume size they declare; ISO_NOT_ISO9660 when there is no
 * `CD001` at sector 16 (or the path is not a regular file); ISO_MALFORMED when the descriptors are
 * inconsistent; NOT_FOUND and ISO_UNREADABLE for files that cannot be opened or read.
 */
export async function readIsoInfo(options: ReadIsoInfoOptions): Promise<IsoInfo> {
  const { path, signal } = options;
  const maxDescriptors = options.maxDescriptors ?? DEFAULT_MAX_DESCRIPTORS;
  signal?.throwIfAborted();
  let handle: FileHandle;
  try {
    // O_NONBLOCK: opening a FIFO named .iso must not wait for a writer (it is refused below).
    const noFollow = options.followLinks === false ? constants.O_NOFOLLOW : 0;
    handle = await open(path, constants.O_RDONLY | constants.O_NONBLOCK | noFollow);
  } catch (error) {
    if (options.followLinks === false && (error as NodeJS.ErrnoException).code === 'ELOOP') {
      throw notIso(path, 'it is a symbolic link, not followed');
    }
    throw unreadable(path, error);
  }
  try {
    let stats: Awaited<ReturnType<FileHandle['stat']>>;
    try {
      stats = await handle.stat();
    } catch (error) {
      throw unreadable(path, error);
    }
    if (!stats.isFile()) throw notIso(path, 'it is not a regular file');
    const size = stats.size;
    if (size === 0) throw isoError(ImagesIsoErrorCode.ISO_EMPTY, path, 'is empty (0 bytes)', { sizeBytes: 0 });
    const reader = new SectorReader(handle, path, size);
    if (size < (VOLUME_DESCRIPTOR_START + 1) * ISO_SECTOR_SIZE) {
      throw classifyShortFile(await reader.read(0, size), path, size);
    }
    return await readDescriptors(reader, maxDescriptors, signal);
  } finally {
    await handle.close().catch(() => undefined);
  }
}

interface DescriptorScan {
  primary: Buffer | null;
  joliet: JolietInfo | null;
  bootCatalogSector: number | null;
  udfRevision: UdfInfo['revision'] | null;
  terminated: boolean;
}

async function readDescriptors(reader: SectorReader, maxDescriptors: number, signal?: AbortSignal): Promise<IsoInfo> {
  const { path, size } = reader;
  const warnings: string[] = [];
  const scan: DescriptorScan = {
    primary: null,
    joliet: null,
    bootCatalogSector: null,
    udfRevision: null,
    terminated: false,
  };
  let inExtendedArea = false;
  let batch: Buffer = Buffer.alloc(0);
  let batchFirst = VOLUME_DESCRIPTOR_START;

  walk: for (let index = 0; ; index++) {
    const sector = VOLUME_DESCRIPTOR_START + index;
    if (index >= maxDescriptors) {
      if (!scan.terminated) {
        throw isoError(
          ImagesIsoErrorCode.ISO_MALFORMED,
          path,
          `has no volume descriptor set terminator within ${maxDescriptors} descriptors`,
          { maxDescriptors },
        );
      }
      warnings.push(`extended area not closed within ${maxDescriptors} descriptors`);
      break;
    }
    if (sector >= batchFirst + batch.length / ISO_SECTOR_SIZE) {
      signal?.throwIfAborted();
      batchFirst = sector;
      batch = await reader.sectors(sector, READ_BATCH_SECTORS);
    }
    const offset = (sector - batchFirst) * ISO_SECTOR_SIZE;
    if (offset + ISO_SECTOR_SIZE > batch.length) {
      // The file ends inside the descriptors. After the terminator that is only the end of the area.
      if (scan.terminated) break;
      throw isoError(
        ImagesIsoErrorCode.ISO_TRUNCATED,
        path,
        `ends inside its volume descriptor set (at sector ${sector})`,
        {
          sizeBytes: size,
          sector,
        },
      );
    }
    const descriptor = batch.subarray(offset, offset + ISO_SECTOR_SIZE);
    const type = descriptor[0] as number;
    const id = descriptor.toString('latin1', 1, 6);

    if (!scan.terminated) {
      if (id !== 'CD001') {
        if (index === 0) {
          throw notIso(
            path,
            VRS_IDS.has(id)
              ? `it starts with a ${id} descriptor (UDF-only media)`
              : 'no CD001 volume descriptor at sector 16',
          );
        }
        if (!scan.primary) {
          throw isoError(ImagesIsoErrorCode.ISO_MALFORMED, path, `volume descriptor at sector ${sector} is not CD001`, {
            sector,
          });
        }
        warnings.push(`volume descriptor set ends at sector ${sector} without a terminator`);
        break;
      }
      switch (type) {
        case 0:
          if (descriptor.toString('latin1', 7, 30) === 'EL TORITO SPECIFICATION') {
            scan.bootCatalogSector = descriptor.readUInt32LE(0x47);
          }
          break;
        case 1:
          scan.primary ??= Buffer.from(descriptor);
          break;
        case 2: {
          const level = JOLIET_ESCAPES[descriptor.toString('latin1', 88, 91)];
          if (level && !scan.joliet) scan.joliet = { level, volumeId: ucs2be(descriptor, 40, 32) };
          break;
        }
        case 255:
          scan.terminated = true;
          break;
        default:
          break; // volume partition descriptors and reserved types carry nothing we use
      }
      continue;
    }

    // After the terminator: the ECMA-167 volume recognition sequence, if the image has one.
    if (type !== 0 || !VRS_IDS.has(id)) break;
    switch (id) {
      case 'BEA01':
        inExtendedArea = true;
        break;
      case 'NSR02':
      case 'NSR03':
        if (inExtendedArea) scan.udfRevision ??= id;
        break;
      case 'TEA01':
        break walk;
      default:
        break;
    }
  }

  if (!scan.primary) {
    throw isoError(ImagesIsoErrorCode.ISO_MALFORMED, path, 'has no primary volume descriptor');
  }
  const pvd = scan.primary;
  const logicalBlockSize = pvd.readUInt16LE(128);
  if (logicalBlockSize !== 512 && logicalBlockSize !== 1024 && logicalBlockSize !== 2048) {
    throw isoError(
      ImagesIsoErrorCode.ISO_MALFORMED,
      path,
      `declares an impossible logical block size of ${logicalBlockSize}`,
      {
        logicalBlockSize,
      },
    );
  }
  const volumeSpaceSize = pvd.readUInt32LE(80);
  if (pvd.readUInt32BE(84) !== volumeSpaceSize) {
    warnings.push('volume space size differs between its little- and big-endian copies');
  }
  const volumeSizeBytes = volumeSpaceSize * logicalBlockSize;
  if (volumeSizeBytes > size) {
    throw isoError(
      ImagesIsoErrorCode.ISO_TRUNCATED,
      path,
      `is ${size} bytes long but its volume is ${volumeSizeBytes} bytes: the file was cut short`,
      { sizeBytes: size, volumeSizeBytes },
    );
  }

  signal?.throwIfAborted();
  const boot = scan.bootCatalogSector === null ? null : await readBootCatalog(reader, scan.bootCatalogSector, warnings);
  const udf = scan.udfRevision === null ? null : await readUdf(reader, scan.udfRevision, warnings);

  return {
    volumeId: ascii(pvd, 40, 32),
    systemId: ascii(pvd, 8, 32),
    volumeSetId: ascii(pvd, 190, 128),
    publisherId: ascii(pvd, 318, 128),
    dataPreparerId: ascii(pvd, 446, 128),
    applicationId: ascii(pvd, 574, 128),
    volumeSpaceSize,
    logicalBlockSize,
    volumeSizeBytes,
    createdAt: decDateTime(pvd, 813),
    modifiedAt: decDateTime(pvd, 830),
    joliet: scan.joliet,
    boot,
    bootable: boot !== null && boot.platforms.length > 0,
    udf,
    fileSizeBytes: size,
    bytesRead: reader.bytesRead,
    warnings,
  };
}

const PLATFORMS: Record<number, BootPlatform> = { 0: 'bios', 1: 'powerpc', 2: 'mac', 239: 'uefi' };
const MEDIA: BootMedia[] = ['no-emulation', 'floppy-1.2M', 'floppy-1.44M', 'floppy-2.88M', 'hard-disk'];

function bootEntry(entry: Buffer, platform: BootPlatform): BootEntry {
  return {
    platform,
    bootable: entry[0] === 0x88,
    media: MEDIA[(entry[1] as number) & 0x0f] ?? 'unknown',
    sectorCount: entry.readUInt16LE(6),
    loadSector: entry.readUInt32LE(8),
  };
}

/**
 * El Torito 1.0 boot catalog: a validation entry, the initial/default entry, then sections
 * (0x90 more follow, 0x91 last) each naming a platform and its entries. Read from one sector
 * only: 64 entries are more than any real medium uses.
 */
async function readBootCatalog(reader: SectorReader, sector: number, warnings: string[]): Promise<ElToritoInfo> {
  const catalog = await reader.sectors(sector, 1);
  const info: ElToritoInfo = { catalogSector: sector, entries: [], platforms: [] };
  if (catalog.length < ISO_SECTOR_SIZE) {
    warnings.push(`boot catalog sector ${sector} lies beyond the end of the file`);
    return info;
  }
  let sum = 0;
  for (let i = 0; i < 32; i += 2) sum = (sum + catalog.readUInt16LE(i)) & 0xffff;
  if (catalog[0] !== 0x01 || catalog[30] !== 0x55 || catalog[31] !== 0xaa || sum !== 0) {
    warnings.push('boot catalog validation entry is invalid');
    return info;
  }
  info.entries.push(bootEntry(catalog.subarray(32, 64), PLATFORMS[catalog[1] as number] ?? 'unknown'));
  let offset = 64;
  while (offset + 32 <= catalog.length) {
    const header = catalog[offset];
    if (header !== 0x90 && header !== 0x91) break;
    const platform = PLATFORMS[catalog[offset + 1] as number] ?? 'unknown';
    let count = catalog.readUInt16LE(offset + 2);
    offset += 32;
    while (count > 0 && offset + 32 <= catalog.length) {
      // 0x44 marks a selection-criteria extension of the previous entry, not an entry.
      if (catalog[offset] !== 0x44) {
        info.entries.push(bootEntry(catalog.subarray(offset, offset + 32), platform));
        count -= 1;
      }
      offset += 32;
    }
    if (header === 0x91) break;
  }
  for (const entry of info.entries) {
    if (entry.bootable && !info.platforms.includes(entry.platform)) info.platforms.push(entry.platform);
  }
  return info;
}

/** OSTA CS0 d-string: compression id 8 (one byte per char) or 16 (UCS-2 BE), length in the last byte. */
function dstring(buffer: Buffer, start: number, fieldLength: number): string {
  const length = buffer[start + fieldLength - 1] as number;
  if (length === 0 || length > fieldLength - 1) return '';
  const compression = buffer[start];
  if (compression === 8) return ascii(buffer, start + 1, length - 1);
  if (compression === 16) return ucs2be(buffer, start + 1, length - 1);
  return '';
}

function validTag(sector: Buffer, expectedId: number, expectedLocation: number | null): boolean {
  if (sector.length < 16 || sector.readUInt16LE(0) !== expectedId) return false;
  let sum = 0;
  for (let i = 0; i < 16; i++) if (i !== 4) sum = (sum + (sector[i] as number)) & 0xff;
  if (sum !== sector[4]) return false;
  return expectedLocation === null || sector.readUInt32LE(12) === expectedLocation;
}

/** UDF identifiers from the main volume descriptor sequence the anchor at sector 256 points to. */
async function readUdf(reader: SectorReader, revision: UdfInfo['revision'], warnings: string[]): Promise<UdfInfo> {
  const info: UdfInfo = { revision, anchor: false, volumeId: null, logicalVolumeId: null };
  const anchor = await reader.sectors(UDF_ANCHOR_SECTOR, 1);
  if (!validTag(anchor, 2, UDF_ANCHOR_SECTOR)) {
    warnings.push(`${revision} present but no UDF anchor at sector ${UDF_ANCHOR_SECTOR}`);
    return info;
  }
  info.anchor = true;
  const lengthBytes = anchor.readUInt32LE(16);
  const location = anchor.readUInt32LE(20);
  const count = Math.min(UDF_MAX_VDS_SECTORS, Math.ceil(lengthBytes / ISO_SECTOR_SIZE));
  // Read a few sectors at a time: the sequence is reserved at 16 sectors but uses about six.
  for (let first = 0; first < count; first += READ_BATCH_SECTORS) {
    const batch = await reader.sectors(location + first, Math.min(READ_BATCH_SECTORS, count - first));
    for (let i = 0; (i + 1) * ISO_SECTOR_SIZE <= batch.length; i++) {
      const descriptor = batch.subarray(i * ISO_SECTOR_SIZE, (i + 1) * ISO_SECTOR_SIZE);
      const tagId = descriptor.readUInt16LE(0);
      if (!validTag(descriptor, tagId, location + first + i) || tagId === 8) return info; // 8: terminating descriptor
      if (tagId === 1) info.volumeId ??= dstring(descriptor, 24, 32) || null;
      else if (tagId === 6) info.logicalVolumeId ??= dstring(descriptor, 84, 128) || null;
    }
    if (batch.length < READ_BATCH_SECTORS * ISO_SECTOR_SIZE) break;
  }
  return info;
}
