import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ErrorCode } from '../errors.js';
import { mountSmallFilesystem } from '../testing/filesystems.js';
import { freeBytesAt, requireRoom } from './free-space.js';

const KiB = 1024;

describe('freeBytesAt and requireRoom', () => {
  it('read what a real file system has free, and refuse a file that would not fit, saying how much is missing', async () => {
    const mounted = mountSmallFilesystem('1m');
    try {
      expect(await freeBytesAt(mounted.path)).toBe(1024 * KiB);
      // A directory not made yet: the file system it would be made on.
      expect(await freeBytesAt(join(mounted.path, 'images', 'deeper'))).toBe(1024 * KiB);
      await writeFile(join(mounted.path, 'a'), Buffer.alloc(256 * KiB));
      expect(await freeBytesAt(mounted.path)).toBe(768 * KiB);
      await requireRoom(mounted.path, 768 * KiB, 'exactly what is left');
      const refused = await requireRoom(mounted.path, 768 * KiB + 1, 'disk.raw').catch((error) => error);
      expect(refused).toMatchObject({
        code: ErrorCode.POOL_NO_SPACE,
        message: `No room in the pool for disk.raw: ${768 * KiB + 1} bytes needed, ${768 * KiB} available`,
        details: { neededBytes: 768 * KiB + 1, availableBytes: 768 * KiB },
      });
    } finally {
      mounted.unmount();
    }
  });

  it('say nothing where statfs cannot tell, and leave the refusal to the writes', async () => {
    // Under a regular file: no directory can be made there, no file system to ask.
    const mounted = mountSmallFilesystem('1m');
    try {
      await writeFile(join(mounted.path, 'file'), 'x');
      const underFile = join(mounted.path, 'file', 'quantix');
      expect(await freeBytesAt(underFile)).toBeNull();
      await requireRoom(underFile, 1024 ** 4, 'anything');
    } finally {
      mounted.unmount();
    }
  });
});
