import { mkdir, mkdtemp, realpath, rename, rm, stat, symlink, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ErrorCode } from '@quantix/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isOnNetworkFilesystem, listPoolFiles } from './directory.js';
import { DirectoryReads } from './directory-reads.js';

// Listing runs against a real directory tree made for the test.
let base: string;
let root: string;
const mtime = new Date('2024-05-01T12:00:00Z');

async function put(relPath: string, content = 'x'): Promise<void> {
  const path = join(root, relPath);
  await mkdir(join(path, '..'), { recursive: true });
  await writeFile(path, content);
  await utimes(path, mtime, mtime);
}

beforeAll(async () => {
  base = await realpath(await mkdtemp(join(tmpdir(), 'quantix-list-')));
  root = join(base, 'pool');
  await put('debian-12.iso', 'a'.repeat(1000));
  await put('Windows/WIN11.ISO', 'bb');
  await put('linux/ubuntu/24.04/ubuntu-24.04-live-server-amd64.iso');
  await put('linux/ubuntu/24.04/SHA256SUMS');
  await put('images/jammy.qcow2');
  await put('images/disk.raw');
  await put('images/floppy.img');
  await put('images/notes.txt');
  // Temporaries and hidden files a scan must ignore.
  await put('fedora.iso.partial');
  await put('.upload-3f9c.iso');
  await put('.hidden/inside.iso');
  await put('images/jammy.qcow2.part');
  // A VM's own files, at the root's vms/: never content. A vms/ deeper down is an ordinary directory.
  await put('vms/web/seed.iso');
  await put('vms/web/disk.qcow2');
  await put('vms/loose.iso');
  await put('library/vms/kept.iso');
  // Deeper than the default depth of 8 directory levels.
  await put('a/b/c/d/e/f/g/h/i/deep.iso');
  await put('a/b/c/d/e/f/g/h/shallow-enough.iso');
  // Links are not followed: one to a file inside, one to a directory outside.
  await mkdir(join(base, 'outside'), { recursive: true });
  await writeFile(join(base, 'outside', 'escape.iso'), 'x');
  await symlink('debian-12.iso', join(root, 'alias.iso'));
  await symlink(join(base, 'outside'), join(root, 'outside-dir'));
});

afterAll(async () => {
  await rm(base, { recursive: true, force: true });
});

