import { mkdir, mkdtemp, realpath, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ErrorCode, isQuantixError } from '@quantix/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isWithin, resolveInPool } from './paths.js';

// A real directory tree with real symbolic links, inside and out of the pool root.
let base: string;
let root: string;
let outside: string;

beforeAll(async () => {
  base = await realpath(await mkdtemp(join(tmpdir(), 'quantix-paths-')));
  root = join(base, 'pool');
  outside = join(base, 'outside');
  await mkdir(join(root, 'iso', 'linux'), { recursive: true });
  await mkdir(outside, { recursive: true });
  await writeFile(join(root, 'iso', 'linux', 'debian.iso'), 'iso');
  await writeFile(join(outside, 'secret'), 'secret');
  await symlink(join(outside, 'secret'), join(root, 'file-link-out')); // file link out, absolute
  await symlink('../outside', join(root, 'dir-link-out')); // directory link out, relative
  await symlink(join(outside, 'not-there'), join(root, 'dangling-out')); // dangling link out
  await symlink('iso/linux', join(root, 'dir-link-in')); // stays inside: allowed
  await symlink('linux/debian.iso', join(root, 'iso', 'file-link-in'));
  await symlink('dir-link-out', join(root, 'chain-out')); // link to a link that leaves
  await symlink('../../pool/iso', join(root, 'iso', 'out-and-back')); // leaves and comes back: inside
  await symlink('loop-b', join(root, 'loop-a'));
  await symlink('loop-a', join(root, 'loop-b'));
});

afterAll(async () => {
  await rm(base, { recursive: true, force: true });
});

async function refusal(relPath: string): Promise<string | undefined> {
  try {
    await resolveInPool(root, relPath);
    return undefined;
  } catch (error) {
    if (isQuantixError(error)) return error.code;
    throw error;
  }
}

describe('resolveInPool', () => {
  it('resolves a relPath to an absolute path under the pool root', async () => {
    expect(await resolveInPool(root, 'iso/linux/debian.iso')).toBe(join(root, 'iso/linux/debian.iso'));
    expect(await resolveInPool(root, 'new/dir/file.qcow2')).toBe(join(root, 'new/dir/file.qcow2'));
  });

  it.each([
    ['../outside/secret', "a '..' segment"],
    ['iso/../../outside/secret', "'..' in the middle"],
    ['/etc/passwd', 'an absolute path'],
    ['file-link-out', 'a symbolic link to a file outside the root'],
    ['dir-link-out/secret', 'a symbolic link to a directory outside the root'],
    ['dir-link-out/new-file', 'a new file under a directory link outside the root'],
    ['dangling-out', 'a dangling link pointing outside the root'],
    ['chain-out/secret', 'a chain of links that ends outside'],
    ['loop-a', 'a symbolic link loop'],
  ])('refuses %s (%s) with PATH_ESCAPES_POOL', async (relPath) => {
    expect(await refusal(relPath)).toBe(ErrorCode.PATH_ESCAPES_POOL);
  });

  it('allows symbolic links whose targets stay inside the pool', async () => {
    expect(await resolveInPool(root, 'dir-link-in/debian.iso')).toBe(join(root, 'dir-link-in/debian.iso'));
    expect(await resolveInPool(root, 'iso/file-link-in')).toBe(join(root, 'iso/file-link-in'));
    expect(await resolveInPool(root, 'iso/out-and-back/linux/debian.iso')).toBe(
      join(root, 'iso/out-and-back/linux/debian.iso'),
    );
  });

  it('confines against the real root when the configured root is itself a link', async () => {
    const linkedRoot = join(base, 'pool-link');
    await symlink(root, linkedRoot);
    expect(await resolveInPool(linkedRoot, 'iso/linux/debian.iso')).toBe(join(linkedRoot, 'iso/linux/debian.iso'));
    await expect(resolveInPool(linkedRoot, 'dir-link-out/secret')).rejects.toMatchObject({
      code: ErrorCode.PATH_ESCAPES_POOL,
    });
  });

  it('reports a missing pool directory as POOL_UNAVAILABLE', async () => {
    await expect(resolveInPool(join(base, 'nope'), 'a.iso')).rejects.toMatchObject({
      code: ErrorCode.POOL_UNAVAILABLE,
    });
  });
});

describe('isWithin', () => {
  it('does not take a sibling with the same prefix for a subdirectory', () => {
    expect(isWithin('/srv/pool', '/srv/pool/a')).toBe(true);
    expect(isWithin('/srv/pool', '/srv/pool')).toBe(true);
    expect(isWithin('/srv/pool', '/srv/pool2/a')).toBe(false);
    expect(isWithin('/', '/anything')).toBe(true);
  });
});
