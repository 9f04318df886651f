/**
 * foreignFileReference on images qemu-img makes (qemu-utils): what each kind of image file says
 * of other files in its first IMAGE_HEADER_BYTES; qemuImgInfoForeignFile on what `qemu-img info`
 * says of the same images.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, open, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { foreignFileReference, IMAGE_HEADER_BYTES, qemuImgInfoForeignFile } from './image-headers.js';

const exec = promisify(execFile);

describe('foreignFileReference', () => {
  let dir: string;
  const path = (name: string) => join(dir, name);
  const create = (name: string, format: string, ...options: string[]) =>
    exec('qemu-img', ['create', '-q', '-f', format, ...options, path(name), '1M']);
  const head = async (name: string) => {
    const file = await open(path(name), 'r');
    try {
      const { buffer, bytesRead } = await file.read(Buffer.alloc(IMAGE_HEADER_BYTES), 0, IMAGE_HEADER_BYTES, 0);
      return buffer.subarray(0, bytesRead);
    } finally {
      await file.close();
    }
  };

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'quantix-image-headers-'));
    await writeFile(path('secret'), 'root:secret-hash');
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('finds nothing in images that stand alone: qcow2, raw, sparse and stream-optimized VMDK', async () => {
    await create('plain.qcow2', 'qcow2');
    await create('plain.raw', 'raw');
    await create('sparse.vmdk', 'vmdk');
    await create('stream.vmdk', 'vmdk', '-o', 'subformat=streamOptimized');
    for (const name of ['plain.qcow2', 'plain.raw', 'sparse.vmdk', 'stream.vmdk']) {
      expect(foreignFileReference(await head(name)), name).toBeNull();
    }
  });

  it('names the backing file and the external data file of a qcow2', async () => {
    await create('backed.qcow2', 'qcow2', '-F', 'raw', '-b', path('secret'));
    expect(foreignFileReference(await head('backed.qcow2'))).toEqual({
      reason: 'backing-file',
      message: `is a qcow2 that names a backing file (${path('secret')})`,
      details: { file: path('secret') },
    });
    await create('data.qcow2', 'qcow2', '-o', `data_file=${path('secret')},data_file_raw=on`);
    expect(foreignFileReference(await head('data.qcow2'))).toEqual({
      reason: 'data-file',
      message: `is a qcow2 whose data lives in an external data file (${path('secret')})`,
      details: { file: path('secret') },
    });
  });

  it('refuses VMDK layouts whose extents are other files, and a descriptor renamed', async () => {
    await create('flat.vmdk', 'vmdk', '-o', 'subformat=monolithicFlat');
    await create('split.vmdk', 'vmdk', '-o', 'subformat=twoGbMaxExtentSparse');
    expect(foreignFileReference(await head('flat.vmdk'))).toMatchObject({
      reason: 'vmdk-descriptor',
      details: { createType: 'monolithicFlat' },
    });
    expect(foreignFileReference(await head('split.vmdk'))).toMatchObject({
      reason: 'vmdk-descriptor',
      details: { createType: 'twoGbMaxExtentSparse' },
    });
    // The same descriptor text under a disk image's name, its extent pointed elsewhere.
    const descriptor = (await readFile(path('flat.vmdk'), 'latin1')).replace(/"[^"]*-flat\.vmdk"/, '"/etc/passwd"');
    await writeFile(path('renamed.qcow2'), descriptor, 'latin1');
    expect(foreignFileReference(await head('renamed.qcow2'))?.reason).toBe('vmdk-descriptor');
  });

  it('reads only what it is given: a header cut before the name still refuses', async () => {
    await create('cut.qcow2', 'qcow2', '-F', 'raw', '-b', path('secret'));
    expect(foreignFileReference((await head('cut.qcow2')).subarray(0, 16))).toEqual({
      reason: 'backing-file',
      message: 'is a qcow2 that names a backing file',
      details: {},
    });
  });

  describe('qemuImgInfoForeignFile, on what qemu-img info says', () => {
    const info = async (name: string) => {
      const { stdout } = await exec('qemu-img', ['info', '-U', '--output=json', '--', path(name)]);
      return JSON.parse(stdout) as Record<string, unknown>;
    };

    it('finds nothing in images that stand alone; a sparse VMDK is its own one extent', async () => {
      await create('alone.qcow2', 'qcow2');
      await create('alone.raw', 'raw');
      await create('alone.vmdk', 'vmdk');
      for (const name of ['alone.qcow2', 'alone.raw', 'alone.vmdk']) {
        expect(qemuImgInfoForeignFile(await info(name), path(name)), name).toBeNull();
      }
    });

    it('names the backing file, the external data file, and a VMDK whose extents are other files', async () => {
      await create('info-backed.qcow2', 'qcow2', '-F', 'raw', '-b', path('secret'));
      expect(qemuImgInfoForeignFile(await info('info-backed.qcow2'), path('info-backed.qcow2'))).toEqual({
        reason: 'backing-file',
        message: `names a backing file (${path('secret')})`,
        details: { file: path('secret') },
      });
      await create('info-data.qcow2', 'qcow2', '-o', `data_file=${path('info-data.bin')},data_file_raw=on`);
      expect(qemuImgInfoForeignFile(await info('info-data.qcow2'), path('info-data.qcow2'))).toMatchObject({
        reason: 'data-file',
        details: { file: path('info-data.bin') },
      });
      await create('info-flat.vmdk', 'vmdk', '-o', 'subformat=monolithicFlat');
      expect(qemuImgInfoForeignFile(await info('info-flat.vmdk'), path('info-flat.vmdk'))).toMatchObject({
        reason: 'vmdk-extents',
        details: { createType: 'monolithicFlat' },
      });
      // A sparse VMDK read under another name than qemu-img was given: its extent is not "the file itself".
      await create('moved.vmdk', 'vmdk');
      expect(qemuImgInfoForeignFile(await info('moved.vmdk'), path('elsewhere.vmdk'))).toMatchObject({
        reason: 'vmdk-extents',
        details: { extents: [path('moved.vmdk')] },
      });
    });
  });
});
