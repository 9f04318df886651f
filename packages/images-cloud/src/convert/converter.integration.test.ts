/**
 * Import and conversion against the real qemu-img, xz, gzip, zstd, bzip2 and tar: every image is
 * made at set-up from one raw disk of known content, so each conversion back to raw must give
 * that disk's sha256 exactly. The unsafe images are real too (a qcow2 with a backing file or an
 * external data file, a VMDK descriptor naming /etc/passwd, a tar with a ../ member).
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { ImageImportProgress } from '@quantix/core';
import { mountSmallFilesystem, requireTools } from '@quantix/core/testing';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createImage, makeVmdkDescriptorNaming, requireImageTools, sha256 } from '../testing/images.js';
import { QemuImgConverter } from './converter.js';

const run = promisify(execFile);
const MiB = 1024 * 1024;
const DISK_BYTES = 8 * MiB;

let fixtures: string;
let staging: string;
let pool: string;
let referenceSha: string;

/** Copies a fixture into the staging area, as a download would leave it. */
function stage(name: string, as = name): string {
  const path = join(staging, as);
  copyFileSync(join(fixtures, name), path);
  return path;
}

function converter(maxVirtualSizeBytes?: number): QemuImgConverter {
  return new QemuImgConverter(maxVirtualSizeBytes ? { maxVirtualSizeBytes } : {});
}

const OVF = `<?xml version="1.0" encoding="UTF-8"?>
<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1"
  xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData"
  xmlns:vmw="http://www.vmware.com/schema/ovf">
  <References>
    <File ovf:id="file1" ovf:href="appliance-disk1.vmdk"/>
    <File ovf:id="file2" ovf:href="appliance-disk2.vmdk"/>
  </References>
  <DiskSection>
    <Info>Virtual disks</Info>
    <Disk ovf:diskId="vmdisk1" ovf:fileRef="file1" ovf:capacity="8" ovf:capacityAllocationUnits="byte * 2^20"
      ovf:format="http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized"/>
    <Disk ovf:diskId="vmdisk2" ovf:fileRef="file2" ovf:capacity="4" ovf:capacityAllocationUnits="byte * 2^20"/>
  </DiskSection>
  <VirtualSystem ovf:id="appliance">
    <Info>A virtual machine</Info>
    <Name>Test Appliance</Name>
    <VirtualHardwareSection>
      <Info>Virtual hardware requirements</Info>
      <Item><rasd:AllocationUnits>hertz * 10^6</rasd:AllocationUnits><rasd:InstanceID>1</rasd:InstanceID>
        <rasd:ResourceType>3</rasd:ResourceType><rasd:VirtualQuantity>2</rasd:VirtualQuantity></Item>
      <Item><rasd:AllocationUnits>byte * 2^20</rasd:AllocationUnits><rasd:InstanceID>2</rasd:InstanceID>
        <rasd:ResourceType>4</rasd:ResourceType><rasd:VirtualQuantity>1536</rasd:VirtualQuantity></Item>
      <vmw:Config ovf:required="false" vmw:key="firmware" vmw:value="efi"/>
    </VirtualHardwareSection>
  </VirtualSystem>
</Envelope>
`;

