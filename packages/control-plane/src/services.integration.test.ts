/**
 * The control plane's services over real databases (PGlite and PostgreSQL): pool sync, scan
 * ingestion, the available-images view and the checks before a VM is created. Files are real
 * files in a temporary directory standing for a node's pool root.
 */
import { access, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { CatalogEntry, ImageCatalog, Repositories } from '@quantix/core';
import {
  createEventBus,
  type Database,
  ErrorCode,
  imageIdForLocation,
  PROTOCOL_VERSION,
  type ScannedFile,
} from '@quantix/core';
import { errorCodeOf, type OpenTestDatabase, openTestDatabase, TEST_DATABASE_CLIENTS } from '@quantix/core/testing';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { listAvailableImages } from './images/available.js';
import { ingestScan } from './images/scan-ingest.js';
import { PoolSyncService } from './pools/pool-sync.js';
import { checkVmImage } from './vms/preflight.js';

const exists = (path: string) =>
  access(path).then(
    () => true,
    () => false,
  );

function entry(id: string, name: string): CatalogEntry {
  return {
    id,
    name,
    description: '',
    kind: 'cloud',
    format: 'qcow2',
    os: {
      family: 'linux',
      distribution: id.split('-')[0] ?? null,
      version: null,
      arch: 'x86_64',
      defaultUser: null,
      cloudInit: true,
    },
    requirements: { minCpu: 1, minMemoryMiB: 512, minDiskGiB: 5, firmware: 'any' },
    sourceUrl: `http://127.0.0.1:1/${id}.qcow2`,
    checksum: null,
    checksumUrl: null,
    checksumAlgorithm: 'sha256',
    sizeBytes: 1000,
  };
}

/** A real, in-memory ImageCatalog implementation: the contract has no external component. */
const catalog: ImageCatalog = {
  name: 'test',
  list: async () => [
    entry('ubuntu-24.04', 'Ubuntu 24.04'),
    entry('debian-12', 'Debian 12'),
    entry('fedora-41', 'Fedora 41'),
    entry('rocky-9', 'Rocky 9'),
  ],
};

const scanned = (relPath: string, sizeBytes = 10): ScannedFile => ({
  relPath,
  kind: 'iso',
  format: 'iso',
  sizeBytes,
  modifiedAt: '2026-11-01T00:00:00.000Z',
});

describe.each(TEST_DATABASE_CLIENTS)('control-plane services on %s', (client) => {
  let testDb: OpenTestDatabase;
  let _db: Database;
  let repos: Repositories;
  let root: string;

  beforeAll(async () => {
    testDb = await openTestDatabase(client);
    ({ database: _db, repositories: repos } = testDb);
  });
  afterAll(() => testDb?.close());
  beforeEach(async () => {
    await testDb.reset();
    root = await mkdtemp(join(tmpdir(), 'quantix-node-'));
    await repos.nodes.create({ id: 'n1', hostname: 'hv1' });
    await repos.nodes.create({ id: 'n2', hostname: 'hv2' });
    return () => rm(root, { recursive: true, force: true });
  });

  describe('pool sync', () => {
    it('pushes each node exactly its pools, and a newer generation after any change', async () => {
      const events = createEventBus();
      const sync = new PoolSyncService({ repositories: repos, events });
      const shared = await repos.pools.create({
        id: 'nfs',
        name: 'NFS',
        type: 'nfs',
        shared: true,
        nodeIds: ['n1', 'n2'],
        config: { server: 's', export: '/e' },
      });
      await repos.pools.create({
        id: 'local-n2',
        name: 'local n2',
        type: 'local',
        nodeIds: ['n2'],
        config: { path: '/var/lib/q' },
      });
      const first = await sync.desiredPoolsFor('n1');
      expect(first.pools.map((p) => p.id)).toEqual(['nfs']);
      expect((await sync.desiredPoolsFor('n2')).pools.map((p) => p.id)).toEqual(['nfs', 'local-n2']);
      await repos.pools.update(shared.id, { nodeIds: ['n2'] });
      const second = await sync.desiredPoolsFor('n1');
      expect(second.pools).toEqual([]);
      expect(second.generation).toBeGreaterThan(first.generation);
      // The message the hub sends is valid protocol.
      expect({ v: PROTOCOL_VERSION, type: 'pools.desired', ...second }).toMatchObject({ type: 'pools.desired' });
    });

    it('stores what the node reports, ignores pools it does not hold, and forgets unassigned ones', async () => {
      const events = createEventBus();
      const synced: number[] = [];
      events.on('pool.synced', (e) => synced.push(e.generation));
      const sync = new PoolSyncService({ repositories: repos, events });
      await repos.pools.create({ id: 'a', name: 'A', type: 'local', nodeIds: ['n1'] });
      await repos.pools.create({ id: 'b', name: 'B', type: 'nfs', shared: true, nodeIds: ['n1'] });
      await repos.pools.create({ id: 'other', name: 'Other', type: 'local', nodeIds: ['n2'] });
      const { generation } = await sync.desiredPoolsFor('n1');
      const report = (poolId: string, status: 'active' | 'unavailable', reason: string | null = null) => ({
        poolId,
        status,
        mountPath: status === 'active' ? `/mnt/${poolId}` : null,
        capacityBytes: status === 'active' ? 1e12 : null,
        availableBytes: status === 'active' ? 5e11 : null,
        reason,
      });
      await sync.recordReport('n1', {
        generation,
        pools: [report('a', 'active'), report('b', 'unavailable', 'mount: No such device'), report('other', 'active')],
      });
      const stored = await repos.pools.listNodeStates({ nodeId: 'n1' });
      expect(stored.map((s) => [s.poolId, s.status, s.syncedGeneration])).toEqual([
        ['a', 'active', generation],
        ['b', 'unavailable', generation],
      ]);
      expect((await repos.pools.getNodeState('b', 'n1'))?.lastError).toBe('mount: No such device');
      expect(await repos.pools.getNodeState('other', 'n1')).toBeUndefined();
      expect(synced).toEqual([generation]);

      await repos.pools.update('b', { nodeIds: [] });
      const next = await sync.desiredPoolsFor('n1');
      await sync.recordReport('n1', { generation: next.generation, pools: [report('a', 'active')] });
      expect((await repos.pools.listNodeStates({ nodeId: 'n1' })).map((s) => s.poolId)).toEqual(['a']);
    });
  });

  describe('scan ingestion', () => {
    it('adds new files, marks vanished ones missing and brings them back, without duplicates', async () => {
      await repos.pools.create({ id: 'iso', name: 'ISO', type: 'nfs', shared: true, nodeIds: ['n1'] });
      const first = await ingestScan({
        repositories: repos,
        nodeId: 'n1',
        poolId: 'iso',
        content: 'iso',
        files: [scanned('a.iso'), scanned('sub/b.iso')],
      });
      expect(first).toEqual({
        inserted: 2,
        updated: 0,
        untouched: 0,
        missing: 0,
        invalid: 0,
        leftAlone: 0,
        conflicts: 0,
      });
      const b = imageIdForLocation('iso', 'sub/b.iso');
      expect(await repos.images.require(b)).toMatchObject({ phase: 'ready', nodeId: null, kind: 'iso' });

      const second = await ingestScan({
        repositories: repos,
        nodeId: 'n1',
        poolId: 'iso',
        content: 'iso',
        files: [scanned('a.iso')],
      });
      expect(second).toEqual({
        inserted: 0,
        updated: 0,
        untouched: 1,
        missing: 1,
        invalid: 0,
        leftAlone: 0,
        conflicts: 0,
      });
      expect((await repos.images.require(b)).phase).toBe('missing');

      const third = await ingestScan({
        repositories: repos,
        nodeId: 'n1',
        poolId: 'iso',
        content: 'iso',
        files: [scanned('a.iso'), scanned('sub/b.iso')],
      });
      expect(third).toEqual({
        inserted: 0,
        updated: 1,
        untouched: 1,
        missing: 0,
        invalid: 0,
        leftAlone: 0,
        conflicts: 0,
      });
      expect((await repos.images.require(b)).phase).toBe('ready');
      expect(await repos.images.count()).toBe(2);
    });

    it("never makes images of a VM's own files (vms/<name>/seed.iso, disk.qcow2), whatever a node lists", async () => {
      await repos.pools.create({ id: 'vmpool', name: 'VM pool', type: 'local', nodeIds: ['n1'] });
      const result = await ingestScan({
        repositories: repos,
        nodeId: 'n1',
        poolId: 'vmpool',
        content: 'iso',
        files: [scanned('vms/web/seed.iso'), scanned('vms/x.iso'), scanned('vmsx/kept.iso'), scanned('kept.iso')],
      });
      expect(result.inserted).toBe(2);
      const rows = await repos.images.list({ poolId: 'vmpool' });
      expect(rows.map((r) => r.location?.relPath).sort()).toEqual(['kept.iso', 'vmsx/kept.iso']);
    });

    it('ties files of a node-local pool to that node, and refuses scans from a node without the pool', async () => {
      await repos.pools.create({ id: 'local', name: 'Local', type: 'local', nodeIds: ['n1'] });
      await ingestScan({
        repositories: repos,
        nodeId: 'n1',
        poolId: 'local',
        content: 'iso',
        files: [scanned('x.iso')],
      });
      expect((await repos.images.require(imageIdForLocation('local', 'x.iso'))).nodeId).toBe('n1');
      expect(
        await errorCodeOf(
          ingestScan({ repositories: repos, nodeId: 'n2', poolId: 'local', content: 'iso', files: [] }),
        ),
      ).toBe(ErrorCode.INVALID_INPUT);
      expect((await repos.images.require(imageIdForLocation('local', 'x.iso'))).phase).toBe('ready');
    });
  });

  describe('available images and VM checks', () => {
    async function setUp() {
      await repos.pools.create({ id: 'images', name: 'Images', type: 'local', nodeIds: ['n1'] });
      await repos.pools.create({ id: 'nfs', name: 'NFS', type: 'nfs', shared: true, nodeIds: ['n1', 'n2'] });
      await repos.pools.setNodeState({ poolId: 'images', nodeId: 'n1', status: 'active', mountPath: root });
      await repos.pools.setNodeState({
        poolId: 'nfs',
        nodeId: 'n1',
        status: 'unavailable',
        lastError: 'showmount: RPC: Unable to receive',
      });
      await mkdir(join(root, 'cloud'), { recursive: true });
      await writeFile(join(root, 'cloud/ubuntu.qcow2'), 'qcow2 bytes');
      const ready = await repos.images.create({
        name: 'Ubuntu 24.04',
        kind: 'cloud',
        catalogId: 'ubuntu-24.04',
        phase: 'ready',
        nodeId: 'n1',
        location: { poolId: 'images', relPath: 'cloud/ubuntu.qcow2' },
      });
      const downloading = await repos.images.create({
        name: 'Debian 12',
        kind: 'cloud',
        catalogId: 'debian-12',
        location: { poolId: 'images', relPath: 'cloud/debian.qcow2' },
      });
      await repos.images.update(downloading.id, {
        phase: 'downloading',
        progress: { bytesDone: 400, bytesTotal: 1000, percent: 40 },
      });
      const failed = await repos.images.create({
        name: 'Fedora 41',
        kind: 'cloud',
        catalogId: 'fedora-41',
        location: { poolId: 'images', relPath: 'cloud/fedora.qcow2' },
      });
      await repos.images.update(failed.id, {
        phase: 'error',
        error: {
          code: 'CHECKSUM_MISMATCH',
          message: 'sha256 of the download differs from SHA256SUMS',
          retryable: true,
        },
      });
      await ingestScan({
        repositories: repos,
        nodeId: 'n1',
        poolId: 'nfs',
        content: 'iso',
        files: [scanned('alpine.iso')],
      });
      return { ready, downloading, failed, iso: imageIdForLocation('nfs', 'alpine.iso') };
    }

    it('lists every choice for a node with its status, path, progress or reason', async () => {
      const { ready } = await setUp();
      const { images: view, total } = await listAvailableImages({ repositories: repos, catalog, nodeId: 'n1' });
      expect(total).toBe(5);
      const byName = Object.fromEntries(view.map((item) => [item.name, item]));
      expect(byName['Ubuntu 24.04']).toMatchObject({
        status: 'ready',
        selectable: true,
        imageId: ready.id,
        path: join(root, 'cloud/ubuntu.qcow2'),
      });
      expect(byName['Debian 12']).toMatchObject({
        status: 'downloading',
        selectable: false,
        progress: { percent: 40 },
      });
      expect(byName['Fedora 41']).toMatchObject({
        status: 'error',
        selectable: false,
        reason: 'sha256 of the download differs from SHA256SUMS',
      });
      expect(byName['Rocky 9']).toMatchObject({
        status: 'not-downloaded',
        selectable: false,
        imageId: null,
        sourceUrl: 'http://127.0.0.1:1/rocky-9.qcow2',
      });
      expect(byName['alpine.iso']).toMatchObject({
        status: 'unavailable',
        selectable: false,
        reason: 'showmount: RPC: Unable to receive',
        path: null,
      });
      expect(view.map((item) => item.status)).toEqual([
        'ready',
        'downloading',
        'unavailable',
        'error',
        'not-downloaded',
      ]);
      // Node n2 holds neither the local pool nor an active NFS mount: nothing is ready there.
      const other = await listAvailableImages({ repositories: repos, catalog, nodeId: 'n2' });
      expect(other.images.filter((item) => item.selectable)).toEqual([]);
    });

    it('pages and searches the view in the database, one choice per catalog entry', async () => {
      await setUp();
      // A second, failed copy of Ubuntu in the NFS pool: the ready one still stands for the entry.
      await repos.images.create({
        name: 'Ubuntu 24.04',
        kind: 'cloud',
        catalogId: 'ubuntu-24.04',
        phase: 'pending',
        location: { poolId: 'nfs', relPath: 'u.qcow2' },
      });
      const page = (offset: number, limit: number) =>
        listAvailableImages({ repositories: repos, catalog, nodeId: 'n1', offset, limit }).then((p) => [
          p.total,
          p.images.map((i) => i.name),
        ]);
      expect(await page(0, 2)).toEqual([5, ['Ubuntu 24.04', 'Debian 12']]);
      expect(await page(2, 2)).toEqual([5, ['alpine.iso', 'Fedora 41']]);
      expect(await page(4, 2)).toEqual([5, ['Rocky 9']]);
      const found = await listAvailableImages({ repositories: repos, catalog, nodeId: 'n1', text: 'fedora' });
      expect(found.images.map((i) => [i.name, i.status])).toEqual([['Fedora 41', 'error']]);
      const rocky = await listAvailableImages({ repositories: repos, catalog, nodeId: 'n1', text: 'ROCKY' });
      expect(rocky).toMatchObject({ total: 1, images: [{ status: 'not-downloaded' }] });
      const isos = await listAvailableImages({ repositories: repos, catalog, nodeId: 'n1', kind: 'iso' });
      expect(isos.images.map((i) => i.name)).toEqual(['alpine.iso']);
    });

    it('offers every ready copy of a catalog entry on the node (two pools, a copy), each with its path', async () => {
      const { ready } = await setUp();
      // The same entry in a second pool of this node (downloaded there too, or copied), ready.
      const second = join(root, 'second');
      await mkdir(join(second, 'images'), { recursive: true });
      await writeFile(join(second, 'images/ubuntu.qcow2'), 'qcow2 bytes');
      await repos.pools.create({ id: 'fast', name: 'Fast', type: 'local', nodeIds: ['n1'] });
      await repos.pools.setNodeState({ poolId: 'fast', nodeId: 'n1', status: 'active', mountPath: second });
      const copy = await repos.images.create({
        name: 'Ubuntu 24.04',
        kind: 'cloud',
        catalogId: 'ubuntu-24.04',
        phase: 'ready',
        nodeId: 'n1',
        location: { poolId: 'fast', relPath: 'images/ubuntu.qcow2' },
      });
      const { images: view, total } = await listAvailableImages({ repositories: repos, catalog, nodeId: 'n1' });
      expect(total).toBe(6);
      expect(view.filter((item) => item.catalogId === 'ubuntu-24.04').map((item) => [item.imageId, item.path])).toEqual(
        [
          [ready.id, join(root, 'cloud/ubuntu.qcow2')],
          [copy.id, join(second, 'images/ubuntu.qcow2')],
        ].sort(([a], [b]) => String(a).localeCompare(String(b))),
      );
      expect(view.filter((item) => item.catalogId === 'ubuntu-24.04').every((item) => item.selectable)).toBe(true);
    });

    it('refuses a VM image with one code per reason, in order, and passes a ready one with its path', async () => {
      const { ready, downloading, failed, iso } = await setUp();
      const check = (imageId: string, nodeId = 'n1') =>
        checkVmImage({ repositories: repos, imageId, nodeId, fileExists: exists });
      expect(await errorCodeOf(check('no-such-image'))).toBe(ErrorCode.IMAGE_NOT_FOUND);
      expect(await errorCodeOf(check(downloading.id))).toBe(ErrorCode.IMAGE_NOT_READY);
      await expect(check(failed.id)).rejects.toThrow(/download failed: sha256 of the download differs/);
      const floating = await repos.images.create({ name: 'no place', kind: 'iso', phase: 'ready' });
      expect(await errorCodeOf(check(floating.id))).toBe(ErrorCode.IMAGE_NO_LOCATION);
      expect(await errorCodeOf(check(iso))).toBe(ErrorCode.POOL_NOT_ACTIVE_ON_NODE);
      expect(await errorCodeOf(check(ready.id, 'n2'))).toBe(ErrorCode.POOL_NOT_ACTIVE_ON_NODE);

      const ok = await check(ready.id);
      expect(ok.path).toBe(join(root, 'cloud/ubuntu.qcow2'));

      // Only an ISO will do (a CD-ROM drive): another kind is refused first, ready or not, and
      // no node is asked about its file; an ISO goes on to the checks above.
      const asked: string[] = [];
      const isoOnly = (imageId: string) =>
        checkVmImage({
          repositories: repos,
          imageId,
          nodeId: 'n1',
          fileExists: async (path) => {
            asked.push(path);
            return true;
          },
          kind: { is: 'iso', why: 'only an ISO goes into a CD-ROM drive' },
        });
      await expect(isoOnly(ready.id)).rejects.toThrow(
        'Image Ubuntu 24.04 is a cloud image; only an ISO goes into a CD-ROM drive',
      );
      expect(await errorCodeOf(isoOnly(downloading.id))).toBe(ErrorCode.INVALID_INPUT);
      expect(await errorCodeOf(isoOnly(iso))).toBe(ErrorCode.POOL_NOT_ACTIVE_ON_NODE);
      expect(asked).toEqual([]);

      await rm(join(root, 'cloud/ubuntu.qcow2'));
      expect(await errorCodeOf(check(ready.id))).toBe(ErrorCode.IMAGE_FILE_MISSING);
      expect((await repos.images.require(ready.id)).phase).toBe('missing');
      expect(await errorCodeOf(check(ready.id))).toBe(ErrorCode.IMAGE_NOT_READY);
    });
  });
});
