import { createWriteStream } from 'node:fs';
import { mkdir, open, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { type OvfFacts, QuantixError } from '@quantix/core';
import { XMLParser } from 'fast-xml-parser';
import { ImagesCloudErrorCode } from '../errors.js';

function ovaInvalid(message: string, details: Record<string, unknown> = {}): QuantixError {
  return new QuantixError(ImagesCloudErrorCode.OVA_INVALID, message, { details: { ...details, retryable: false } });
}

export interface TarEntry {
  name: string;
  sizeBytes: number;
  /** Offset of the entry's data in the archive. */
  offset: number;
}

const BLOCK = 512;

function field(block: Buffer, start: number, length: number): string {
  const raw = block.subarray(start, start + length);
  const end = raw.indexOf(0);
  return raw.toString('utf8', 0, end === -1 ? length : end);
}

function octal(block: Buffer, start: number, length: number): number {
  const text = field(block, start, length).trim();
  if (!/^[0-7]*$/.test(text)) throw ovaInvalid(`The archive has a damaged header (number field "${text}")`);
  return text === '' ? 0 : Number.parseInt(text, 8);
}

/** A tar member name an OVA may hold: a plain file name, or one under `./`. Anything else is refused. */
export function safeEntryName(name: string): string {
  const bare = name.replace(/^(\.\/)+/, '');
  if (bare === '' || name.startsWith('/') || bare.split('/').some((part) => part === '..' || part === '')) {
    throw ovaInvalid(`The archive holds an entry with an unsafe path (${JSON.stringify(name)})`, { entry: name });
  }
  if (bare.includes('/')) {
    throw ovaInvalid(`The archive holds an entry in a directory (${JSON.stringify(name)}); an OVA holds plain files`, {
      entry: name,
    });
  }
  return bare;
}

/**
 * Lists a tar archive's members, refusing anything that is not a plain file with a safe name:
 * links, devices, FIFOs, directories, absolute paths and `..` (OVA_INVALID). Reads headers
 * only (each checksum verified); the data is read by offset later. ustar and GNU headers.
 */
export async function listTar(path: string): Promise<TarEntry[]> {
  const handle = await open(path, 'r');
  try {
    const { size } = await handle.stat();
    const entries: TarEntry[] = [];
    const header = Buffer.alloc(BLOCK);
    let offset = 0;
    while (offset + BLOCK <= size) {
      await handle.read(header, 0, BLOCK, offset);
      if (header.every((byte) => byte === 0)) break; // end of archive
      const stored = octal(header, 148, 8);
      let sum = 0;
      for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : (header[i] as number);
      if (sum !== stored) throw ovaInvalid(`${path} is not a tar archive (header checksum at byte ${offset})`);
      const type = String.fromCharCode(header[156] as number);
      const prefix = header.toString('latin1', 257, 262) === 'ustar' ? field(header, 345, 155) : '';
      const rawName = prefix ? `${prefix}/${field(header, 0, 100)}` : field(header, 0, 100);
      const entrySize = octal(header, 124, 12);
      if (type !== '0' && type !== '\0') {
        const kinds: Record<string, string> = {
          '1': 'a hard link',
          '2': 'a symbolic link',
          '3': 'a character device',
          '4': 'a block device',
          '5': 'a directory',
          '6': 'a FIFO',
        };
        throw ovaInvalid(
          `The archive holds ${kinds[type] ?? `an entry of type ${JSON.stringify(type)}`} (${JSON.stringify(rawName)}); an OVA holds plain files`,
          { entry: rawName, type },
        );
      }
      const name = safeEntryName(rawName);
      const dataOffset = offset + BLOCK;
      if (dataOffset + entrySize > size) throw ovaInvalid(`${path} is truncated (entry ${name})`);
      if (entries.some((entry) => entry.name === name)) throw ovaInvalid(`The archive holds ${name} twice`);
      entries.push({ name, sizeBytes: entrySize, offset: dataOffset });
      offset = dataOffset + Math.ceil(entrySize / BLOCK) * BLOCK;
    }
    return entries;
  } finally {
    await handle.close();
  }
}

/** Copies one member's bytes out of the archive into `destination`. */
export async function extractTarEntry(archive: string, entry: TarEntry, destination: string): Promise<void> {
  const handle = await open(archive, 'r');
  try {
    await new Promise<void>((resolve, reject) => {
      const input = handle.createReadStream({
        start: entry.offset,
        end: entry.offset + entry.sizeBytes - 1,
        autoClose: false,
      });
      const output = createWriteStream(destination, { flags: 'wx' });
      input.once('error', reject);
      output.once('error', reject);
      output.once('finish', resolve);
      if (entry.sizeBytes === 0) output.end();
      else input.pipe(output);
    });
  } finally {
    await handle.close();
  }
}

type Node = Record<string, unknown>;

const ovfParser = new XMLParser({
  ignoreAttributes: false,
  attributeNamePrefix: '@',
  removeNSPrefix: true,
  parseTagValue: false,
  parseAttributeValue: false,
  processEntities: false,
  isArray: (name) => ['File', 'Disk', 'Item', 'VirtualSystem', 'Config', 'Property'].includes(name),
});

function asArray(value: unknown): Node[] {
  return Array.isArray(value) ? (value as Node[]) : value && typeof value === 'object' ? [value as Node] : [];
}

function text(value: unknown): string | null {
  if (typeof value === 'string') return value.trim();
  if (value && typeof value === 'object' && typeof (value as Node)['#text'] === 'string') {
    return ((value as Node)['#text'] as string).trim();
  }
  return null;
}

/** `byte * 2^20` → 1048576 (the OVF allocation units of memory and disk capacity). */
export function allocationUnitBytes(units: string | null): number | null {
  if (!units) return 1;
  const compact = units.replace(/\s+/g, '').toLowerCase();
  const named: Record<string, number> = {
    byte: 1,
    bytes: 1,
    kilobytes: 1024,
    kb: 1024,
    megabytes: 1024 ** 2,
    mb: 1024 ** 2,
    gigabytes: 1024 ** 3,
    gb: 1024 ** 3,
  };
  if (named[compact] !== undefined) return named[compact];
  const power = /^byte\*(\d+)\^(\d+)$/.exec(compact);
  if (power) return Number(power[1]) ** Number(power[2]);
  return null;
}

/** Reads an OVF descriptor (XML). OVA_INVALID when it is not one or names no disks. */
export function parseOvf(xml: string): OvfFacts {
  let document: Node;
  try {
    document = ovfParser.parse(xml, true) as Node;
  } catch (error) {
    throw ovaInvalid(`The OVF descriptor is not well-formed XML: ${(error as Error).message}`);
  }
  const envelope = document.Envelope as Node | undefined;
  if (!envelope) throw ovaInvalid('The OVF descriptor has no Envelope');
  const files = new Map<string, string>();
  for (const file of asArray((envelope.References as Node | undefined)?.File)) {
    const id = file['@id'];
    const href = file['@href'];
    if (typeof id === 'string' && typeof href === 'string') files.set(id, href);
  }
  const disks: OvfFacts['disks'] = [];
  for (const disk of asArray((envelope.DiskSection as Node | undefined)?.Disk)) {
    const diskId = String(disk['@diskId'] ?? '');
    const fileRef = disk['@fileRef'];
    const fileName = typeof fileRef === 'string' ? files.get(fileRef) : undefined;
    if (!fileName) continue; // a blank disk to create: nothing to import
    const capacity = Number(disk['@capacity']);
    const unit = allocationUnitBytes(
      typeof disk['@capacityAllocationUnits'] === 'string' ? disk['@capacityAllocationUnits'] : null,
    );
    disks.push({
      diskId,
      fileName: safeEntryName(fileName),
      capacityBytes: Number.isFinite(capacity) && unit !== null ? capacity * unit : null,
    });
  }
  if (disks.length === 0) throw ovaInvalid('The OVF descriptor names no disk files');

  const system =
    asArray(envelope.VirtualSystem)[0] ??
    asArray((envelope.VirtualSystemCollection as Node | undefined)?.VirtualSystem)[0] ??
    {};
  const hardware = asArray(system.VirtualHardwareSection)[0] ?? {};
  let cpuCount: number | null = null;
  let memoryMiB: number | null = null;
  for (const item of asArray(hardware.Item)) {
    const type = text(item.ResourceType);
    const quantity = Number(text(item.VirtualQuantity));
    if (!Number.isFinite(quantity) || quantity <= 0) continue;
    if (type === '3') cpuCount = Math.floor(quantity);
    if (type === '4') {
      const unit = allocationUnitBytes(text(item.AllocationUnits) ?? 'byte * 2^20');
      if (unit !== null) memoryMiB = Math.floor((quantity * unit) / 1024 ** 2);
    }
  }
  // VMware writes <vmw:Config ovf:key="firmware" ovf:value="efi"/>; VirtualBox a <Platform> firmware type.
  let firmware: OvfFacts['firmware'] = null;
  for (const config of asArray(hardware.Config)) {
    if (config['@key'] === 'firmware') firmware = String(config['@value']).toLowerCase() === 'efi' ? 'uefi' : 'bios';
  }
  if (firmware === null && /<(?:\w+:)?Firmware\b[^>]*\btype="EFI/i.test(xml)) firmware = 'uefi';
  const name = text(system.Name) ?? (typeof system['@id'] === 'string' ? system['@id'] : null);
  return { name, cpuCount, memoryMiB, firmware, disks };
}

/**
 * Opens an OVA: lists it (refusing unsafe members), reads its one .ovf, and extracts the disks
 * the OVF names into `workDir` (created; the caller removes it). Nothing else is extracted.
 */
export async function unpackOva(options: {
  path: string;
  workDir: string;
  maxOvfBytes?: number;
}): Promise<{ facts: OvfFacts; disks: { fileName: string; path: string }[] }> {
  const entries = await listTar(options.path);
  const descriptors = entries.filter((entry) => entry.name.toLowerCase().endsWith('.ovf'));
  if (descriptors.length !== 1) {
    throw ovaInvalid(`An OVA holds exactly one .ovf descriptor; this one holds ${descriptors.length}`);
  }
  const descriptor = descriptors[0] as TarEntry;
  const maxOvfBytes = options.maxOvfBytes ?? 4 * 1024 * 1024;
  if (descriptor.sizeBytes > maxOvfBytes) throw ovaInvalid(`The OVF descriptor is larger than ${maxOvfBytes} bytes`);
  const handle = await open(options.path, 'r');
  const xml = Buffer.alloc(descriptor.sizeBytes);
  try {
    await handle.read(xml, 0, descriptor.sizeBytes, descriptor.offset);
  } finally {
    await handle.close();
  }
  const facts = parseOvf(xml.toString('utf8'));
  await mkdir(options.workDir, { recursive: true });
  const disks: { fileName: string; path: string }[] = [];
  try {
    for (const disk of facts.disks) {
      const entry = entries.find((candidate) => candidate.name === disk.fileName);
      if (!entry) throw ovaInvalid(`The OVF names ${disk.fileName}, which the archive does not hold`);
      const path = join(options.workDir, entry.name);
      await extractTarEntry(options.path, entry, path);
      disks.push({ fileName: entry.name, path });
    }
  } catch (error) {
    await rm(options.workDir, { recursive: true, force: true });
    throw error;
  }
  return { facts, disks };
}
