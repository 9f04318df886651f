import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { PartialFileWriter } from './partial.js';

const MiB = 1024 * 1024;
/** 8 MiB in 1 MiB chunks, each byte its chunk's number. */
const chunks = () => Array.from({ length: 8 }, (_, i) => Buffer.alloc(MiB, i));

describe('PartialFileWriter', () => {
  let dir: string | undefined;
  afterEach(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('hands a long download to the disk as it arrives, not all at the end', async () => {
    dir = await mkdtemp(join(tmpdir(), 'quantix-partial-'));
    const path = join(dir, 'disk.img.partial');
    const hash = createHash('sha256');
    let reported = 0;
    const writer = new PartialFileWriter(path, 0, hash, (bytes) => (reported += bytes), { writeBehindBytes: MiB });
    await pipeline(Readable.from(chunks()), writer);

    expect(writer.position).toBe(8 * MiB);
    expect(reported).toBe(8 * MiB);
    // Flushed in the background while later chunks were written: some of the file, never more
    // than was written when the flush began.
    expect(writer.flushedBytes).toBeGreaterThanOrEqual(MiB);
    expect(writer.flushedBytes).toBeLessThanOrEqual(8 * MiB);
    const written = await readFile(path);
    expect(written.equals(Buffer.concat(chunks()))).toBe(true);
    expect(hash.digest('hex')).toBe(createHash('sha256').update(written).digest('hex'));
  });

  it('leaves a download shorter than the write-behind size to the final fsync', async () => {
    dir = await mkdtemp(join(tmpdir(), 'quantix-partial-'));
    const writer = new PartialFileWriter(join(dir, 'small.partial'), 0, createHash('sha256'), () => undefined);
    await pipeline(Readable.from(chunks()), writer);
    expect(writer.position).toBe(8 * MiB);
    expect(writer.flushedBytes).toBe(0);
  });

  it('fails the download when a background flush fails, instead of leaving the error unseen', async () => {
    // /dev/null takes every write, and fdatasync on it fails (EINVAL): a real flush failure.
    const writer = new PartialFileWriter('/dev/null', 0, createHash('sha256'), () => undefined, {
      writeBehindBytes: MiB,
    });
    await expect(pipeline(Readable.from(chunks()), writer)).rejects.toMatchObject({ code: 'EINVAL' });
    // A flush begun by the last write fails the end of the stream.
    const last = new PartialFileWriter('/dev/null', 0, createHash('sha256'), () => undefined, {
      writeBehindBytes: MiB,
    });
    await expect(pipeline(Readable.from([Buffer.alloc(MiB)]), last)).rejects.toMatchObject({ code: 'EINVAL' });
  });
});
