import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, realpath, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ErrorCode } from '@quantix/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LocalStorageBackend } from './backend.js';
import { testPool } from './testing.js';

// Real tmpfs mounts (this needs root, as CI has): a read-only one and one of a known size.
let base: string;
const mounted: string[] = [];
const backend = new LocalStorageBackend();

const pool = (config: Record<string, unknown>) => testPool('local', config, { id: 'tmpfs-pool' });

async function tmpfs(name: string, options: string): Promise<string> {
  const dir = join(base, name);
  await mkdir(dir, { recursive: true });
  execFileSync('mount', ['-t', 'tmpfs', '-o', options, 'quantix-test', dir]);
  mounted.push(dir);
  return dir;
}

beforeAll(async () => {
  base = await realpath(await mkdtemp(join(tmpdir(), 'quantix-local-mounts-')));
});

afterAll(async () => {
  for (const dir of mounted.reverse()) execFileSync('umount', [dir]);
  await rm(base, { recursive: true, force: true });
});

describe('LocalStorageBackend on real mounts', () => {
  it('refuses to activate a read-only directory because it is not writable, unless the pool is readOnly', async () => {
    const dir = await tmpfs('ro', 'ro,size=1m');
    await expect(backend.activate({ pool: pool({ path: dir }) })).rejects.toMatchObject({
      code: ErrorCode.POOL_UNAVAILABLE,
      message: expect.stringMatching(/not writable.*read-only file system/i),
    });
    const status = await backend.activate({ pool: pool({ path: dir, readOnly: true }) });
    expect(status.available).toBe(true);
  });

  it('reports the exact size of a 64 MiB filesystem as capacity, as df does', async () => {
    const dir = await tmpfs('sized', 'size=64m');
    const status = await backend.status({ pool: pool({ path: dir }) });
    const [size, avail] = (
      execFileSync('df', ['-B1', '--output=size,avail', dir], { encoding: 'utf8' }).split('\n')[1] ?? ''
    )
      .trim()
      .split(/\s+/)
      .map(Number);
    expect(status.capacityBytes).toBe(64 * 1024 * 1024);
    expect(status.capacityBytes).toBe(size);
    expect(status.availableBytes).toBe(avail);
  });
});
