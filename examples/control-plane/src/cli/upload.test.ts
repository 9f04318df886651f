import { randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { text } from 'node:stream/consumers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tusFileReader } from './upload.js';

// The CLI's file reader, against a real file: what tus-js-client asks of it is a slice per request.
describe('tusFileReader', () => {
  let work: string;
  let path: string;
  // 3 MiB and a bit: more than one of the reader's 1 MiB reads, and not a whole number of them.
  const content = randomBytes(3 * 1024 * 1024 + 12_345).toString('hex');

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'quantix-tus-reader-'));
    path = join(work, 'disc.iso');
    await writeFile(path, content);
  });
  afterAll(() => rm(work, { recursive: true, force: true }));

  const open = () => tusFileReader(path, content.length).openFile(createReadStream(path), Number.POSITIVE_INFINITY);

  it('gives the whole file as one slice when asked for all of it, with its length for Content-Length', async () => {
    const source = await open();
    expect(source.size).toBe(content.length);
    const slice = await source.slice(0, Number.POSITIVE_INFINITY);
    expect(slice.done).toBe(true);
    expect((slice.value as { size: number }).size).toBe(content.length);
    expect(await text(slice.value as Readable)).toBe(content);
    source.close();
  });

  it('gives the bytes from a resumed offset, chunk by chunk, and says which slice is the last', async () => {
    const source = await open();
    const chunk = 2 * 1024 * 1024;
    let received = '';
    for (let start = 1_000_001; ; start += chunk) {
      const slice = await source.slice(start, start + chunk);
      received += await text(slice.value as Readable);
      expect((slice.value as { size: number }).size).toBe(Math.min(chunk, content.length - start));
      if (slice.done) break;
    }
    expect(received).toBe(content.slice(1_000_001));
    source.close();
  });
});
