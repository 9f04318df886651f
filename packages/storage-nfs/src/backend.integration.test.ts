import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdir, mkdtemp, realpath, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type CommandRunner, ErrorCode, isQuantixError, LocalCommandRunner, type QuantixError } from '@quantix/core';
import { testPool } from '@quantix/storage-local/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NfsStorageBackend } from './backend.js';
import { type NfsTestServer, startNfsTestServer } from './testing/ganesha.js';

// A real NFS server: nfs-ganesha on 127.0.0.1, started and stopped by scripts/nfs-server.sh.
// A real mount attempt: mount(8) through the LocalCommandRunner. This kernel has no NFS client,
// so no real NFS mount can exist; where a test needs one, the mount table is a fixture file in
// the real mountinfo format naming the exported directory itself (nothing else stands in for it).

let base: string;
let exportDir: string;
let nfs: NfsTestServer;
const runner = new LocalCommandRunner();

const nfsPool = (config: Record<string, unknown>, id = 'ganesha-pool') => testPool('nfs', config, { id });

/** A mount table in which the ganesha export is mounted (nfs4) at `mountPoint`. */
async function tableWithMount(mountPoint: string): Promise<string> {
  const path = join(base, 'mountinfo');
  await writeFile(
    path,
    [
      '27 1 254:0 / / rw,relatime - ext4 /dev/vda rw',
      `120 27 0:52 / ${mountPoint} rw,relatime shared:62 - nfs4 127.0.0.1:${exportDir} rw,vers=4.2,hard,proto=tcp,timeo=600,retrans=2,sec=sys,clientaddr=127.0.0.1,local_lock=none,addr=127.0.0.1`,
      '',
    ].join('\n'),
  );
  return path;
}

async function failure(promise: Promise<unknown>): Promise<QuantixError> {
  try {
    await promise;
  } catch (error) {
    if (isQuantixError(error)) return error;
    throw error;
  }
  throw new Error('expected a failure');
}

beforeAll(async () => {
  base = await realpath(await mkdtemp(join(tmpdir(), 'quantix-nfs-it-')));
  exportDir = join(base, 'export');
  await mkdir(join(exportDir, 'iso'), { recursive: true });
  await writeFile(join(exportDir, 'iso', 'debian-12.iso'), 'iso');
  nfs = await startNfsTestServer(exportDir);
}, 360_000);

afterAll(async () => {
  await runner.close();
  await nfs?.stop();
  await rm(base, { recursive: true, force: true });
});

