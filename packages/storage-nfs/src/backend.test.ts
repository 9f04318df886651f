import { mkdir, mkdtemp, readdir, realpath, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  createPoolRootPolicy,
  createQuantix,
  ErrorCode,
  LocalCommandRunner,
  PoolTypeToken,
  StorageBackendToken,
} from '@quantix/core';
import { createStorageLocalPlugin, storageLocalPlugin } from '@quantix/storage-local';
import { testPool } from '@quantix/storage-local/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NfsStorageBackend } from './backend.js';
import { createStorageNfsPlugin, storageNfsPlugin } from './plugin.js';

// This kernel cannot mount NFS, so where a test needs an NFS mount to exist, the mount table is
// a fixture file in the real mountinfo format naming a real directory (no other stand-in exists).
// Everything else is real: directories, files, the live /proc/self/mountinfo, the command runner.

let base: string;
const runner = new LocalCommandRunner();

const nfsPool = (config: Record<string, unknown>, id = 'qvds01') => testPool('nfs', config, { id });

/** A mountinfo file listing `source` as an nfs4 mount at `mountPoint`. */
async function mountTable(name: string, lines: string[]): Promise<string> {
  const path = join(base, `${name}.mountinfo`);
  const root = '27 1 254:0 / / rw,relatime - ext4 /dev/vda rw';
  await writeFile(path, `${[root, ...lines].join('\n')}\n`);
  return path;
}
const nfs4Line = (id: number, mountPoint: string, source: string, addr: string) =>
  `${id} 27 0:${id} / ${mountPoint.replaceAll(' ', '\\040')} rw,relatime shared:${id} - nfs4 ${source} rw,vers=4.2,hard,proto=tcp,timeo=600,retrans=2,sec=sys,clientaddr=10.0.0.7,local_lock=none,addr=${addr}`;

beforeAll(async () => {
  base = await realpath(await mkdtemp(join(tmpdir(), 'quantix-nfs-unit-')));
});
afterAll(async () => {
  await runner.close();
  await rm(base, { recursive: true, force: true });
});

describe('NfsStorageBackend without a mount', () => {
  const backend = new NfsStorageBackend({ runner, mountRoot: '/nonexistent/quantix-pools' });
  const pool = nfsPool({ server: '192.0.2.1', export: '/export/never-mounted' });

  it('reports a pool whose export is not mounted as unavailable, with the reason', async () => {
    const status = await backend.status({ pool });
    expect(status).toMatchObject({ available: false, rootPath: null, capacityBytes: null });
    expect(status.reason).toMatch(/192\.0\.2\.1:\/export\/never-mounted .*is not mounted on this node/);
  });

  it('refuses to list, resolve or allocate in a pool that is not mounted, with POOL_UNAVAILABLE', async () => {
    await expect(backend.list({ pool, content: 'iso' })).rejects.toMatchObject({ code: ErrorCode.POOL_UNAVAILABLE });
    await expect(backend.resolve({ pool, relPath: 'a.iso' })).rejects.toMatchObject({
      code: ErrorCode.POOL_UNAVAILABLE,
    });
    await expect(backend.allocate({ pool, relPath: 'a.iso' })).rejects.toMatchObject({
      code: ErrorCode.POOL_UNAVAILABLE,
    });
  });

  it('does nothing on deactivate when the pool is not mounted', async () => {
    await expect(backend.deactivate({ pool })).resolves.toBeUndefined();
  });

  it('refuses a pool config without server or export, with INVALID_INPUT', async () => {
    await expect(backend.status({ pool: nfsPool({ export: '/e' }) })).rejects.toMatchObject({
      code: ErrorCode.INVALID_INPUT,
    });
  });
});

describe('NfsStorageBackend with a root policy', () => {
  it('refuses an export mounted outside the allowed roots, before probing or listing it', async () => {
    const outside = join(base, 'policy-outside', 'mnt');
    await mkdir(outside, { recursive: true });
    await writeFile(join(outside, 'a.iso'), 'iso');
    const table = await mountTable('policy', [nfs4Line(130, outside, '10.0.0.9:/export/p', '10.0.0.9')]);
    const allowed = join(base, 'policy-allowed');
    const backend = new NfsStorageBackend({
      runner,
      mountInfoPath: table,
      mountRoot: join(allowed, 'pools'),
      rootPolicy: createPoolRootPolicy({ allowedRoots: [allowed] }),
    });
    const pool = nfsPool({ server: '10.0.0.9', export: '/export/p' });
    await expect(backend.activate({ pool })).rejects.toMatchObject({ code: ErrorCode.POOL_ROOT_NOT_ALLOWED });
    await expect(backend.status({ pool })).rejects.toMatchObject({ code: ErrorCode.POOL_ROOT_NOT_ALLOWED });
    await expect(backend.list({ pool, content: 'iso' })).rejects.toMatchObject({
      code: ErrorCode.POOL_ROOT_NOT_ALLOWED,
    });
    // No write probe was left or made there: only the file that was.
    expect(await readdir(outside)).toEqual(['a.iso']);
  });

  it('refuses to make and mount on a mount point outside the allowed roots', async () => {
    const table = await mountTable('policy-none', []);
    const backend = new NfsStorageBackend({
      runner,
      mountInfoPath: table,
      rootPolicy: createPoolRootPolicy({ allowedRoots: [join(base, 'policy-allowed')] }),
    });
    const mountPoint = join(base, 'policy-elsewhere', 'mp');
    const pool = nfsPool({ server: '10.0.0.9', export: '/export/p', mountPoint });
    await expect(backend.activate({ pool })).rejects.toMatchObject({ code: ErrorCode.POOL_ROOT_NOT_ALLOWED });
    await expect(stat(mountPoint)).rejects.toThrow();
    await expect(
      backend.activate({ pool: nfsPool({ server: '10.0.0.9', export: '/export/p', mountPoint: '/etc/nfs' }) }),
    ).rejects.toMatchObject({ code: ErrorCode.POOL_ROOT_NOT_ALLOWED });
  });
});