describe('listPoolFiles', () => {
  it('lists every ISO in the tree, case-insensitively, with size and mtime, sorted by relPath', async () => {
    const { files } = await listPoolFiles(root, { content: 'iso', maxDepth: 8 });
    expect(files).toEqual([
      { relPath: 'Windows/WIN11.ISO', sizeBytes: 2, modifiedAt: mtime },
      { relPath: 'a/b/c/d/e/f/g/h/shallow-enough.iso', sizeBytes: 1, modifiedAt: mtime },
      { relPath: 'debian-12.iso', sizeBytes: 1000, modifiedAt: mtime },
      { relPath: 'library/vms/kept.iso', sizeBytes: 1, modifiedAt: mtime },
      { relPath: 'linux/ubuntu/24.04/ubuntu-24.04-live-server-amd64.iso', sizeBytes: 1, modifiedAt: mtime },
    ]);
  });

  it('orders names that sort around "/" exactly as their relPaths sort, blocking or not', async () => {
    const tricky = await realpath(await mkdtemp(join(tmpdir(), 'quantix-order-')));
    try {
      // '.', '-', ' ' and '!' sort before '/', 'A' before 'a': a directory `a` lists after `a.iso`.
      const paths = ['a.iso', 'a/x.iso', 'a-b/y.iso', 'a b.iso', 'a.b/z.iso', 'A.iso', 'a!/w.iso', 'ab/v.iso', 'b.iso'];
      for (const relPath of paths) {
        await mkdir(join(tricky, relPath, '..'), { recursive: true });
        await writeFile(join(tricky, relPath), 'x');
      }
      const sorted = [...paths].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
      for (const blockingStat of [true, false]) {
        const { files } = await listPoolFiles(tricky, { content: 'iso', maxDepth: 4, blockingStat });
        expect(files.map((f) => f.relPath)).toEqual(sorted);
      }
    } finally {
      await rm(tricky, { recursive: true, force: true });
    }
  });

  it("never lists a VM's own files (vms/ at the root), nor reports them as skipped", async () => {
    for (const content of ['iso', 'images'] as const) {
      const { files, skipped } = await listPoolFiles(root, { content, maxDepth: 8 });
      expect(files.map((f) => f.relPath).filter((p) => p.startsWith('vms/'))).toEqual([]);
      expect(skipped.map((s) => s.relPath).filter((p) => p.startsWith('vms'))).toEqual([]);
    }
    const flat = await listPoolFiles(root, { content: 'iso', maxDepth: 0 });
    expect(flat.skipped.map((s) => s.relPath)).not.toContain('vms');
  });

  it('lists disk images (qcow2, raw, img) and nothing else for the images content type', async () => {
    const { files } = await listPoolFiles(root, { content: 'images', maxDepth: 8 });
    expect(files.map((f) => f.relPath)).toEqual(['images/disk.raw', 'images/floppy.img', 'images/jammy.qcow2']);
  });

  it('ignores partial downloads, uploads in progress and hidden files', async () => {
    const { files, skipped } = await listPoolFiles(root, { content: 'iso', maxDepth: 8 });
    const names = files.map((f) => f.relPath).join(' ');
    expect(names).not.toMatch(/partial|upload|hidden/);
    expect(skipped.map((s) => s.relPath).join(' ')).not.toMatch(/partial|upload|hidden/);
  });

  it('stops at the depth limit and reports the directories it did not enter', async () => {
    const deep = await listPoolFiles(root, { content: 'iso', maxDepth: 8 });
    expect(deep.skipped).toContainEqual({ relPath: 'a/b/c/d/e/f/g/h/i', reason: 'deeper than maxDepth 8' });
    const flat = await listPoolFiles(root, { content: 'iso', maxDepth: 0 });
    expect(flat.files.map((f) => f.relPath)).toEqual(['debian-12.iso']);
    expect(flat.skipped.map((s) => s.relPath)).toEqual([
      'Windows',
      'a',
      'alias.iso',
      'images',
      'library',
      'linux',
      'outside-dir',
    ]);
  });

  it('does not follow symbolic links, and says so for links that look like content or lead to directories', async () => {
    const { files, skipped } = await listPoolFiles(root, { content: 'iso', maxDepth: 8 });
    expect(files.map((f) => f.relPath)).not.toContain('alias.iso');
    expect(files.map((f) => f.relPath).join(' ')).not.toContain('escape');
    expect(skipped).toContainEqual({ relPath: 'alias.iso', reason: 'symbolic link, not followed' });
    // Rows under a linked directory are then known to be unlooked-at, not gone.
    expect(skipped).toContainEqual({ relPath: 'outside-dir', reason: 'symbolic link to a directory, not followed' });
  });

  it('reports files and directories whose names are not UTF-8 as skipped, for someone to rename', async () => {
    // Latin-1 "café.iso" and a directory named with a 0xff byte: legal on Linux, no relPath can hold them.
    const odd = join(base, 'latin1');
    await mkdir(odd);
    const named = (...parts: (string | number[])[]) =>
      Buffer.concat([
        Buffer.from(`${odd}/`),
        ...parts.map((p) => (typeof p === 'string' ? Buffer.from(p) : Buffer.from(p))),
      ]);
    await writeFile(named('caf', [0xe9], '.iso'), 'x');
    await mkdir(named('dir', [0xff]));
    await writeFile(named('dir', [0xff], '/in.iso'), 'x');
    await writeFile(join(odd, 'ok.iso'), 'x');
    await writeFile(join(odd, 'caf\uFFFD-real.iso'), 'x'); // U+FFFD spelled in valid UTF-8 is a name like any
    const reason = 'name is not valid UTF-8; rename it to have it listed';
    for (const blockingStat of [true, false]) {
      const { files, skipped } = await listPoolFiles(odd, { content: 'iso', maxDepth: 8, blockingStat });
      expect(files.map((f) => f.relPath)).toEqual(['caf\uFFFD-real.iso', 'ok.iso']);
      expect(skipped).toEqual([
        { relPath: 'caf\uFFFD.iso', reason },
        { relPath: 'dir\uFFFD', reason },
      ]);
    }
  });

  it('lists the same files with thread-pool stats (network filesystems) as with blocking ones', async () => {
    const blocking = await listPoolFiles(root, { content: 'iso', maxDepth: 8, blockingStat: true });
    const threaded = await listPoolFiles(root, { content: 'iso', maxDepth: 8, blockingStat: false });
    expect(threaded).toEqual(blocking);
    expect(threaded.files).toHaveLength(5);
  });

  it('tells local filesystems from network ones by statfs type, and counts an unknown one as network', async () => {
    expect(await isOnNetworkFilesystem(root)).toBe(false);
    expect(await isOnNetworkFilesystem('/dev/shm')).toBe(false);
    expect(await isOnNetworkFilesystem(join(base, 'not-there'))).toBe(true);
  });

  it('reports a missing pool directory as POOL_UNAVAILABLE', async () => {
    await expect(listPoolFiles(join(base, 'missing'), { content: 'iso', maxDepth: 8 })).rejects.toMatchObject({
      code: ErrorCode.POOL_UNAVAILABLE,
      message: expect.stringContaining('does not exist'),
    });
  });

  it('stops when its AbortSignal fires', async () => {
    await expect(listPoolFiles(root, { content: 'iso', maxDepth: 8, signal: AbortSignal.abort() })).rejects.toThrow();
  });

  it('lists the same files as find(1) on a larger tree', async () => {
    const tree = join(base, 'many');
    for (let d = 0; d < 20; d++) {
      await mkdir(join(tree, `d${d}`, `sub${d % 3}`), { recursive: true });
      for (let f = 0; f < 25; f++) {
        await writeFile(join(tree, `d${d}`, f % 2 ? `f${f}.iso` : `f${f}.txt`), '');
        await writeFile(join(tree, `d${d}`, `sub${d % 3}`, `g${f}.iso`), '');
      }
    }
    const { execFileSync } = await import('node:child_process');
    const found = execFileSync('find', [tree, '-type', 'f', '-iname', '*.iso', '-printf', '%P\n'], { encoding: 'utf8' })
      .trim()
      .split('\n')
      .sort();
    const { files } = await listPoolFiles(tree, { content: 'iso', maxDepth: 8 });
    expect(files.map((f) => f.relPath).sort()).toEqual(found);
    expect(found).toHaveLength(20 * 12 + 20 * 25);
  });
});