describe('NfsStorageBackend against a real NFS server (nfs-ganesha)', () => {
  const backend = () => new NfsStorageBackend({ runner });

  it('reports the running server reachable, through showmount (NFSv3) and rpcinfo (NFSv4)', async () => {
    const v3 = await backend().checkConnection({ pool: nfsPool({ server: '127.0.0.1', export: exportDir }) });
    expect(v3).toMatchObject({ reachable: true, reason: null });
    const v4 = await backend().checkConnection({
      pool: nfsPool({ server: '127.0.0.1', export: exportDir, version: '4.2' }),
    });
    expect(v4).toMatchObject({ reachable: true, reason: null });
    expect(v4.latencyMs).toBeLessThan(10_000);
  });

  it('reports an export the server does not have, naming the exports it does have', async () => {
    const check = await backend().checkConnection({ pool: nfsPool({ server: '127.0.0.1', export: '/not/exported' }) });
    expect(check.reachable).toBe(false);
    expect(check.reason).toContain(`does not export /not/exported (it exports ${exportDir})`);
  });

  it('reports a pool mounted anywhere as available, with the capacity df reports for that directory', async () => {
    // The real runner, noting what it runs: the pool gives no version and is mounted as NFSv4,
    // so the server is asked with rpcinfo (an NFSv4-only server has no mountd for showmount).
    const ran: string[] = [];
    const noting: CommandRunner = {
      target: 'local',
      run: (o) => {
        ran.push(o.argv[0] as string);
        return runner.run(o);
      },
      close: async () => {},
    };
    const nodeBackend = new NfsStorageBackend({ runner: noting, mountInfoPath: await tableWithMount(exportDir) });
    const status = await nodeBackend.status({ pool: nfsPool({ server: '127.0.0.1', export: `${exportDir}/` }) });
    const [size] = (execFileSync('df', ['-B1', '--output=size', exportDir], { encoding: 'utf8' }).split('\n')[1] ?? '')
      .trim()
      .split(/\s+/)
      .map(Number);
    expect(status).toMatchObject({ available: true, reason: null, rootPath: exportDir, capacityBytes: size });
    expect(ran).toEqual(['rpcinfo']);
  });

  it('activates a pool by using the mount that already exists, mounting nothing', async () => {
    const mountRoot = join(base, 'pools');
    const nodeBackend = new NfsStorageBackend({ runner, mountRoot, mountInfoPath: await tableWithMount(exportDir) });
    const pool = nfsPool({ server: '127.0.0.1', export: exportDir });
    const status = await nodeBackend.activate({ pool });
    expect(status).toMatchObject({ available: true, rootPath: exportDir });
    await expect(stat(mountRoot)).rejects.toThrow(); // no mount point was made for it
    const { files } = await nodeBackend.list({ pool, content: 'iso' });
    expect(files.map((f) => f.relPath)).toEqual(['iso/debian-12.iso']);
  });

  it("fails activation of an unmounted pool with POOL_MOUNT_FAILED carrying mount's own message, within its timeout", async () => {
    const mountRoot = join(base, 'pools');
    const nodeBackend = new NfsStorageBackend({ runner, mountRoot, mountTimeoutMs: 30_000 });
    const pool = nfsPool({ server: '127.0.0.1', export: exportDir, version: '4.2' }, 'never-mounted');
    const kernelHasNfs = /\tnfs4?\n/.test(readFileSync('/proc/filesystems', 'utf8'));
    if (kernelHasNfs) {
      // A machine that can mount NFS: the same call must really mount, and deactivate unmount.
      expect((await nodeBackend.activate({ pool })).available).toBe(true);
      await nodeBackend.deactivate({ pool });
      return;
    }
    const started = Date.now();
    const error = await failure(nodeBackend.activate({ pool }));
    expect(Date.now() - started).toBeLessThan(30_000);
    expect(error.code).toBe(ErrorCode.POOL_MOUNT_FAILED);
    const stderr = String(error.details.stderr ?? '').trim();
    expect(stderr).not.toBe('');
    expect(error.message).toContain(stderr); // mount's words, e.g. "mount.nfs: No such device"
    expect(error.message).toContain(`127.0.0.1:${exportDir} at ${join(mountRoot, 'never-mounted')}`);
    expect(error.details.argv).toEqual([
      'mount',
      '-t',
      'nfs',
      '-o',
      'vers=4.2',
      `127.0.0.1:${exportDir}`,
      join(mountRoot, 'never-mounted'),
    ]);
    // The mount point made for the attempt is gone again.
    await expect(stat(join(mountRoot, 'never-mounted'))).rejects.toThrow();
  });

  it('reports a hung server (ganesha stopped with SIGSTOP) unreachable within the timeout, not hanging', async () => {
    const pool = nfsPool({ server: '127.0.0.1', export: exportDir });
    const v4pool = nfsPool({ server: '127.0.0.1', export: exportDir, version: '4' });
    await nfs.pause();
    try {
      for (const p of [pool, v4pool]) {
        const started = Date.now();
        const check = await backend().checkConnection({ pool: p, timeoutMs: 1_500 });
        expect(Date.now() - started).toBeLessThan(1_500 + 1_000);
        expect(check).toMatchObject({ reachable: false, reason: expect.stringContaining('no answer within 1500 ms') });
      }
      const hung = new NfsStorageBackend({
        runner,
        connectionTimeoutMs: 1_500,
        mountInfoPath: await tableWithMount(exportDir),
      });
      const status = await hung.status({ pool });
      expect(status).toMatchObject({ available: false, capacityBytes: null });
      expect(status.reason).toContain('NFS server 127.0.0.1 is unreachable');
    } finally {
      await nfs.resume();
    }
  });

  it('reports a stopped server unreachable within the timeout with the reason, and reachable again once restarted', async () => {
    const pool = nfsPool({ server: '127.0.0.1', export: exportDir });
    await nfs.stop();
    for (const p of [pool, nfsPool({ server: '127.0.0.1', export: exportDir, version: '4.2' })]) {
      const started = Date.now();
      const check = await backend().checkConnection({ pool: p, timeoutMs: 5_000 });
      expect(Date.now() - started).toBeLessThan(5_000 + 1_000);
      expect(check.reachable).toBe(false);
      // showmount/rpcinfo's own words: the NFS programs are gone from rpcbind.
      expect(check.reason).toMatch(/RPC: (Program not registered|Unable to receive|Port mapper failure)/);
    }
    const stopped = new NfsStorageBackend({ runner, mountInfoPath: await tableWithMount(exportDir) });
    const status = await stopped.status({ pool });
    expect(status.available).toBe(false);
    expect(status.reason).toMatch(/unreachable: .*RPC/);

    await nfs.start();
    expect(await backend().checkConnection({ pool })).toMatchObject({ reachable: true });
  });
});
