/**
 * The API commands of the built `quantix` CLI (run as a user runs it, one process per command)
 * against a real control plane on PostgreSQL: what each prints, and its exit code — 0 done,
 * 1 failed (with the API's code), 2 used wrongly. Needs `npx turbo run build` first.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type CatalogEntry, createQuantix, type ImageCatalog, type Quantix } from '@quantix/core';
import { createTestDatabase, mountSmallFilesystem, type TestDatabase, waitFor } from '@quantix/core/testing';
import { createImagesCloudPlugin } from '@quantix/images-cloud';
import { createStorageLocalPlugin } from '@quantix/storage-local';
import { createStorageNfsPlugin } from '@quantix/storage-nfs';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tinyCatalog } from '../src/__fixtures__/tiny-catalog.js';
import { type ControlPlane, startControlPlane } from '../src/control-plane.js';
import { QUANTIX, QUANTIX_NODE, startProcess, stopProcess, waitForOutput } from './processes.js';

const API_TOKEN = 'cli-api-token';

/** A catalog entry that publishes a checksum file (nobody serves it): an image of it can follow upstream. */
const followable: CatalogEntry = {
  id: 'tiny-followed',
  name: 'Tiny followed image',
  description: '',
  kind: 'cloud',
  format: 'qcow2',
  os: { family: 'linux', distribution: 'tiny', version: '2', arch: 'x86_64', defaultUser: null, cloudInit: true },
  requirements: { minCpu: 1, minMemoryMiB: 0, minDiskGiB: 0, firmware: 'any' },
  sourceUrl: 'http://127.0.0.1:9/followed.qcow2',
  checksum: null,
  checksumUrl: 'http://127.0.0.1:9/SHA256SUMS',
  checksumAlgorithm: 'sha256',
  sizeBytes: null,
};

/** `catalog` with `entries` after its own. */
function catalogOf(catalog: ImageCatalog, ...entries: CatalogEntry[]): ImageCatalog {
  return { ...catalog, list: async () => [...(await catalog.list()), ...entries] };
}

