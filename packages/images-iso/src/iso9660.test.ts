import { execFile } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, readFile, rm, symlink, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ErrorCode, isQuantixError } from '@quantix/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildIso, REAL_MEDIA, requireIsoTools } from './__fixtures__/isos.js';
import { ImagesIsoErrorCode } from './errors.js';
import { ISO_SECTOR_SIZE, readIsoInfo } from './iso9660.js';

const run = promisify(execFile);
let dir: string;
const paths: Record<string, string> = {};

beforeAll(async () => {
  requireIsoTools();
  dir = await mkdtemp(join(tmpdir(), 'quantix-iso9660-'));
  paths.ubuntu = await buildIso(join(dir, 'ubuntu.iso'), {
    ...REAL_MEDIA.ubuntuServer2404,
    publisher: 'Canonical',
    applicationId: 'Ubuntu Live',
  });
  paths.windows = await buildIso(join(dir, 'windows.iso'), REAL_MEDIA.windows11);
  paths.plain = await buildIso(join(dir, 'plain.iso'), { volumeId: 'DATA_DISC', boot: null });
  paths.efiOnly = await buildIso(join(dir, 'efi.iso'), { volumeId: 'EFI_ONLY', boot: 'uefi' });
  paths.biosOnly = await buildIso(join(dir, 'bios.iso'), { volumeId: 'BIOS_ONLY', boot: 'bios', tool: 'genisoimage' });
  paths.big = await buildIso(join(dir, 'big.iso'), { volumeId: 'BIG', padBytes: 64 * 1024 * 1024, boot: 'both' });
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function codeOf(path: string, options: { maxDescriptors?: number } = {}): Promise<string | undefined> {
  try {
    await readIsoInfo({ path, ...options });
    return undefined;
  } catch (error) {
    if (isQuantixError(error)) return error.code;
    throw error;
  }
}

describe('readIsoInfo on ISOs made by xorriso and genisoimage', () => {
  it('reads the primary volume descriptor as isoinfo and blkid report it', async () => {
    const info = await readIsoInfo({ path: paths.ubuntu as string });
    expect(info).toMatchObject({
      volumeId: 'Ubuntu-Server 24.04.1 LTS amd64',
      systemId: 'LINUX',
      publisherId: 'CANONICAL', // d-characters: mkisofs upper-cases them
      applicationId: 'UBUNTU LIVE',
      logicalBlockSize: 2048,
      createdAt: new Date('2024-08-27T12:00:00Z'),
      modifiedAt: new Date('2024-08-27T12:00:00Z'),
    });
    expect(info.dataPreparerId).toMatch(/^XORRISO/);
    expect(info.volumeSizeBytes).toBe(info.fileSizeBytes);
    const { stdout: label } = await run('blkid', ['-o', 'value', '-s', 'LABEL', paths.ubuntu as string]);
    expect(info.volumeId).toBe(label.trim());
    const { stdout: isoinfo } = await run('isoinfo', ['-d', '-i', paths.ubuntu as string]);
    expect(isoinfo).toContain(`Volume size is: ${info.volumeSpaceSize}`);
    expect(isoinfo).toContain(`Publisher id: ${info.publisherId}`);
  });

  it('finds the Joliet supplementary descriptor', async () => {
    const info = await readIsoInfo({ path: paths.ubuntu as string });
    // Joliet volume ids are 16 UCS-2 characters.
    expect(info.joliet).toEqual({ level: 3, volumeId: 'Ubuntu-Server 24' });
  });

  it('reads the El Torito boot catalog: BIOS and UEFI entries, bootable or not', async () => {
    const both = await readIsoInfo({ path: paths.ubuntu as string });
    expect(both.bootable).toBe(true);
    expect(both.boot?.platforms).toEqual(['bios', 'uefi']);
    expect(both.boot?.entries).toEqual([
      expect.objectContaining({ platform: 'bios', bootable: true, media: 'no-emulation', sectorCount: 4 }),
      expect.objectContaining({ platform: 'uefi', bootable: true, media: 'no-emulation' }),
    ]);
    const { stdout } = await run('isoinfo', ['-d', '-i', paths.ubuntu as string]);
    expect(stdout).toContain(`boot catalog is in sector ${both.boot?.catalogSector}`);

    expect((await readIsoInfo({ path: paths.efiOnly as string })).boot?.platforms).toEqual(['uefi']);
    expect((await readIsoInfo({ path: paths.biosOnly as string })).boot?.platforms).toEqual(['bios']);
    const plain = await readIsoInfo({ path: paths.plain as string });
    expect(plain.boot).toBeNull();
    expect(plain.bootable).toBe(false);
  });

  it('detects a UDF bridge and reads its volume identifier (Windows media layout)', async () => {
    const info = await readIsoInfo({ path: paths.windows as string });
    expect(info.udf).toEqual({
      revision: 'NSR02',
      anchor: true,
      volumeId: 'CCCOMA_X64FRE_EN-US_DV9',
      logicalVolumeId: 'CCCOMA_X64FRE_EN-US_DV9',
    });
    expect(info.publisherId).toBe('MICROSOFT CORPORATION');
    expect(info.createdAt).toEqual(REAL_MEDIA.windows11.date);
    // blkid prefers UDF on bridge media; it must agree with what we read.
    const { stdout } = await run('blkid', ['-o', 'export', paths.windows as string]);
    expect(stdout).toContain('TYPE=udf');
    expect(stdout).toContain('LABEL=CCCOMA_X64FRE_EN-US_DV9');
    expect((await readIsoInfo({ path: paths.ubuntu as string })).udf).toBeNull();
  });

  it('reads only a few sectors of a large image', async () => {
    const info = await readIsoInfo({ path: paths.big as string });
    expect(info.fileSizeBytes).toBeGreaterThan(64 * 1024 * 1024);
    expect(info.bytesRead).toBeLessThanOrEqual(12 * ISO_SECTOR_SIZE);
    expect(info.bootable).toBe(true);
  });
});

describe('readIsoInfo on files that are not usable ISOs', () => {
  it('gives ISO_EMPTY for a zero-byte file', async () => {
    const path = join(dir, 'empty.iso');
    await writeFile(path, '');
    expect(await codeOf(path)).toBe(ImagesIsoErrorCode.ISO_EMPTY);
  });

  it('gives ISO_TRUNCATED for an ISO cut short, wherever it was cut', async () => {
    const original = await readFile(paths.big as string);
    for (const length of [original.length - 1, 1024 * 1024, 40 * 1024, 33 * 1024, 20 * 1024]) {
      const path = join(dir, `cut-${length}.iso`);
      await writeFile(path, original.subarray(0, length));
      expect(await codeOf(path), `cut to ${length} bytes`).toBe(ImagesIsoErrorCode.ISO_TRUNCATED);
    }
    const error = await readIsoInfo({ path: join(dir, `cut-${1024 * 1024}.iso`) }).catch((e) => e);
    expect(error.details).toMatchObject({ sizeBytes: 1024 * 1024, volumeSizeBytes: original.length });
    expect(error.message).toContain('cut short');
  });

  it('gives ISO_NOT_ISO9660 for a text file named .iso, short or long', async () => {
    const short = join(dir, 'notes.iso');
    await writeFile(short, 'These are my notes, not an ISO.\n');
    expect(await codeOf(short)).toBe(ImagesIsoErrorCode.ISO_NOT_ISO9660);
    const long = join(dir, 'long-notes.iso');
    await writeFile(long, 'lorem ipsum dolor sit amet\n'.repeat(4000));
    expect(await codeOf(long)).toBe(ImagesIsoErrorCode.ISO_NOT_ISO9660);
  });

  it('gives ISO_NOT_ISO9660 for a disk image, a directory and a FIFO named .iso — without waiting on the FIFO', async () => {
    const qcow = join(dir, 'disk.iso');
    await writeFile(qcow, Buffer.concat([Buffer.from('QFI\xfb\0\0\0\x03', 'latin1'), Buffer.alloc(64 * 1024)]));
    expect(await codeOf(qcow)).toBe(ImagesIsoErrorCode.ISO_NOT_ISO9660);
    const directory = join(dir, 'folder.iso');
    await mkdir(directory);
    expect(await codeOf(directory)).toBe(ImagesIsoErrorCode.ISO_NOT_ISO9660);
    const fifo = join(dir, 'pipe.iso');
    await run('mkfifo', [fifo]);
    expect(await codeOf(fifo)).toBe(ImagesIsoErrorCode.ISO_NOT_ISO9660);
  });

  it('follows a symbolic link by default, and refuses it, unread, when told not to (a pool scan)', async () => {
    const link = join(dir, 'linked.iso');
    await symlink(paths.plain as string, link);
    expect((await readIsoInfo({ path: link })).volumeId).toBe('DATA_DISC');
    await expect(readIsoInfo({ path: link, followLinks: false })).rejects.toMatchObject({
      code: ImagesIsoErrorCode.ISO_NOT_ISO9660,
      message: expect.stringContaining('it is a symbolic link, not followed'),
    });
    // The same file by its own name is read either way.
    expect((await readIsoInfo({ path: paths.plain as string, followLinks: false })).volumeId).toBe('DATA_DISC');
  });

  it('gives NOT_FOUND for a file that is not there', async () => {
    expect(await codeOf(join(dir, 'nope.iso'))).toBe(ErrorCode.NOT_FOUND);
  });

  it('stops at the descriptor limit on a hostile file whose descriptor set never ends', async () => {
    // Sector 16 on: supplementary descriptors forever, never a terminator.
    const sectors = 2000;
    const image = Buffer.alloc((16 + sectors) * ISO_SECTOR_SIZE);
    const primary = (await readFile(paths.plain as string)).subarray(16 * ISO_SECTOR_SIZE, 17 * ISO_SECTOR_SIZE);
    primary.copy(image, 16 * ISO_SECTOR_SIZE);
    for (let s = 17; s < 16 + sectors; s++) {
      image[s * ISO_SECTOR_SIZE] = 2;
      image.write('CD001\x01', s * ISO_SECTOR_SIZE + 1, 'latin1');
    }
    const path = join(dir, 'endless.iso');
    await writeFile(path, image);
    const error = await readIsoInfo({ path, maxDescriptors: 32 }).catch((e) => e);
    expect(error).toMatchObject({ code: ImagesIsoErrorCode.ISO_MALFORMED, details: { maxDescriptors: 32 } });
  });

  it('gives ISO_MALFORMED for an impossible block size and for a descriptor set with no primary descriptor', async () => {
    const original = await readFile(paths.plain as string);
    const badBlock = Buffer.from(original);
    badBlock.writeUInt16LE(3, 16 * ISO_SECTOR_SIZE + 128);
    badBlock.writeUInt16BE(3, 16 * ISO_SECTOR_SIZE + 130);
    await writeFile(join(dir, 'block.iso'), badBlock);
    expect(await codeOf(join(dir, 'block.iso'))).toBe(ImagesIsoErrorCode.ISO_MALFORMED);

    const noPrimary = Buffer.from(original);
    noPrimary[16 * ISO_SECTOR_SIZE] = 3; // a volume partition descriptor where the primary was
    await writeFile(join(dir, 'noprimary.iso'), noPrimary);
    expect(await codeOf(join(dir, 'noprimary.iso'))).toBe(ImagesIsoErrorCode.ISO_MALFORMED);
  });

  it('survives a boot record pointing past the end of the file, with a warning', async () => {
    const path = join(dir, 'badboot.iso');
    await copyFile(paths.ubuntu as string, path);
    const image = await readFile(path);
    for (let s = 16; s < 24; s++) {
      const at = s * ISO_SECTOR_SIZE;
      if (image[at] === 0 && image.toString('latin1', at + 1, at + 6) === 'CD001')
        image.writeUInt32LE(0x7fffffff, at + 0x47);
    }
    await writeFile(path, image);
    const info = await readIsoInfo({ path });
    expect(info.boot).toMatchObject({ catalogSector: 0x7fffffff, entries: [] });
    expect(info.bootable).toBe(false);
    expect(info.warnings.join(' ')).toContain('beyond the end');
  });

  it('reports a cut-short file once the descriptors are read whole (truncate of a copy)', async () => {
    const path = join(dir, 'copy-cut.iso');
    await copyFile(paths.windows as string, path);
    await truncate(path, 300 * ISO_SECTOR_SIZE);
    expect(await codeOf(path)).toBe(ImagesIsoErrorCode.ISO_TRUNCATED);
  });

  it('stops when aborted', async () => {
    const controller = new AbortController();
    controller.abort();
    await expect(readIsoInfo({ path: paths.ubuntu as string, signal: controller.signal })).rejects.toThrow();
  });
});