beforeAll(async () => {
  requireImageTools();
  requireTools(
    { program: 'xz', debianPackage: 'xz-utils' },
    { program: 'gzip', debianPackage: 'gzip' },
    { program: 'zstd', debianPackage: 'zstd' },
    { program: 'bzip2', debianPackage: 'bzip2' },
    { program: 'tar', debianPackage: 'tar' },
  );
  fixtures = mkdtempSync(join(tmpdir(), 'quantix-convert-fixtures-'));
  // A raw disk with random data in a few places and holes between: the content every format carries.
  const disk = Buffer.alloc(DISK_BYTES);
  for (const offset of [0, 3 * MiB, 7 * MiB]) randomBytes(256 * 1024).copy(disk, offset);
  writeFileSync(join(fixtures, 'disk.raw'), disk);
  referenceSha = sha256(disk);
  const raw = join(fixtures, 'disk.raw');
  const convert = (format: string, name: string, options: string[] = []) =>
    run('qemu-img', ['convert', '-q', '-f', 'raw', '-O', format, ...options, raw, join(fixtures, name)]);
  await Promise.all([
    convert('qcow2', 'disk.qcow2'),
    convert('vmdk', 'disk.vmdk', ['-o', 'subformat=monolithicSparse']),
    convert('vmdk', 'disk-stream.vmdk', ['-o', 'subformat=streamOptimized']),
    convert('vhdx', 'disk.vhdx'),
    // force_size keeps the exact size (VHD otherwise rounds to its CHS geometry).
    convert('vpc', 'disk.vhd', ['-o', 'force_size=on']),
    convert('vdi', 'disk.vdi'),
  ]);
  await Promise.all([
    run('xz', ['-k', '-T1', join(fixtures, 'disk.raw')]),
    run('gzip', ['-k', join(fixtures, 'disk.qcow2')]),
    run('zstd', ['-q', '-k', join(fixtures, 'disk.vmdk')]),
    run('bzip2', ['-k', join(fixtures, 'disk.vhdx')]),
  ]);

  // An OVA: the OVF first, then its two disks (GNU tar, plain member names).
  const ova = join(fixtures, 'ova');
  mkdirSync(ova);
  writeFileSync(join(ova, 'appliance.ovf'), OVF);
  copyFileSync(join(fixtures, 'disk-stream.vmdk'), join(ova, 'appliance-disk1.vmdk'));
  await createImage({
    path: join(ova, 'appliance-disk2.vmdk'),
    format: 'vmdk',
    size: '4M',
    options: ['subformat=streamOptimized'],
  });
  await run('tar', [
    '-cf',
    join(fixtures, 'appliance.ova'),
    '-C',
    ova,
    'appliance.ovf',
    'appliance-disk1.vmdk',
    'appliance-disk2.vmdk',
  ]);

  // Unsafe images.
  await run('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', raw, '-F', 'raw', join(fixtures, 'backed.qcow2')]);
  // The same, compressed: its header is checked once decompressed, not only the gzip header around it.
  await run('gzip', ['-k', join(fixtures, 'backed.qcow2')]);
  await createImage({
    path: join(fixtures, 'datafile.qcow2'),
    format: 'qcow2',
    size: '1M',
    options: [`data_file=${join(fixtures, 'external.raw')}`],
  });
  await createImage({
    path: join(fixtures, 'flat.vmdk'),
    format: 'vmdk',
    size: '1M',
    options: ['subformat=monolithicFlat'],
  });
  await makeVmdkDescriptorNaming(join(fixtures, 'passwd.vmdk'), '/etc/passwd');
  // A 64 KiB sparse VMDK whose header claims 100 TiB (capacity, in sectors, at byte 12).
  const huge = readFileSync(join(fixtures, 'disk.vmdk')).subarray(0, 64 * 1024);
  const claimed = Buffer.from(huge);
  claimed.writeBigUInt64LE(BigInt((100 * 1024 ** 4) / 512), 12);
  writeFileSync(join(fixtures, 'huge.vmdk'), claimed);
  const evil = join(fixtures, 'evil');
  mkdirSync(join(evil, 'inner'), { recursive: true });
  writeFileSync(join(evil, 'x.ovf'), OVF);
  // -P keeps the ../ in the member name, as a hostile archive would have it.
  await run('tar', ['-P', '-cf', join(fixtures, 'dotdot.ova'), '../x.ovf'], { cwd: join(evil, 'inner') });
  await run('ln', ['-s', '/etc/passwd', join(evil, 'link.vmdk')]);
  await run('tar', ['-cf', join(fixtures, 'link.ova'), '-C', evil, 'x.ovf', 'link.vmdk']);
}, 120_000);

afterAll(() => {
  if (fixtures) rmSync(fixtures, { recursive: true, force: true });
});

beforeEach(() => {
  staging = mkdtempSync(join(tmpdir(), 'quantix-convert-staging-'));
  pool = mkdtempSync(join(tmpdir(), 'quantix-convert-pool-'));
  return () => {
    rmSync(staging, { recursive: true, force: true });
    rmSync(pool, { recursive: true, force: true });
  };
});

