import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, readFile, realpath, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  callBackend,
  createPoolRootPolicy,
  createQuantix,
  ErrorCode,
  PoolTypeToken,
  StorageBackendToken,
} from '@quantix/core';
import { errorCodeOf } from '@quantix/core/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LocalStorageBackend } from './backend.js';
import { createStorageLocalPlugin, storageLocalPlugin } from './plugin.js';
import { testPool } from './testing.js';

let base: string;
const backend = new LocalStorageBackend();

const localPool = (config: Record<string, unknown>, id = 'pool-1') => testPool('local', config, { id });

/** What df(1) says about a directory: total size and available bytes. */
function df(dir: string): { size: number; avail: number } {
  const out = execFileSync('df', ['-B1', '--output=size,avail', dir], { encoding: 'utf8' });
  const [size, avail] = (out.trim().split('\n')[1] ?? '').trim().split(/\s+/).map(Number);
  return { size: size as number, avail: avail as number };
}

beforeAll(async () => {
  base = await realpath(await mkdtemp(join(tmpdir(), 'quantix-local-')));
});
afterAll(async () => {
  await rm(base, { recursive: true, force: true });
});

describe('LocalStorageBackend', () => {
  it('reports the capacity and free space that df reports for the same directory', async () => {
    for (const dir of [base, '/dev/shm']) {
      const status = await backend.status({ pool: localPool({ path: dir }) });
      const expected = df(dir);
      expect(status).toMatchObject({ available: true, reason: null, rootPath: dir, capacityBytes: expected.size });
      // Free space moves while other tests write; it must agree to within a few MiB.
      expect(Math.abs((status.availableBytes as number) - expected.avail)).toBeLessThan(8 * 1024 * 1024);
      expect(status.usedBytes).toBeGreaterThanOrEqual(0);
      expect(status.usedBytes as number).toBeLessThanOrEqual(status.capacityBytes as number);
    }
  });

  it('creates the pool directory on activate when the config says create: true', async () => {
    const path = join(base, 'new', 'nested', 'pool');
    const status = await backend.activate({ pool: localPool({ path, create: true }) });
    expect((await stat(path)).isDirectory()).toBe(true);
    expect(status).toMatchObject({ available: true, rootPath: path });
  });

  it('refuses to activate a missing directory without create: true, saying what to do', async () => {
    const path = join(base, 'absent');
    await expect(backend.activate({ pool: localPool({ path }) })).rejects.toMatchObject({
      code: ErrorCode.POOL_UNAVAILABLE,
      message: expect.stringContaining('create: true'),
    });
    await expect(stat(path)).rejects.toThrow();
  });

  it('refuses to activate a path that is a file', async () => {
    const path = join(base, 'a-file');
    await writeFile(path, '');
    expect(await errorCodeOf(backend.activate({ pool: localPool({ path, create: true }) }))).toBe(
      ErrorCode.POOL_UNAVAILABLE,
    );
  });

  it('leaves no probe file behind after checking the directory is writable', async () => {
    const path = join(base, 'probe-check');
    await backend.activate({ pool: localPool({ path, create: true }) });
    expect(execFileSync('ls', ['-A', path], { encoding: 'utf8' })).toBe('');
  });

  it('reports a missing directory as unavailable with the reason, without throwing', async () => {
    const status = await backend.status({ pool: localPool({ path: join(base, 'gone') }) });
    expect(status).toMatchObject({ available: false, capacityBytes: null });
    expect(status.reason).toContain('does not exist');
  });

  it('refuses a config without a path, or with a misspelled key, with INVALID_INPUT naming it', async () => {
    expect(await errorCodeOf(backend.status({ pool: localPool({}) }))).toBe(ErrorCode.INVALID_INPUT);
    await expect(backend.activate({ pool: localPool({ path: base, craete: true }) })).rejects.toMatchObject({
      code: ErrorCode.INVALID_INPUT,
      message: expect.stringContaining('craete'),
    });
    expect(await errorCodeOf(backend.status({ pool: localPool({ path: base, maxDepth: -1 }) }))).toBe(
      ErrorCode.INVALID_INPUT,
    );
  });

  it('refuses a relative or unnormalized path with POOL_ROOT_NOT_ALLOWED, even without a root policy', async () => {
    for (const path of ['relative/dir', `${base}/../..`, `${base}/`, `${base}//x`]) {
      expect(await errorCodeOf(backend.activate({ pool: localPool({ path, create: true }) }))).toBe(
        ErrorCode.POOL_ROOT_NOT_ALLOWED,
      );
    }
  });

  it('with a root policy, refuses pools outside it and links out of it, before creating or reading anything', async () => {
    const allowed = join(base, 'policy', 'allowed');
    await mkdir(join(allowed, 'isos'), { recursive: true });
    await writeFile(join(allowed, 'isos', 'a.iso'), 'x');
    await symlink('/etc', join(allowed, 'etc-link'));
    await symlink(join(base, 'policy'), join(allowed, 'up-link'));
    const guarded = new LocalStorageBackend({ rootPolicy: createPoolRootPolicy({ allowedRoots: [allowed] }) });
    for (const path of ['/', '/etc', join(base, 'policy', 'beside'), join(allowed, 'etc-link')]) {
      const pool = localPool({ path, create: true });
      expect(await errorCodeOf(guarded.activate({ pool }))).toBe(ErrorCode.POOL_ROOT_NOT_ALLOWED);
      expect(await errorCodeOf(guarded.status({ pool }))).toBe(ErrorCode.POOL_ROOT_NOT_ALLOWED);
      expect(await errorCodeOf(guarded.list({ pool, content: 'iso' }))).toBe(ErrorCode.POOL_ROOT_NOT_ALLOWED);
    }
    // create: true through a link to outside makes nothing there.
    const through = localPool({ path: join(allowed, 'up-link', 'made-outside'), create: true });
    expect(await errorCodeOf(guarded.activate({ pool: through }))).toBe(ErrorCode.POOL_ROOT_NOT_ALLOWED);
    await expect(stat(join(base, 'policy', 'made-outside'))).rejects.toThrow();
    await expect(stat(join(base, 'policy', 'beside'))).rejects.toThrow();
    // Inside the policy all is as without one.
    const inside = localPool({ path: join(allowed, 'isos') });
    expect((await guarded.activate({ pool: inside })).available).toBe(true);
    expect((await guarded.list({ pool: inside, content: 'iso' })).files.map((f) => f.relPath)).toEqual(['a.iso']);
  });

  it('allocates a new file, creating its directories, and never overwrites one', async () => {
    const path = join(base, 'alloc');
    const pool = localPool({ path, create: true });
    await backend.activate({ pool });
    const file = await backend.allocate({ pool, relPath: 'vm/disk0.qcow2', sizeBytes: 1024 * 1024 });
    expect(file).toMatchObject({ relPath: 'vm/disk0.qcow2', sizeBytes: 1024 * 1024 });
    expect((await stat(join(path, 'vm/disk0.qcow2'))).size).toBe(1024 * 1024);
    await writeFile(join(path, 'vm/disk0.qcow2'), 'precious');
    expect(await errorCodeOf(backend.allocate({ pool, relPath: 'vm/disk0.qcow2' }))).toBe(ErrorCode.ALREADY_EXISTS);
    expect(await readFile(join(path, 'vm/disk0.qcow2'), 'utf8')).toBe('precious');
  });

  it('does not allocate through a link to a file outside the pool', async () => {
    const path = join(base, 'alloc-link');
    await mkdir(path, { recursive: true });
    await writeFile(join(base, 'victim'), 'keep');
    await symlink(join(base, 'victim'), join(path, 'disk.qcow2'));
    expect(await errorCodeOf(backend.allocate({ pool: localPool({ path }), relPath: 'disk.qcow2' }))).toBe(
      ErrorCode.PATH_ESCAPES_POOL,
    );
    expect(await readFile(join(base, 'victim'), 'utf8')).toBe('keep');
  });

  it('removes a file in the pool, and refuses paths outside it, missing files and directories', async () => {
    const path = join(base, 'remove');
    const pool = localPool({ path, create: true });
    await backend.activate({ pool });
    await backend.allocate({ pool, relPath: 'old.iso' });
    await backend.remove({ pool, relPath: 'old.iso' });
    await expect(stat(join(path, 'old.iso'))).rejects.toThrow();

    await writeFile(join(base, 'keep.iso'), 'keep');
    await symlink(base, join(path, 'up'));
    expect(await errorCodeOf(backend.remove({ pool, relPath: '../keep.iso' }))).toBe(ErrorCode.PATH_ESCAPES_POOL);
    expect(await errorCodeOf(backend.remove({ pool, relPath: join(base, 'keep.iso') }))).toBe(
      ErrorCode.PATH_ESCAPES_POOL,
    );
    expect(await errorCodeOf(backend.remove({ pool, relPath: 'up/keep.iso' }))).toBe(ErrorCode.PATH_ESCAPES_POOL);
    expect(await readFile(join(base, 'keep.iso'), 'utf8')).toBe('keep');

    expect(await errorCodeOf(backend.remove({ pool, relPath: 'never-was.iso' }))).toBe(ErrorCode.NOT_FOUND);
    await mkdir(join(path, 'a-dir'));
    expect(await errorCodeOf(backend.remove({ pool, relPath: 'a-dir' }))).toBe(ErrorCode.INVALID_INPUT);
  });

  it('lists with the depth limit from the pool config', async () => {
    const path = join(base, 'depth');
    await mkdir(join(path, 'one', 'two'), { recursive: true });
    await writeFile(join(path, 'top.iso'), '');
    await writeFile(join(path, 'one', 'mid.iso'), '');
    await writeFile(join(path, 'one', 'two', 'low.iso'), '');
    const listing = await backend.list({ pool: localPool({ path, maxDepth: 1 }), content: 'iso' });
    expect(listing.files.map((f) => f.relPath)).toEqual(['one/mid.iso', 'top.iso']);
    expect(listing.skipped).toEqual([{ relPath: 'one/two', reason: 'deeper than maxDepth 1' }]);
  });
});

