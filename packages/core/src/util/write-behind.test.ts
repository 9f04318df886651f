import { type FileHandle, mkdtemp, open, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { WriteBehind } from './write-behind.js';

const MiB = 1024 * 1024;

/** Writes `count` chunks of 1 MiB (each byte its chunk's number), as the writers do. */
async function writeChunks(handle: FileHandle, writeBehind: WriteBehind, count: number): Promise<void> {
  let position = 0;
  for (let i = 0; i < count; i += 1) {
    const { bytesWritten } = await handle.write(Buffer.alloc(MiB, i), 0, MiB, position);
    position += bytesWritten;
    writeBehind.wrote(bytesWritten, position);
  }
}

describe('WriteBehind', () => {
  let dir: string | undefined;
  let handle: FileHandle | undefined;
  afterEach(async () => {
    await handle?.close();
    handle = undefined;
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('flushes a long write on the way, never past what was written when the flush began', async () => {
    dir = await mkdtemp(join(tmpdir(), 'quantix-write-behind-'));
    handle = await open(join(dir, 'file'), 'w');
    const writeBehind = new WriteBehind(handle, MiB);
    await writeChunks(handle, writeBehind, 8);
    await writeBehind.settle();

    expect(writeBehind.flushedBytes).toBeGreaterThanOrEqual(MiB);
    expect(writeBehind.flushedBytes).toBeLessThanOrEqual(8 * MiB);
    const written = await readFile(join(dir, 'file'));
    expect(written.length).toBe(8 * MiB);
    expect(written[7 * MiB]).toBe(7);
  });

  it('leaves a write shorter than its interval to the final fsync', async () => {
    dir = await mkdtemp(join(tmpdir(), 'quantix-write-behind-'));
    handle = await open(join(dir, 'file'), 'w');
    const writeBehind = new WriteBehind(handle);
    await writeChunks(handle, writeBehind, 8);
    await writeBehind.settle();
    expect(writeBehind.flushedBytes).toBe(0);
  });

  it('fails the next write and the end when a background flush fails', async () => {
    // /dev/null takes every write, and fdatasync on it fails (EINVAL): a real flush failure.
    handle = await open('/dev/null', 'w');
    const writeBehind = new WriteBehind(handle, MiB);
    writeBehind.wrote(MiB, MiB); // starts a flush
    await writeBehind.idle(); // waits for it without throwing
    expect(() => writeBehind.wrote(MiB, 2 * MiB)).toThrow(expect.objectContaining({ code: 'EINVAL' }));
    await expect(writeBehind.settle()).rejects.toMatchObject({ code: 'EINVAL' });

    // A flush begun by the last write fails the end.
    const last = new WriteBehind(handle, MiB);
    last.wrote(MiB, MiB);
    await expect(last.settle()).rejects.toMatchObject({ code: 'EINVAL' });
  });
});