describe('QemuImgConverter.importDisk', () => {
  const formats = [
    ['disk.raw', 'raw', null],
    ['disk.qcow2', 'qcow2', null],
    ['disk.vmdk', 'vmdk', null],
    ['disk-stream.vmdk', 'vmdk', null],
    ['disk.vhdx', 'vhdx', null],
    ['disk.vhd', 'vpc', null],
    ['disk.vdi', 'vdi', null],
    ['disk.raw.xz', 'raw', 'xz'],
    ['disk.qcow2.gz', 'qcow2', 'gzip'],
    ['disk.vmdk.zst', 'vmdk', 'zstd'],
    ['disk.vhdx.bz2', 'vhdx', 'bzip2'],
  ] as const;

  it.each(formats)(
    '%s converts to raw with the disk sha256 and leaves only the result',
    async (name, format, compression) => {
      const source = stage(name);
      const destination = join(pool, 'imported.raw');
      const result = await converter().importDisk({
        sourcePath: source,
        destinationPath: destination,
        targetFormat: 'raw',
        removeSource: true,
      });
      expect(result).toMatchObject({
        format: 'raw',
        sourceFormat: format,
        compression,
        virtualSizeBytes: DISK_BYTES,
        sizeBytes: DISK_BYTES,
        checksum: { algorithm: 'sha256', value: referenceSha },
      });
      expect(sha256(readFileSync(destination))).toBe(referenceSha);
      expect(readdirSync(pool)).toEqual(['imported.raw']);
      expect(readdirSync(staging)).toEqual([]);
    },
  );

  it('converts to qcow2 by default, reporting progress, with the same content as the source', async () => {
    const source = stage('disk.vhdx');
    const destination = join(pool, 'imported.qcow2');
    const seen: ImageImportProgress[] = [];
    const result = await converter().importDisk({
      sourcePath: source,
      destinationPath: destination,
      onProgress: (progress) => seen.push(progress),
    });
    expect(result).toMatchObject({ format: 'qcow2', sourceFormat: 'vhdx', virtualSizeBytes: DISK_BYTES });
    expect(result.checksum.value).toBe(sha256(readFileSync(destination)));
    const info = JSON.parse((await run('qemu-img', ['info', '--output=json', '-f', 'qcow2', destination])).stdout);
    expect(info).toMatchObject({ format: 'qcow2', 'virtual-size': DISK_BYTES });
    // qemu-img compare exits 0 only when the guest-visible content is identical.
    await run('qemu-img', ['compare', '-f', 'qcow2', '-F', 'raw', destination, join(fixtures, 'disk.raw')]);
    expect(seen.map((p) => p.stage)).toEqual(expect.arrayContaining(['inspecting', 'converting', 'verifying']));
    expect(seen.filter((p) => p.stage === 'converting').at(-1)?.percent).toBe(100);
    expect(readdirSync(staging)).toEqual(['disk.vhdx']); // removeSource not asked: the original is kept
  });

  const unsafe = [
    ['backed.qcow2', 'IMAGE_UNSAFE', 'backing-file', undefined],
    ['datafile.qcow2', 'IMAGE_UNSAFE', 'data-file', undefined],
    ['passwd.vmdk', 'IMAGE_UNSAFE', 'vmdk-descriptor', undefined],
    ['flat.vmdk', 'IMAGE_UNSAFE', 'vmdk-descriptor', undefined],
    ['huge.vmdk', 'IMAGE_TOO_LARGE', undefined, undefined],
    ['disk.raw', 'IMAGE_FORMAT_MISMATCH', undefined, 'disk.vmdk'],
    ['disk.qcow2', 'IMAGE_FORMAT_MISMATCH', undefined, 'disk.vhd.gz'],
  ] as const;

  /** Imports with removeSource and returns the error; the pool and the staging area must be left empty. */
  const refusal = async (source: string, maxVirtualSizeBytes?: number) => {
    const error = await converter(maxVirtualSizeBytes)
      .importDisk({ sourcePath: source, destinationPath: join(pool, 'imported.qcow2'), removeSource: true })
      .catch((e: unknown) => e);
    expect(readdirSync(pool)).toEqual([]);
    expect(readdirSync(staging)).toEqual([]);
    return error;
  };

  it.each(unsafe)('%s is refused with %s and nothing is left behind', async (name, code, reason, stagedAs) => {
    const error = await refusal(stage(name, stagedAs), 1024 ** 4);
    expect(error).toMatchObject({ code, ...(reason ? { details: { reason } } : {}) });
  });

  it('checks a compressed image by the header it has once decompressed, before qemu-img opens it', async () => {
    const error = await refusal(stage('backed.qcow2.gz'), 1024 ** 4);
    // The header's words ("is a qcow2 that…"), not qemu-img info's: the first line refused it.
    expect(error).toMatchObject({
      code: 'IMAGE_UNSAFE',
      details: { reason: 'backing-file' },
      message: expect.stringContaining('is a qcow2 that names a backing file'),
    });
  });

  it('refuses a decompression bomb once the output passes the limit', async () => {
    const error = await refusal(stage('disk.raw.xz'), 1 * MiB);
    // maxBytes is in the details of the decompressor's refusal only (not of the virtual-size check).
    expect(error).toMatchObject({ code: 'IMAGE_TOO_LARGE', details: { maxBytes: expect.any(Number) } });
  });

  it.each([
    ['disk.raw.xz', 'decompress'],
    ['disk.vhdx', 'convert'],
  ])('%s into a pool without room for it: POOL_NO_SPACE (%s), and nothing is left in the pool', async (name, step) => {
    const small = mountSmallFilesystem('1m');
    try {
      const error = await converter()
        .importDisk({
          sourcePath: stage(name),
          destinationPath: join(small.path, 'imported.qcow2'),
          removeSource: true,
        })
        .catch((e: unknown) => e);
      expect(error).toMatchObject({
        code: 'POOL_NO_SPACE',
        message: expect.stringContaining(`No room in the pool to ${step}`),
        details: { retryable: true },
      });
      expect(readdirSync(small.path)).toEqual([]);
      // Retryable once there is room: the source stays.
      expect(readdirSync(staging)).toEqual([name]);
    } finally {
      small.unmount();
    }
  });

  it('does not trust a claim passed by the caller either', async () => {
    const source = stage('disk.vdi', 'upload.bin');
    const error = await converter()
      .importDisk({ sourcePath: source, destinationPath: join(pool, 'x.qcow2'), claimedFormat: 'vhdx' })
      .catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'IMAGE_FORMAT_MISMATCH', details: { claimed: 'vhdx', detected: 'vdi' } });
  });
});