describe('quantix API commands', () => {
  let testDb: TestDatabase;
  let quantix: Quantix;
  let cp: ControlPlane;
  let work: string;

  /** One CLI run: its exit code, stdout and stderr. The token comes from the environment. */
  const cli = (args: string[], env: Record<string, string> = {}) =>
    new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
      execFile(
        process.execPath,
        [QUANTIX, ...args],
        { cwd: work, env: { ...process.env, QUANTIX_URL: cp.url, QUANTIX_TOKEN: API_TOKEN, ...env } },
        (error, stdout, stderr) => resolve({ code: error ? Number(error.code ?? 1) : 0, stdout, stderr }),
      );
    });

  beforeAll(async () => {
    testDb = await createTestDatabase('pg');
    // The test's catalog, and the fetcher that reads a followed image's checksum file, as `quantix serve` has it.
    const catalog = createImagesCloudPlugin({ builtinCatalog: false, catalogs: [catalogOf(tinyCatalog, followable)] });
    quantix = await createQuantix({
      database: testDb.config,
      // The pool types a control plane validates (`quantix serve` has both), without their backends.
      plugins: [catalog, createStorageLocalPlugin({ backend: false }), createStorageNfsPlugin({ backend: false })],
      logger: pino({ level: 'silent' }),
    });
    work = await mkdtemp(join(tmpdir(), 'quantix-cli-api-'));
    cp = await startControlPlane({ quantix, apiToken: API_TOKEN, stagingDir: join(work, 'staging') });
  });

  afterAll(async () => {
    await cp?.close();
    await quantix?.close();
    await testDb?.dispose();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('registers a node, defines, changes, assigns and deletes a pool, printing what it did', async () => {
    const added = await cli(['--json', 'nodes', 'add', 'hv-cli', '--id', 'hv-cli']);
    expect(added.code).toBe(0);
    expect(JSON.parse(added.stdout)).toMatchObject({ node: { id: 'hv-cli', hostname: 'hv-cli' } });

    const created = await cli([
      'pools',
      'create',
      'isos',
      '--id',
      'isos',
      '--path',
      '/srv/quantix-cli-api',
      '--node',
      'hv-cli',
    ]);
    expect(created).toMatchObject({ code: 0, stdout: 'created pool isos\n' });
    // --type left out: local, as above, or nfs where --server is given.
    const share = await cli([
      '--json',
      'pools',
      'create',
      'share',
      '--server',
      '10.0.0.5',
      '--export',
      '/srv/nfs/share',
      '--mount-point',
      '/srv/quantix-cli-nfs',
    ]);
    expect(JSON.parse(share.stdout)).toMatchObject({ name: 'share', type: 'nfs', config: { server: '10.0.0.5' } });
    expect(await cli(['pools', 'delete', 'share', '--yes'])).toMatchObject({ code: 0 });
    expect(JSON.parse((await cli(['--json', 'pools', 'list'])).stdout)).toMatchObject([
      { name: 'isos', type: 'local' },
    ]);

    const listed = await cli(['pools', 'list']);
    expect(listed.code).toBe(0);
    expect(listed.stdout.split('\n')).toEqual([
      'ID    NAME  TYPE   SHARED  NODES   STATES',
      'isos  isos  local  false   hv-cli  -',
      '',
    ]);

    expect(await cli(['pools', 'update', 'isos', '--name', 'iso-store'])).toMatchObject({
      code: 0,
      stdout: 'updated pool iso-store (isos)\n',
    });
    expect(await cli(['pools', 'update', 'iso-store'])).toMatchObject({
      code: 2,
      stderr:
        'error: nothing to change: give --name, --description, --content, --shared/--no-shared, --path, --create/--no-create, --server, --export or --mount-point\n',
    });
    // Where it is, changed in place (a typo, a directory never made): the rest of its config stays.
    expect(await cli(['pools', 'update', 'iso-store', '--path', '/srv/quantix-cli-api2', '--create'])).toMatchObject({
      code: 0,
      stdout: 'updated pool iso-store (isos): /srv/quantix-cli-api2\n',
    });
    const moved = JSON.parse((await cli(['--json', 'pools', 'update', 'iso-store', '--no-create'])).stdout);
    expect(moved).toMatchObject({ name: 'iso-store', config: { path: '/srv/quantix-cli-api2' } });
    expect(moved.config).not.toHaveProperty('create');
    // A pool on no node says so, and how to put it to use.
    expect(await cli(['pools', 'create', 'spare', '--path', '/srv/quantix-cli-spare'])).toMatchObject({
      code: 0,
      stdout: expect.stringMatching(
        /^created pool spare \(\S+\), on no node yet: `quantix pools assign spare <nodes>` puts it to use\n$/,
      ),
    });
    expect(await cli(['pools', 'delete', 'spare', '--yes'])).toMatchObject({ code: 0 });
    expect(await cli(['pools', 'assign', 'iso-store', ''])).toMatchObject({
      code: 0,
      stdout: 'pool iso-store (isos) assigned to no node\n',
    });
    const pool = JSON.parse((await cli(['--json', 'pools', 'list'])).stdout) as { name: string; nodeIds: string[] }[];
    expect(pool).toMatchObject([{ name: 'iso-store', nodeIds: [] }]);

    const nodes = await cli(['nodes', 'list']);
    expect(nodes.stdout).toMatch(/^ID {6}HOSTNAME {2}CONNECTION STATE {2}SINCE {2}REPLICA ID {2}AGENT VERSION\n/);
    // Never connected: no time to tell.
    expect(nodes.stdout).toMatch(/^hv-cli +hv-cli +disconnected +- +- +-$/m);

    // Every delete asks first; without a terminal to ask on, --yes is required.
    expect(await cli(['pools', 'delete', 'iso-store'])).toMatchObject({
      code: 2,
      stderr: expect.stringContaining(
        'not deleting pool iso-store without confirmation: stdin is not a terminal; give --yes',
      ),
    });
    expect(await cli(['pools', 'delete', 'iso-store', '--yes'])).toMatchObject({
      code: 0,
      stdout: 'deleted pool iso-store (isos)\n',
    });
  });

  it('registers a node and prints the commands that connect it, which do; gives it a new token; removes it', async () => {
    const added = await cli(['nodes', 'add', 'hv-printed', '--id', 'hv-printed']);
    expect(added.code).toBe(0);
    const [, token] = /^token: (\S+)$/m.exec(added.stdout) ?? [];
    expect(added.stdout).toContain(`install -m 600 /dev/stdin /etc/quantix/node-token <<< '${token}'`);
    const [command] = added.stdout.split('\n').filter((line) => line.trim().startsWith('quantix-node '));
    expect(command?.trim()).toBe(
      `quantix-node --url ${cp.url} --node-id hv-printed --token-file /etc/quantix/node-token`,
    );
    // Run as printed, but for where the token file is (not /etc on a test machine): the node connects.
    const tokenFile = join(work, 'node-token');
    await writeFile(tokenFile, `${token}\n`, { mode: 0o600 });
    const args = (command as string)
      .trim()
      .split(' ')
      .slice(1)
      .map((arg) => (arg === '/etc/quantix/node-token' ? tokenFile : arg));
    const startDaemon = () =>
      startProcess([QUANTIX_NODE, ...args, '--libvirt', 'none', '--pool-root', join(work, 'pools')], {});
    const isConnected = async () => {
      const listed = await cli(['--json', 'nodes', 'list']);
      const nodes = JSON.parse(listed.stdout) as { id: string; connectionState: string }[];
      return nodes.find((node) => node.id === 'hv-printed')?.connectionState === 'connected';
    };
    let daemon = startDaemon();
    try {
      await waitFor('the node registered by `nodes add` to connect', isConnected, 30_000);

      // A new token: printed once, with the same command. The connection opened with the one
      // before is closed, and the daemon says why; with the new one in its file it connects again.
      const renewed = await cli(['nodes', 'token', 'hv-printed']);
      expect(renewed.code).toBe(0);
      expect(renewed.stdout).toMatch(/^node hv-printed has a new token\ntoken: \S+\n/);
      const [, newToken] = /^token: (\S+)$/m.exec(renewed.stdout) ?? [];
      expect(newToken).not.toBe(token);
      expect(renewed.stdout).toContain(command as string);
      expect(renewed.stdout).toContain('a quantix-node already running with --token-file reads the file again');
      await waitForOutput(daemon, /this node was given a new token/);
      await stopProcess(daemon);
      await writeFile(tokenFile, `${newToken}\n`, { mode: 0o600 });
      daemon = startDaemon();
      await waitFor('the node to connect with its new token', isConnected, 30_000);

      // Removed: not without --yes from a script; then its connection is closed, and the daemon says why.
      const unconfirmed = await cli(['nodes', 'delete', 'hv-printed']);
      expect(unconfirmed.code).toBe(2);
      expect(unconfirmed.stderr).toContain('give --yes');
      expect(await cli(['nodes', 'delete', 'hv-printed', '--yes'])).toMatchObject({
        code: 0,
        stdout: 'removed node hv-printed\n',
      });
      await waitForOutput(daemon, /the control plane removed this node/);
      const listed = JSON.parse((await cli(['--json', 'nodes', 'list'])).stdout) as { id: string }[];
      expect(listed.map((node) => node.id)).not.toContain('hv-printed');
    } finally {
      await stopProcess(daemon);
    }
  });

  it('shows a pool and a node: where the pool is, and on each node its state, size and free space as it fills', async () => {
    // The pool on a real 16 MiB file system, so that its size and free space are known.
    const disk = mountSmallFilesystem('16m', { under: '/srv' });
    const added = await cli(['nodes', 'add', 'hv-show', '--id', 'hv-show']);
    const [, token] = /^token: (\S+)$/m.exec(added.stdout) ?? [];
    const tokenFile = join(work, 'hv-show-token');
    await writeFile(tokenFile, `${token}\n`, { mode: 0o600 });
    expect(
      await cli(['pools', 'create', 'shown', '--id', 'shown', '--path', disk.path, '--node', 'hv-show']),
    ).toMatchObject({ code: 0 });
    let daemon: ReturnType<typeof startProcess> | undefined;
    try {
      // Before the node ever connected: nothing reported.
      const unseen = await cli(['nodes', 'show', 'hv-show']);
      expect(unseen.code).toBe(0);
      expect(unseen.stdout.split('\n').slice(0, 2)).toEqual([
        'node hv-show is disconnected (never connected)',
        'host not reported; runs no VMs',
      ]);
      expect(unseen.stdout).toMatch(/^shown\s+not reported(\s+-){4}$/m);

      daemon = startProcess(
        [
          QUANTIX_NODE,
          ...['--url', cp.url, '--node-id', 'hv-show', '--token-file', tokenFile, '--libvirt', 'none'],
          ...['--pool-root', '/srv', '--pool-recheck-interval', '1'],
        ],
        {},
      );
      const free = async () => {
        const pool = JSON.parse((await cli(['--json', 'pools', 'show', 'shown'])).stdout) as {
          nodeStates: { status: string; availableBytes: number | null }[];
        };
        const [state] = pool.nodeStates;
        return state?.status === 'active' ? state.availableBytes : null;
      };
      await waitFor('the pool to be active on the node', async () => (await free()) === 16 * 1024 * 1024, 30_000);
      const shown = await cli(['pools', 'show', 'shown']);
      expect(shown.code).toBe(0);
      const lines = shown.stdout.trimEnd().split('\n');
      expect(lines.slice(0, 4)).toEqual([
        'pool shown: local, node-local, holds iso, images',
        `source ${disk.path}`,
        '0 image(s) recorded in it',
        '',
      ]);
      expect(lines[4]).toMatch(/^NODE\s+STATE\s+MOUNTED AT\s+SIZE\s+FREE\s+REPORTED$/);
      expect(lines[5]).toMatch(
        new RegExp(
          `^hv-show\\s+active\\s+${disk.path}\\s+16\\.0 MiB\\s+16\\.0 MiB \\(100%\\)\\s+(just now|\\d+ s ago)$`,
        ),
      );

      // A quarter of it filled by hand: the node's re-check reports it, and both commands show it.
      await writeFile(join(disk.path, 'filler.img'), Buffer.alloc(4 * 1024 * 1024, 1));
      await waitFor('the filled pool to be reported', async () => (await free()) === 12 * 1024 * 1024, 30_000);
      expect((await cli(['pools', 'show', 'shown'])).stdout).toMatch(/ 16\.0 MiB\s+12\.0 MiB \(75%\) /);
      const node = await cli(['nodes', 'show', 'hv-show']);
      expect(node.code).toBe(0);
      const nodeLines = node.stdout.trimEnd().split('\n');
      expect(nodeLines[0]).toMatch(
        /^node hv-show is connected \(since (just now|\d+ s ago)\) on replica \S+, agent \S+$/,
      );
      // Without libvirt (--libvirt none) a node says nothing of its host.
      expect(nodeLines[1]).toBe('host not reported; runs no VMs: VMs are turned off for this node');
      expect(nodeLines.slice(3)).toEqual([
        expect.stringMatching(/^POOL\s+STATE\s+MOUNTED AT\s+SIZE\s+FREE\s+REPORTED$/),
        expect.stringMatching(new RegExp(`^shown\\s+active\\s+${disk.path}\\s+16\\.0 MiB\\s+12\\.0 MiB \\(75%\\)`)),
      ]);
      expect(await cli(['pools', 'show', 'absent'])).toMatchObject({
        code: 1,
        stderr: expect.stringContaining('NOT_FOUND'),
      });
      expect(await cli(['nodes', 'show', 'absent'])).toMatchObject({
        code: 1,
        stderr: expect.stringContaining('NOT_FOUND'),
      });
    } finally {
      if (daemon) await stopProcess(daemon);
      await cli(['pools', 'delete', 'shown', '--yes']);
      await cli(['nodes', 'delete', 'hv-show', '--yes']);
      disk.unmount();
    }
  });

  it('names nodes by hostname in its tables, by id where the hostname is another node’s id', async () => {
    const added = JSON.parse((await cli(['--json', 'nodes', 'add', 'hv-named'])).stdout) as { node: { id: string } };
    const named = added.node.id;
    expect(named).toMatch(/^[0-9a-f-]{36}$/);
    // A hostname that is another node's id would name that node to a command: shown by id.
    await quantix.repositories.nodes.create({ id: 'twin-1', hostname: 'twin-2' });
    await quantix.repositories.nodes.create({ id: 'twin-2', hostname: 'hv-other' });
    const pool = await quantix.repositories.pools.create({
      name: 'named-nodes',
      type: 'nfs',
      config: { server: '127.0.0.1', export: '/export/named' },
      shared: true,
      contentTypes: ['iso'],
      nodeIds: [named, 'twin-1', 'twin-2'],
    });
    await quantix.repositories.pools.setNodeStates([
      { poolId: pool.id, nodeId: named, status: 'active', mountPath: '/mnt/named' },
      { poolId: pool.id, nodeId: 'twin-1', status: 'error', lastError: 'no such directory' },
    ]);
    const listed = await cli(['pools', 'list']);
    expect(listed.stdout).toMatch(
      / named-nodes +nfs +true +hv-named, twin-1, hv-other +hv-named:active, twin-1:error \(no such directory\)\n/,
    );
    const vm = await quantix.repositories.vms.create({ name: 'vm-on-named', nodeId: named });
    // On twin-1, where the pool is in error: its disk has no path there.
    const twinVm = await quantix.repositories.vms.create({
      name: 'vm-on-twin',
      nodeId: 'twin-1',
      disks: [{ imageId: null, poolId: pool.id, relPath: 'vms/vm-on-twin/disk.qcow2', sizeGiB: 1 }],
    });
    try {
      expect((await cli(['vms', 'list'])).stdout).toMatch(/ vm-on-named +hv-named +/);
      expect((await cli(['vms', 'show', 'vm-on-named'])).stdout).toMatch(/^node hv-named \(not connected\),/m);
      // A disk whose pool is not active on the node: named by the pool's name, not its id.
      expect((await cli(['vms', 'show', 'vm-on-twin'])).stdout).toMatch(
        /^named-nodes:vms\/vm-on-twin\/disk\.qcow2 \(pool not active on the node\) +1 GiB/m,
      );
      await quantix.repositories.vms.delete(twinVm.id);
      // What is shown is what commands take.
      expect(JSON.parse((await cli(['--json', 'vms', 'list', '--node', 'hv-named'])).stdout).vms).toHaveLength(1);
      // Messages name a node by hostname, its id beside where that differs.
      expect((await cli(['nodes', 'token', 'hv-named'])).stdout).toMatch(
        new RegExp(`^node hv-named \\(${named}\\) has a new token\n`),
      );
      expect(await cli(['nodes', 'delete', 'hv-named', '--yes'])).toMatchObject({
        code: 1,
        stderr: 'error IN_USE: Node hv-named has 1 VM(s): vm-on-named; delete them first\n',
      });
      await quantix.repositories.vms.delete(vm.id);
      await quantix.repositories.pools.delete(pool.id);
      expect(await cli(['nodes', 'delete', 'hv-named', '--yes'])).toMatchObject({
        code: 0,
        stdout: `removed node hv-named (${named})\n`,
      });
    } finally {
      for (const id of [vm.id, twinVm.id]) await quantix.repositories.vms.delete(id).catch(() => undefined);
      await quantix.repositories.pools.delete(pool.id).catch(() => undefined);
      for (const id of [named, 'twin-1', 'twin-2']) await quantix.repositories.nodes.delete(id).catch(() => undefined);
    }
  });

  it('lists images, the catalog and VMs', async () => {
    expect(await cli(['images', 'list'])).toMatchObject({ code: 0, stdout: '(none)\n0 image(s)\n' });
    const catalog = await cli(['images', 'catalog']);
    expect(catalog.code).toBe(0);
    expect(catalog.stdout.split('\n').slice(1, 3)).toEqual([
      'tiny-cloud     Tiny cloud image     cloud  http://127.0.0.1:9/tiny.qcow2',
      'tiny-followed  Tiny followed image  cloud  http://127.0.0.1:9/followed.qcow2',
    ]);
    const available = await cli(['images', 'available', '--node', 'hv-cli', '--json']);
    expect(available.code).toBe(0);
    expect(JSON.parse(available.stdout)).toMatchObject({
      nodeId: 'hv-cli',
      images: [
        { catalogId: 'tiny-cloud', status: 'not-downloaded' },
        { catalogId: 'tiny-followed', status: 'not-downloaded' },
      ],
    });
    expect(await cli(['vms', 'list'])).toMatchObject({ code: 0, stdout: '(none)\n' });
  });

  it('lists images under their pool’s name, which --pool takes as well; takes an image by its name where it is one image’s', async () => {
    const { pools, images } = quantix.repositories;
    const pool = (id: string, name: string) =>
      pools.create({ id, name, type: 'local', config: { path: `/srv/${name}` }, contentTypes: ['iso'], nodeIds: [] });
    await pool('0b6f3c1e-5a4d-4c52-9a51-0c1f2e3d4b5a', 'library');
    await pool('scratch', 'scratch');
    const iso = (poolId: string, relPath: string) => ({
      poolId,
      relPath,
      kind: 'iso' as const,
      format: 'iso' as const,
      sizeBytes: 1024,
    });
    await images.upsertByLocation([iso('0b6f3c1e-5a4d-4c52-9a51-0c1f2e3d4b5a', 'a.iso'), iso('scratch', 'b.iso')]);
    try {
      const listed = await cli(['images', 'list']);
      expect(listed.code, listed.stderr).toBe(0);
      const lines = listed.stdout.split('\n');
      expect(lines[0]).toMatch(/^ID +NAME +KIND +PHASE +SIZE +POOL +PATH$/);
      expect(lines.find((line) => line.includes(' a.iso '))).toMatch(/ 1\.0 KiB +library +a\.iso$/);
      expect(lines.find((line) => line.includes(' b.iso '))).toMatch(/ 1\.0 KiB +scratch +b\.iso$/);
      const inLibrary = await cli(['images', 'list', '--pool', 'library']);
      expect(inLibrary.stdout).toContain('a.iso');
      expect(inLibrary.stdout).not.toContain('b.iso');

      // Commands take an image by its name where one image has it; a name two have is refused, naming both.
      await images.upsertByLocation([iso('scratch', 'a.iso')]);
      const twins = (await images.list({})).filter((image) => image.name === 'a.iso').map((image) => image.id);
      expect(twins).toHaveLength(2);
      const ambiguous = await cli(['images', 'delete', 'a.iso', '--yes']);
      expect(ambiguous.code).toBe(1);
      expect(ambiguous.stderr).toMatch(
        /^error AMBIGUOUS: 2 images are named "a\.iso": give the id \(\S+ in (library|scratch), \S+ in (library|scratch)\)\n$/,
      );
      for (const id of twins) expect(ambiguous.stderr).toContain(id);
      // Which is which: each id with its pool.
      const [library] = (await images.list({ poolId: '0b6f3c1e-5a4d-4c52-9a51-0c1f2e3d4b5a' })).filter(
        (image) => image.name === 'a.iso',
      );
      expect(ambiguous.stderr).toContain(`${library?.id} in library`);
      // One image's name: that image (its deletion needs a node holding its pool, and none is connected).
      expect(await cli(['images', 'delete', 'b.iso', '--yes'])).toMatchObject({
        code: 1,
        stderr:
          'error NODE_NOT_CONNECTED: No connected node holds pool scratch; the file cannot be removed now (a delete with keepFile, `quantix images delete --keep-file`, forgets the image and leaves its file)\n',
      });
      // Its pool out of reach for good: the record alone goes, the file is left where it was.
      expect(await cli(['images', 'delete', 'b.iso', '--yes', '--keep-file'])).toMatchObject({
        code: 0,
        stdout: expect.stringMatching(/^deleted image b\.iso \(\S+\); its file scratch:b\.iso stays\n$/),
      });
      expect((await images.list({})).map((image) => image.name)).not.toContain('b.iso');
      // A pool is named by its name, as --pool takes it, not by its id.
      const inLibraryPool = await images.getByLocation({
        poolId: '0b6f3c1e-5a4d-4c52-9a51-0c1f2e3d4b5a',
        relPath: 'a.iso',
      });
      expect(await cli(['images', 'delete', inLibraryPool?.id as string, '--yes', '--keep-file'])).toMatchObject({
        code: 0,
        stdout: `deleted image a.iso (${inLibraryPool?.id}); its file library:a.iso stays\n`,
      });
      // Not a name: taken as an id, which the API does not know.
      expect(await cli(['images', 'delete', 'no-such-image', '--yes'])).toMatchObject({
        code: 1,
        stderr: expect.stringMatching(/^error NOT_FOUND: /),
      });
    } finally {
      for (const image of await images.list({})) await images.delete(image.id);
      for (const id of ['0b6f3c1e-5a4d-4c52-9a51-0c1f2e3d4b5a', 'scratch']) await pools.delete(id);
    }
  });

  it('lists every image, and every choice of a node, past the API’s first page; --search finds by name', async () => {
    const { pools, images } = quantix.repositories;
    expect((await cli(['nodes', 'add', 'hv-many', '--id', 'hv-many'])).code).toBe(0);
    await pools.create({
      id: 'many',
      name: 'many',
      type: 'local',
      config: { path: '/srv/many' },
      nodeIds: ['hv-many'],
    });
    try {
      // More than one page of the API's largest (1,000).
      await images.upsertByLocation(
        Array.from({ length: 1050 }, (_, i) => ({
          poolId: 'many',
          relPath: `disc-${String(i).padStart(4, '0')}.iso`,
          kind: 'iso' as const,
          sizeBytes: 2048,
        })),
      );
      const listed = await cli(['images', 'list', '--pool', 'many']);
      expect(listed.code, listed.stderr).toBe(0);
      const lines = listed.stdout.trimEnd().split('\n');
      expect(lines.at(-1)).toBe('1050 image(s)');
      const names = lines.slice(1, -1).map((line) => /\bdisc-\d{4}\.iso\b/.exec(line)?.[0]);
      expect(new Set(names).size).toBe(1050);
      expect(names).toContain('disc-1049.iso');
      const json = JSON.parse((await cli(['--json', 'images', 'list', '--pool', 'many'])).stdout) as {
        images: unknown[];
        total: number;
        nextCursor: string | null;
      };
      expect([json.images.length, json.total, json.nextCursor]).toEqual([1050, 1050, null]);

      // The node's view too: the 1,050 (unavailable: the node never connected) and the catalog's two entries.
      const choices = await cli(['images', 'available', '--node', 'hv-many']);
      expect(choices.code, choices.stderr).toBe(0);
      const rows = choices.stdout.trimEnd().split('\n').slice(1);
      expect(rows).toHaveLength(1052);
      expect(rows.filter((row) => /\bdisc-\d{4}\.iso\b.* unavailable /.test(row))).toHaveLength(1050);

      for (const flag of ['--search', '--text']) {
        const found = await cli(['images', 'list', flag, 'disc-1049']);
        expect(found.stdout.trimEnd().split('\n').slice(1), flag).toEqual([
          expect.stringMatching(/ disc-1049\.iso .* many +disc-1049\.iso$/),
          '1 image(s)',
        ]);
      }
    } finally {
      await quantix.database.knex.raw(`delete from images where pool_id = 'many'`);
      await pools.delete('many');
      await cli(['nodes', 'delete', 'hv-many', '--yes']);
    }
  });

  it('shows one image by its name: phase and error, pool and path, size, checksum, OS and labels', async () => {
    const { pools, images } = quantix.repositories;
    await pools.create({ id: 'shelf', name: 'shelf', type: 'local', config: { path: '/srv/shelf' }, nodeIds: [] });
    try {
      const downloading = await images.create({
        name: 'debian.qcow2',
        kind: 'cloud',
        format: 'qcow2',
        phase: 'pending',
        location: { poolId: 'shelf', relPath: 'images/debian.qcow2' },
        os: { family: 'linux', distribution: 'debian', version: '12', arch: 'x86_64', cloudInit: true },
        labels: { team: 'infra' },
        catalogId: 'debian-12',
      });
      await images.update(downloading.id, { phase: 'downloading' });
      const image = await images.update(downloading.id, {
        phase: 'error',
        error: { code: 'CHECKSUM_MISMATCH', message: 'sha256 of the downloaded bytes is 00…', retryable: true },
        sizeBytes: 3 * 1024 * 1024,
      });
      const shown = await cli(['images', 'show', 'debian.qcow2']);
      expect(shown.code, shown.stderr).toBe(0);
      const lines = shown.stdout.split('\n');
      expect(lines[0]).toBe(`image debian.qcow2 (${image.id}) is error: cloud, qcow2`);
      expect(lines[1]).toBe('error CHECKSUM_MISMATCH: sha256 of the downloaded bytes is 00…');
      expect(lines[2]).toBe('in pool shelf at images/debian.qcow2');
      expect(lines[3]).toBe('size 3.0 MiB, no checksum');
      expect(lines[4]).toBe('OS debian 12 x86_64 (cloud-init); needs 1 vCPU');
      expect(shown.stdout).toContain('labels:\n  team=infra\n');
      // --json is the API's own answer.
      const json = await cli(['images', 'show', image.id, '--json']);
      expect(JSON.parse(json.stdout)).toMatchObject({ id: image.id, phase: 'error', location: { poolId: 'shelf' } });
      expect(await cli(['images', 'show', 'no-such-image'])).toMatchObject({
        code: 1,
        stderr: expect.stringMatching(/^error NOT_FOUND: /),
      });

      // By the catalog entry it was downloaded from, as `images download debian-12` was given —
      // while one image alone was; downloaded into another pool too, the command names each.
      const byEntry = await cli(['images', 'show', 'debian-12']);
      expect(byEntry.stdout.split('\n')[0]).toBe(`image debian.qcow2 (${image.id}) is error: cloud, qcow2`);
      await pools.create({ id: 'cellar', name: 'cellar', type: 'local', config: { path: '/srv/cellar' }, nodeIds: [] });
      const again = await images.create({
        name: 'debian.qcow2',
        kind: 'cloud',
        format: 'qcow2',
        location: { poolId: 'cellar', relPath: 'images/debian.qcow2' },
        catalogId: 'debian-12',
      });
      const twice = await cli(['images', 'show', 'debian-12']);
      expect(twice.code).toBe(1);
      expect(twice.stderr).toMatch(
        /^error AMBIGUOUS: 2 images come from catalog entry "debian-12": give the id \(\S+ in \w+, \S+ in \w+\)\n$/,
      );
      expect(twice.stderr).toContain(`${image.id} in shelf`);
      expect(twice.stderr).toContain(`${again.id} in cellar`);
    } finally {
      for (const image of await images.list({})) await images.delete(image.id);
      await pools.delete('shelf');
      if (await pools.get('cellar')) await pools.delete('cellar');
    }
  });

  it('follows upstream daily by default; a follow of an image that follows changes only what it is given', async () => {
    const { pools, images } = quantix.repositories;
    await pools.create({ id: 'shelf', name: 'shelf', type: 'local', config: { path: '/srv/shelf' }, nodeIds: [] });
    try {
      const image = await images.create({
        name: 'followed.qcow2',
        kind: 'cloud',
        format: 'qcow2',
        phase: 'ready',
        location: { poolId: 'shelf', relPath: 'images/followed.qcow2' },
        checksum: { algorithm: 'sha256', value: 'a'.repeat(64) },
        catalogId: 'tiny-followed',
      });
      const said = (schedule: string, keep: number) =>
        new RegExp(
          `^tiny-followed follows upstream \\(${schedule.replaceAll('*', '\\*')}, keep ${keep}\\); next check \\S+Z\n$`,
        );
      expect(await cli(['images', 'follow', 'tiny-followed'])).toMatchObject({
        code: 0,
        stdout: expect.stringMatching(said('0 3 * * *', 3)),
      });
      expect(await cli(['images', 'follow', 'tiny-followed', '--schedule', '0 */6 * * *'])).toMatchObject({
        code: 0,
        stdout: expect.stringMatching(said('0 */6 * * *', 3)),
      });
      // Only the number kept: the schedule given before stays.
      expect(await cli(['images', 'follow', 'tiny-followed', '--keep', '5'])).toMatchObject({
        code: 0,
        stdout: expect.stringMatching(said('0 */6 * * *', 5)),
      });
      const revisions = await cli(['images', 'revisions', image.id]);
      expect(revisions.stdout.split('\n')[0]).toMatch(/^schedule 0 \*\/6 \* \* \*, keep 5, next check \S+Z$/);
      // images show says so, and says no more of it once unfollowed.
      const followLine = /^follows upstream \(0 \*\/6 \* \* \*, keep 5\), revision 1 the latest; next check \S+Z$/m;
      expect((await cli(['images', 'show', 'tiny-followed'])).stdout).toMatch(followLine);
      expect(await cli(['images', 'unfollow', 'tiny-followed'])).toMatchObject({ code: 0 });
      const unfollowed = await cli(['images', 'show', 'tiny-followed']);
      expect(unfollowed).toMatchObject({ code: 0, stdout: expect.stringContaining('catalog entry tiny-followed') });
      expect(unfollowed.stdout).not.toContain('follows upstream');
    } finally {
      for (const image of await images.list({})) await images.delete(image.id);
      await pools.delete('shelf');
    }
  });

  it('changes an image by its name: name, labels, requirements; says what it now needs', async () => {
    const { pools, images } = quantix.repositories;
    await pools.create({ id: 'shelf', name: 'shelf', type: 'local', config: { path: '/srv/shelf' }, nodeIds: [] });
    try {
      const image = await images.create({
        name: 'old-disc.iso',
        kind: 'iso',
        format: 'iso',
        phase: 'ready',
        location: { poolId: 'shelf', relPath: 'iso/old-disc.iso' },
        labels: { team: 'infra' },
        requirements: { minCpu: 1, minMemoryMiB: 512, minDiskGiB: 0, firmware: 'any' },
      });
      const edited = await cli([
        'images',
        'edit',
        'old-disc.iso',
        '--name',
        'Old disc',
        '--label',
        'tier=gold',
        '--unlabel',
        'team',
        '--min-memory',
        '128',
        '--firmware',
        'uefi',
      ]);
      expect(edited).toMatchObject({
        code: 0,
        stdout: `updated image Old disc (${image.id}): needs 1 vCPU, 128 MiB, uefi\n`,
      });
      const shown = await cli(['images', 'show', 'Old disc']);
      expect(shown.stdout).toContain('; needs 1 vCPU, 128 MiB, uefi\n');
      expect(shown.stdout).toContain('labels:\n  tier=gold\n');
      expect(shown.stdout).not.toContain('team=');
      // Used wrongly: exit 2, nothing asked of the API; refused by it: exit 1 with its code.
      expect(await cli(['images', 'edit', 'Old disc'])).toMatchObject({
        code: 2,
        stderr: expect.stringContaining('nothing to change'),
      });
      expect(await cli(['images', 'edit', 'Old disc', '--label', 'tier'])).toMatchObject({
        code: 2,
        stderr: expect.stringContaining('"tier" is not key=value'),
      });
      expect(await cli(['images', 'edit', 'Old disc', '--label', 'quantix.io/copied-from=x'])).toMatchObject({
        code: 1,
        stderr: expect.stringMatching(/^error INVALID_INPUT: .*quantix\.io\/copied-from is a label of Quantix's own/),
      });
      expect((await images.require(image.id)).version).toBe(image.version + 1);
    } finally {
      for (const image of await images.list({})) await images.delete(image.id);
      await pools.delete('shelf');
    }
  });

  it('prints no terminal escape a record holds (an ISO volume id of an older database); --json keeps the value', async () => {
    const { pools, images } = quantix.repositories;
    await pools.create({ id: 'shelf', name: 'shelf', type: 'local', config: { path: '/srv/shelf' }, nodeIds: [] });
    try {
      const image = await images.create({
        name: 'evil.iso',
        kind: 'iso',
        phase: 'ready',
        location: { poolId: 'shelf', relPath: 'iso/evil.iso' },
      });
      // Written as a scan wrote it before labels were checked: straight into the row.
      const hostile = 'EVIL\x1b[2J\x1b]0;pwned\x07\u202Eosi.exe';
      await quantix.database
        .knex('images')
        .where({ id: image.id })
        .update({ labels: JSON.stringify({ 'iso.quantix.io/volume-id': hostile }) });
      const shown = await cli(['images', 'show', 'evil.iso']);
      expect(shown.code, shown.stderr).toBe(0);
      expect(shown.stdout).toContain('iso.quantix.io/volume-id=EVIL\uFFFD[2J\uFFFD]0;pwned\uFFFD\uFFFDosi.exe\n');
      const json = await cli(['--json', 'images', 'show', 'evil.iso']);
      expect(json.stdout).not.toContain('\x1b');
      expect(JSON.parse(json.stdout).labels['iso.quantix.io/volume-id']).toBe(hostile);
    } finally {
      for (const image of await images.list({})) await images.delete(image.id);
      await pools.delete('shelf');
    }
  });

  it('fails with exit 1 and the API’s code, and with exit 2 when used wrongly', async () => {
    expect(await cli(['vms', 'start', 'no-such-vm'])).toMatchObject({
      code: 1,
      stderr: expect.stringMatching(/^error NOT_FOUND: /),
    });
    expect(await cli(['pools', 'delete', 'no-such-pool', '--yes'])).toMatchObject({
      code: 1,
      stderr: 'error NOT_FOUND: no pool has the id or name "no-such-pool" (known: none)\n',
    });
    const invalid = await cli([
      'pools',
      'create',
      'bad',
      '--type',
      'local',
      '--path',
      '/srv/bad',
      '--content',
      'music',
    ]);
    expect(invalid).toMatchObject({ code: 1, stderr: expect.stringMatching(/^error INVALID_INPUT: .*contentTypes/) });
    const outside = await cli(['pools', 'create', 'bad', '--type', 'local', '--path', 'relative/dir']);
    expect(outside).toMatchObject({ code: 1, stderr: expect.stringMatching(/^error POOL_ROOT_NOT_ALLOWED: /) });
    expect(await cli(['--json', 'pools', 'list'])).toMatchObject({ code: 0, stdout: '[]\n' });

    expect(await cli(['pools', 'list'], { QUANTIX_TOKEN: 'wrong' })).toMatchObject({
      code: 1,
      stderr: expect.stringMatching(/^error UNAUTHORIZED: /),
    });
    expect(await cli(['pools', 'list'], { QUANTIX_URL: 'http://127.0.0.1:9' })).toMatchObject({
      code: 1,
      stderr: expect.stringMatching(/^error UNREACHABLE: Cannot reach the control plane at http:\/\/127\.0\.0\.1:9: /),
    });
  });
});