describe('NfsStorageBackend on an export mounted somewhere else', () => {
  let exportDir: string;
  let backend: NfsStorageBackend;
  const pool = nfsPool({ server: '10.0.0.5', export: '/export/qVDS01' });

  beforeAll(async () => {
    // The LimiQuantix case: mounted at /srv/nfs/qVDS01-like path, not at the standard pool path.
    exportDir = join(base, 'srv', 'nfs', 'qVDS 01');
    await mkdir(join(exportDir, 'iso', 'linux'), { recursive: true });
    await writeFile(join(exportDir, 'iso', 'linux', 'debian-12.4.0-amd64-netinst.iso'), 'iso');
    await writeFile(join(exportDir, 'iso', 'WIN11.ISO'), 'iso');
    await writeFile(join(exportDir, 'iso', 'fedora.iso.partial'), 'partial');
    await writeFile(join(exportDir, 'jammy.qcow2'), 'qcow2');
    const table = await mountTable('elsewhere', [nfs4Line(120, exportDir, '10.0.0.5:/export/qVDS01/', '10.0.0.5')]);
    backend = new NfsStorageBackend({ runner, mountInfoPath: table, mountRoot: join(base, 'pools') });
  });

  it('lists the ISOs of the pool wherever its export is mounted, ignoring partial downloads', async () => {
    const { files } = await backend.list({ pool, content: 'iso' });
    expect(files.map((f) => f.relPath)).toEqual(['iso/WIN11.ISO', 'iso/linux/debian-12.4.0-amd64-netinst.iso']);
  });

  it('resolves relPaths under the discovered mount point and refuses escapes', async () => {
    expect(await backend.resolve({ pool, relPath: 'jammy.qcow2' })).toBe(join(exportDir, 'jammy.qcow2'));
    await expect(backend.resolve({ pool, relPath: '../escape' })).rejects.toMatchObject({
      code: ErrorCode.PATH_ESCAPES_POOL,
    });
  });

  it("does not unmount a mount that is not at the pool's own mount point", async () => {
    // Would fail loudly if it ran umount on the fixture's directory, which is not a mount here.
    await expect(backend.deactivate({ pool })).resolves.toBeUndefined();
  });

  it('discovers the mount as the defined pool, and other NFS mounts as undefined ones', async () => {
    const table = await mountTable('discover', [
      nfs4Line(120, exportDir, '10.0.0.5:/export/qVDS01', '10.0.0.5'),
      nfs4Line(121, '/mnt/other', '[fd00::1]:/export', 'fd00::1'),
    ]);
    const discovering = new NfsStorageBackend({ runner, mountInfoPath: table });
    const localPool = { ...nfsPool({ path: '/x' }, 'local-one'), type: 'local' };
    const found = await discovering.discover({
      pools: [pool, localPool, nfsPool({ server: 'nas', export: '/none' }, 'unmounted')],
    });
    expect(found).toEqual([
      {
        poolId: 'qvds01',
        type: 'nfs',
        rootPath: exportDir,
        config: { server: '10.0.0.5', export: '/export/qVDS01', version: '4.2', mountPoint: exportDir, fsType: 'nfs4' },
      },
      {
        poolId: null,
        type: 'nfs',
        rootPath: '/mnt/other',
        config: { server: 'fd00::1', export: '/export', version: '4.2', mountPoint: '/mnt/other', fsType: 'nfs4' },
      },
    ]);
  });

  it("refuses to mount over another filesystem at the pool's mount point, saying what is there", async () => {
    const mountPoint = join(base, 'busy');
    const table = await mountTable('busy', [`130 27 0:130 / ${mountPoint} rw - tmpfs scratch rw`]);
    const busy = new NfsStorageBackend({ runner, mountInfoPath: table });
    await expect(
      busy.activate({ pool: nfsPool({ server: '127.0.0.1', export: '/srv/export', mountPoint }) }),
    ).rejects.toMatchObject({
      code: ErrorCode.POOL_MOUNT_FAILED,
      message: expect.stringContaining('scratch (tmpfs) is already mounted there'),
    });
  });
});

describe('storageNfsPlugin', () => {
  it("provides the 'nfs' backend beside the 'local' one", async () => {
    const quantix = await createQuantix({
      database: { client: 'pglite' },
      plugins: [storageLocalPlugin, storageNfsPlugin],
    });
    try {
      expect(quantix.getAll(StorageBackendToken).map((b) => b.type)).toEqual(['local', 'nfs']);
      expect(quantix.getAll(PoolTypeToken).map((t) => t.type)).toEqual(['local', 'nfs']);
    } finally {
      await quantix.close();
    }
  });

  it('provides only the pool types to a control plane (backend: false), with its mount root', async () => {
    const quantix = await createQuantix({
      database: { client: 'pglite' },
      plugins: [
        createStorageLocalPlugin({ backend: false }),
        createStorageNfsPlugin({ backend: false, mountRoot: '/srv/mnt' }),
      ],
    });
    try {
      expect(quantix.getAll(StorageBackendToken)).toEqual([]);
      const nfs = quantix.getAll(PoolTypeToken).find((t) => t.type === 'nfs');
      expect(nfs?.roots(nfs.configSchema.parse({ server: 'nas', export: '/e' }), 'iso')).toEqual(['/srv/mnt/iso']);
    } finally {
      await quantix.close();
    }
  });
});