describe('listPoolFiles with the reads of the last listing', () => {
  // Reads are kept once a directory has been still for 40 ms here (3 s by default), so the test
  // waits that long after each change before the listing that is to keep its reads.
  const SETTLED_MS = 40;
  const settle = () => new Promise((resolve) => setTimeout(resolve, SETTLED_MS + 20));
  let tree: string;
  const list = (reads: DirectoryReads, blockingStat = true) =>
    listPoolFiles(tree, { content: 'iso', maxDepth: 8, reads, blockingStat });
  const names = async (reads: DirectoryReads) => (await list(reads)).files.map((f) => f.relPath);

  beforeAll(async () => {
    tree = join(base, 'warm');
    await mkdir(join(tree, 'a', 'b'), { recursive: true });
    await mkdir(join(tree, 'c'));
    await writeFile(join(tree, 'a', 'x.iso'), 'x');
    await writeFile(join(tree, 'a', 'b', 'y.iso'), 'y');
    await writeFile(join(tree, 'c', 'z.iso'), 'z');
    await settle();
  });

  it('reads again only the directories that changed, and sees every change', async () => {
    const reads = new DirectoryReads(SETTLED_MS);
    const first = await list(reads);
    expect(reads.lastReused).toBe(0);
    expect(await list(reads)).toEqual(first);
    expect(reads.lastReused).toBe(4); // the root, a, a/b and c

    // A file added: its directory is read again, the three others are not.
    await writeFile(join(tree, 'a', 'new.iso'), 'n');
    await settle();
    expect(await names(reads)).toEqual(['a/b/y.iso', 'a/new.iso', 'a/x.iso', 'c/z.iso']);
    expect(reads.lastReused).toBe(3);

    // Renamed and removed files, and a directory that became a file's place.
    await rename(join(tree, 'c', 'z.iso'), join(tree, 'c', 'w.iso'));
    await rm(join(tree, 'a', 'b'), { recursive: true });
    await writeFile(join(tree, 'a', 'b'), 'now a file');
    await settle();
    expect(await names(reads)).toEqual(['a/new.iso', 'a/x.iso', 'c/w.iso']);

    // A file rewritten in place changes no directory: its new size is seen all the same.
    await writeFile(join(tree, 'a', 'x.iso'), 'longer now');
    const listing = await list(reads);
    expect(reads.lastReused).toBe(3);
    expect(listing.files.find((f) => f.relPath === 'a/x.iso')?.sizeBytes).toBe(10);
  });

  it('sees a file added to a directory whose mtime was put back afterwards (rsync -t, tar)', async () => {
    const reads = new DirectoryReads(SETTLED_MS);
    // A whole second, which utimes puts back exactly.
    const old = new Date('2024-05-01T12:00:00Z');
    await utimes(join(tree, 'c'), old, old);
    await settle();
    await list(reads);
    await list(reads);
    expect(reads.lastReused).toBe(reads.of(tree)?.size); // every directory as last read
    await writeFile(join(tree, 'c', 'restored.iso'), 'r');
    await utimes(join(tree, 'c'), old, old);
    expect((await stat(join(tree, 'c'))).mtime).toEqual(old);
    expect(await names(reads)).toContain('c/restored.iso');
  });

  it('lists each content type of a reused directory as its own, and reports a refused name every time', async () => {
    const mixed = join(base, 'mixed');
    await mkdir(mixed);
    await writeFile(join(mixed, 'disc.iso'), 'i');
    await writeFile(join(mixed, 'disk.qcow2'), 'q');
    await writeFile(join(mixed, 'back\\slash.iso'), 'b');
    await settle();
    const reads = new DirectoryReads(SETTLED_MS);
    const listMixed = (content: 'iso' | 'images') => listPoolFiles(mixed, { content, maxDepth: 8, reads });
    for (let round = 0; round < 2; round++) {
      const isos = await listMixed('iso');
      expect(isos.files.map((f) => f.relPath)).toEqual(['disc.iso']);
      expect(isos.skipped.map((f) => f.relPath)).toEqual(['back\\slash.iso']);
      expect((await listMixed('images')).files.map((f) => f.relPath)).toEqual(['disk.qcow2']);
      expect((await listMixed('iso')).files.map((f) => f.relPath)).toEqual(['disc.iso']);
    }
    expect(reads.lastReused).toBe(1);
  });

  it('keeps no read of a directory that changed moments before it was read', async () => {
    const reads = new DirectoryReads(); // 3 s
    await writeFile(join(tree, 'c', 'fresh.iso'), 'f');
    expect(await names(reads)).toContain('c/fresh.iso');
    // A change later in the same clock tick could leave c's times as they are now: c is read again next time.
    expect(reads.of(tree)?.has(join(tree, 'c'))).toBe(false);
  });

  it('keeps nothing for a listing with thread-pool stats (a network filesystem, another clock)', async () => {
    const reads = new DirectoryReads(SETTLED_MS);
    await list(reads, false);
    expect(reads.of(tree)).toBeUndefined();
  });
});