describe('QemuImgConverter.importImage (OVA)', () => {
  it('unpacks an OVA, converts each disk, and returns the OVF facts', async () => {
    const source = stage('appliance.ova');
    const destination = join(pool, 'appliance.qcow2');
    const result = await converter().importImage({
      sourcePath: source,
      destinationPath: destination,
      removeSource: true,
    });
    expect(result.ovf).toEqual({
      name: 'Test Appliance',
      cpuCount: 2,
      memoryMiB: 1536,
      firmware: 'uefi',
      disks: [
        { diskId: 'vmdisk1', fileName: 'appliance-disk1.vmdk', capacityBytes: 8 * MiB },
        { diskId: 'vmdisk2', fileName: 'appliance-disk2.vmdk', capacityBytes: 4 * MiB },
      ],
    });
    expect(result.disks.map((d) => [d.path, d.format, d.sourceFormat, d.virtualSizeBytes])).toEqual([
      [destination, 'qcow2', 'vmdk', 8 * MiB],
      [join(pool, 'appliance-disk2.qcow2'), 'qcow2', 'vmdk', 4 * MiB],
    ]);
    await run('qemu-img', ['compare', '-f', 'qcow2', '-F', 'raw', destination, join(fixtures, 'disk.raw')]);
    expect(readdirSync(pool).sort()).toEqual(['appliance-disk2.qcow2', 'appliance.qcow2']);
    expect(readdirSync(staging)).toEqual([]);
  });

  it.each([
    ['dotdot.ova', /unsafe path/],
    ['link.ova', /symbolic link/],
  ])('refuses %s with OVA_INVALID and leaves nothing behind', async (name, message) => {
    const source = stage(name);
    const error = await converter()
      .importImage({ sourcePath: source, destinationPath: join(pool, 'x.qcow2'), removeSource: true })
      .catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'OVA_INVALID', message: expect.stringMatching(message) });
    expect(readdirSync(pool)).toEqual([]);
    expect(readdirSync(staging)).toEqual([]);
  });

  it('passes a plain disk through importDisk', async () => {
    const source = stage('disk.vdi');
    const result = await converter().importImage({
      sourcePath: source,
      destinationPath: join(pool, 'd.raw'),
      targetFormat: 'raw',
    });
    expect(result.ovf).toBeNull();
    expect(result.disks[0]?.checksum.value).toBe(referenceSha);
  });
});
