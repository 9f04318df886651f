import { execFileSync } from 'node:child_process';
import { mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { readFileHead } from './read-file-head.js';

describe('readFileHead', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'quantix-head-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('reads the first bytes of a file, or all of a shorter one', async () => {
    const file = join(dir, 'disk.img');
    await writeFile(file, Buffer.from('QFI\xfbrest of the header', 'latin1'));
    expect((await readFileHead(file, 4)).toString('latin1')).toBe('QFI\xfb');
    expect((await readFileHead(file, 1024)).toString('latin1')).toBe('QFI\xfbrest of the header');
  });

  it('refuses a symbolic link and a FIFO with INVALID_INPUT, without following or waiting on them', async () => {
    const secret = join(dir, 'secret');
    await writeFile(secret, 'not for images');
    await symlink(secret, join(dir, 'link.img'));
    execFileSync('mkfifo', [join(dir, 'fifo.img')]);
    await expect(readFileHead(join(dir, 'link.img'), 16)).rejects.toMatchObject({
      code: 'INVALID_INPUT',
      message: expect.stringContaining('symbolic link'),
    });
    // A FIFO opened blocking would wait for a writer forever; this answers at once.
    await expect(readFileHead(join(dir, 'fifo.img'), 16)).rejects.toMatchObject({
      code: 'INVALID_INPUT',
      message: expect.stringContaining('not a regular file'),
    });
    await expect(readFileHead(dir, 16)).rejects.toMatchObject({ code: 'INVALID_INPUT' });
  });

  it('passes on a missing file as ENOENT', async () => {
    await expect(readFileHead(join(dir, 'gone.img'), 16)).rejects.toMatchObject({ code: 'ENOENT' });
  });
});