describe('storageLocalPlugin', () => {
  it("provides the 'local' backend to a Quantix instance, usable through the core's callBackend", async () => {
    const quantix = await createQuantix({ database: { client: 'pglite' }, plugins: [storageLocalPlugin] });
    try {
      const backends = quantix.getAll(StorageBackendToken);
      expect(backends.map((b) => b.type)).toEqual(['local']);
      const pool = localPool({ path: base });
      const status = await callBackend(backends[0]!, 'status', { pool });
      expect(status.available).toBe(true);
      // The core, not the backend, reports operations a backend lacks.
      await expect(callBackend(backends[0]!, 'checkConnection', { pool })).rejects.toMatchObject({
        code: ErrorCode.UNSUPPORTED_OPERATION,
      });
    } finally {
      await quantix.close();
    }
  });

  it("provides the 'local' pool type, and only that with backend: false (a control plane's view)", async () => {
    const full = await createQuantix({ database: { client: 'pglite' }, plugins: [storageLocalPlugin] });
    const typesOnly = await createQuantix({
      database: { client: 'pglite' },
      plugins: [createStorageLocalPlugin({ backend: false })],
    });
    try {
      const [definition] = full.getAll(PoolTypeToken);
      expect(definition?.type).toBe('local');
      expect(definition?.roots(definition.configSchema.parse({ path: '/srv/isos' }), 'p')).toEqual(['/srv/isos']);
      expect(() => definition?.configSchema.parse({ path: '/srv/isos', pth: '/x' })).toThrow();
      expect(typesOnly.getAll(PoolTypeToken).map((t) => t.type)).toEqual(['local']);
      expect(typesOnly.getAll(StorageBackendToken)).toEqual([]);
    } finally {
      await full.close();
      await typesOnly.close();
    }
  });
});
