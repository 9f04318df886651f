import { chmod, mkdir, mkdtemp, readdir, readFile, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { writeFileAtomic } from './write-file-atomic.js';

describe('writeFileAtomic', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'quantix-atomic-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('replaces a file, gives it the mode asked for even when it existed, and leaves nothing beside it', async () => {
    const file = join(dir, 'credentials.json');
    await writeFile(file, 'old');
    await chmod(file, 0o644);
    await writeFileAtomic(file, '{"token":"new"}', { mode: 0o600 });
    expect(await readFile(file, 'utf8')).toBe('{"token":"new"}');
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    expect(await readdir(dir)).toEqual(['credentials.json']);
  });

  it('never lets a reader see half a file while it is rewritten', async () => {
    const file = join(dir, 'state.json');
    const size = 4 * 1024 * 1024;
    await writeFile(file, 'a'.repeat(size));
    let writing = true;
    const seen = new Set<string>();
    const reader = (async () => {
      while (writing) {
        const text = await readFile(file, 'latin1');
        // Whole, and one version: its length and its first and last characters agree.
        seen.add(`${text.length}:${text[0]}${text[text.length - 1]}`);
      }
    })();
    for (let round = 0; round < 20; round++) {
      await writeFileAtomic(file, (round % 2 === 0 ? 'b' : 'a').repeat(size));
    }
    writing = false;
    await reader;
    expect([...seen].sort()).toEqual(expect.arrayContaining([`${size}:aa`]));
    expect([...seen].every((entry) => entry === `${size}:aa` || entry === `${size}:bb`)).toBe(true);
  });

  it('leaves one whole file when writers race, and no file of theirs beside it', async () => {
    const file = join(dir, 'meta.json');
    const contents = Array.from({ length: 20 }, (_, i) => JSON.stringify({ writer: i, pad: 'x'.repeat(100_000) }));
    await Promise.all(contents.map((text) => writeFileAtomic(file, text)));
    expect(contents).toContain(await readFile(file, 'utf8'));
    expect(await readdir(dir)).toEqual(['meta.json']);
  });

  it('fails as the write failed and removes what it had written aside', async () => {
    const target = join(dir, 'taken');
    await mkdir(target);
    await expect(writeFileAtomic(target, 'data')).rejects.toMatchObject({ code: 'EISDIR' });
    expect(await readdir(dir)).toEqual(['taken']);
    await expect(writeFileAtomic(join(dir, 'missing', 'file'), 'data')).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('removes what a writer killed mid-write left beside the file, and nothing that may still be written', async () => {
    const file = join(dir, 'meta.json');
    const hourAgo = new Date(Date.now() - 60 * 60_000);
    // A killed writer's aside (an hour old), one being written now, and an old aside of another file.
    const names = ['meta.json.4242.7.tmp', 'meta.json.4343.1.tmp', 'other.json.4242.8.tmp', 'meta.json.notes'];
    for (const name of names) await writeFile(join(dir, name), 'half');
    for (const name of ['meta.json.4242.7.tmp', 'other.json.4242.8.tmp', 'meta.json.notes']) {
      await utimes(join(dir, name), hourAgo, hourAgo);
    }
    await writeFileAtomic(file, '{"done":true}');
    expect((await readdir(dir)).sort()).toEqual([
      'meta.json',
      'meta.json.4343.1.tmp',
      'meta.json.notes',
      'other.json.4242.8.tmp',
    ]);
    expect(await readFile(file, 'utf8')).toBe('{"done":true}');
  });
});
