/**
 * The repository contract suite. It runs unchanged against embedded PGlite and a real
 * PostgreSQL server (QUANTIX_TEST_PG_URL; scripts/services.sh starts one): both must give the
 * same results. A missing PostgreSQL fails the suite, it never skips.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { Repositories } from '../contracts/repositories.js';
import { imageIdForLocation } from '../domain/ids.js';
import type { DiscoveredImage } from '../domain/image.js';
import type { StoragePool } from '../domain/pool.js';
import { ErrorCode, isQuantixError } from '../errors.js';
import { type OpenTestDatabase, openTestDatabase, TEST_DATABASE_CLIENTS } from '../testing/databases.js';
import { errorCodeOf } from '../testing/errors.js';
import type { Database } from './database.js';

describe.each(TEST_DATABASE_CLIENTS)('repositories on %s', (client) => {
  let testDb: OpenTestDatabase;
  let _db: Database;
  let repos: Repositories;
  let pool: StoragePool;

  beforeAll(async () => {
    testDb = await openTestDatabase(client);
    ({ database: _db, repositories: repos } = testDb);
  });
  afterAll(() => testDb?.close());
  beforeEach(async () => {
    await testDb.reset();
    pool = await repos.pools.create({ id: 'pool-a', name: 'Pool A', type: 'local', config: { path: '/srv/a' } });
  });

  describe('images', () => {
    it('reads back a created image with every field, including sizes beyond 32 bits', async () => {
      const created = await repos.images.create({
        name: 'Ubuntu 24.04 LTS',
        description: 'Noble Numbat cloud image',
        labels: { channel: 'lts', arch: 'amd64' },
        kind: 'cloud',
        format: 'qcow2',
        os: {
          family: 'linux',
          distribution: 'ubuntu',
          version: '24.04',
          arch: 'x86_64',
          defaultUser: 'ubuntu',
          cloudInit: true,
        },
        requirements: { minCpu: 1, minMemoryMiB: 1024, minDiskGiB: 10, firmware: 'uefi' },
        catalogId: 'ubuntu-24.04',
        sizeBytes: 5 * 1024 ** 4,
        virtualSizeBytes: 2 ** 53 - 1,
        checksum: { algorithm: 'sha256', value: 'A'.repeat(64) },
        location: { poolId: pool.id, relPath: 'cloud/noble.qcow2' },
      });
      expect(created).toMatchObject({
        phase: 'pending',
        version: 1,
        sizeBytes: 5 * 1024 ** 4,
        virtualSizeBytes: 2 ** 53 - 1,
      });
      expect(created.checksum?.value).toBe('a'.repeat(64));
      expect(created.createdAt).toBeInstanceOf(Date);
      expect(await repos.images.get(created.id)).toEqual(created);
      expect(await repos.images.require(created.id)).toEqual(created);
    });

    it('reports an unknown id as undefined from get and NOT_FOUND from require', async () => {
      expect(await repos.images.get('no-such-image')).toBeUndefined();
      expect(await errorCodeOf(repos.images.require('no-such-image'))).toBe(ErrorCode.NOT_FOUND);
    });

    it('refuses invalid records with a stable code and writes nothing', async () => {
      const cases: [unknown, string][] = [
        [{ name: '', kind: 'iso' }, ErrorCode.INVALID_INPUT],
        [{ name: 'x', kind: 'iso', sizeBytes: -5 }, ErrorCode.INVALID_INPUT],
        [{ name: 'x', kind: 'iso', phase: 'half-done' }, ErrorCode.INVALID_INPUT],
        [
          { name: 'x', kind: 'iso', location: { poolId: pool.id, relPath: '/etc/passwd' } },
          ErrorCode.PATH_ESCAPES_POOL,
        ],
        [
          { name: 'x', kind: 'iso', location: { poolId: pool.id, relPath: 'iso/../../x.iso' } },
          ErrorCode.PATH_ESCAPES_POOL,
        ],
      ];
      for (const [input, code] of cases) {
        expect(await errorCodeOf(repos.images.create(input as never)), JSON.stringify(input)).toBe(code);
      }
      expect(await repos.images.count()).toBe(0);
    });

    it('keeps one image per pool location and one per catalog entry in a pool', async () => {
      const location = { poolId: pool.id, relPath: 'iso/x.iso' };
      const first = await repos.images.create({ name: 'x', kind: 'iso', location });
      expect(await errorCodeOf(repos.images.create({ name: 'y', kind: 'iso', location }))).toBe(
        ErrorCode.ALREADY_EXISTS,
      );
      expect(await errorCodeOf(repos.images.create({ id: first.id, name: 'z', kind: 'iso' }))).toBe(
        ErrorCode.ALREADY_EXISTS,
      );

      const other = await repos.pools.create({ id: 'pool-b', name: 'Pool B', type: 'nfs' });
      await repos.images.create({
        name: 'deb',
        kind: 'cloud',
        catalogId: 'debian-12',
        location: { poolId: pool.id, relPath: 'd.qcow2' },
      });
      expect(
        await errorCodeOf(
          repos.images.create({
            name: 'deb',
            kind: 'cloud',
            catalogId: 'debian-12',
            location: { poolId: pool.id, relPath: 'd2.qcow2' },
          }),
        ),
      ).toBe(ErrorCode.ALREADY_EXISTS);
      await repos.images.create({
        name: 'deb',
        kind: 'cloud',
        catalogId: 'debian-12',
        location: { poolId: other.id, relPath: 'd.qcow2' },
      });
      expect(await repos.images.count({ catalogId: 'debian-12' })).toBe(2);
    });

    it('refuses a location in a pool that does not exist', async () => {
      expect(
        await errorCodeOf(
          repos.images.create({ name: 'x', kind: 'iso', location: { poolId: 'nowhere', relPath: 'x.iso' } }),
        ),
      ).toBe(ErrorCode.NOT_FOUND);
    });

    it('filters by kind, phase, pool, node, catalog id, labels and text, with stable paging', async () => {
      await repos.pools.create({ id: 'pool-b', name: 'Pool B', type: 'nfs' });
      await repos.nodes.create({ id: 'node-1', hostname: 'hv1' });
      const made = [];
      made.push(
        await repos.images.create({
          name: 'Ubuntu 24.04',
          kind: 'cloud',
          catalogId: 'ubuntu-24.04',
          labels: { lts: 'yes' },
          os: { family: 'linux', distribution: 'ubuntu' },
        }),
      );
      made.push(
        await repos.images.create({
          name: 'Debian 12',
          kind: 'cloud',
          catalogId: 'debian-12',
          phase: 'ready',
          location: { poolId: 'pool-b', relPath: 'debian.qcow2' },
        }),
      );
      made.push(
        await repos.images.create({
          name: 'Windows 100% edition',
          kind: 'iso',
          phase: 'ready',
          location: { poolId: pool.id, relPath: 'win.iso' },
          nodeId: 'node-1',
          labels: { lts: 'yes', os: 'windows' },
        }),
      );
      made.push(
        await repos.images.create({
          name: 'Alpine',
          description: 'tiny UBUNTU alternative',
          kind: 'iso',
          location: { poolId: pool.id, relPath: 'alpine.iso' },
        }),
      );

      const names = async (filter: Parameters<Repositories['images']['list']>[0]) =>
        (await repos.images.list(filter)).map((i) => i.name);
      expect(await names({ kind: 'iso' })).toEqual(['Windows 100% edition', 'Alpine']);
      expect(await names({ phase: 'ready' })).toEqual(['Debian 12', 'Windows 100% edition']);
      expect(await names({ phase: ['pending', 'error'] })).toEqual(['Ubuntu 24.04', 'Alpine']);
      expect(await names({ poolId: pool.id })).toEqual(['Windows 100% edition', 'Alpine']);
      expect(await names({ nodeId: 'node-1' })).toEqual(['Windows 100% edition']);
      expect(await names({ catalogId: 'debian-12' })).toEqual(['Debian 12']);
      expect(await names({ labels: { lts: 'yes' } })).toEqual(['Ubuntu 24.04', 'Windows 100% edition']);
      expect(await names({ labels: { lts: 'yes', os: 'windows' } })).toEqual(['Windows 100% edition']);
      expect(await names({ text: 'ubuntu' })).toEqual(['Ubuntu 24.04', 'Alpine']);
      expect(await names({ text: '100%' })).toEqual(['Windows 100% edition']);
      expect(await names({ text: '%' })).toEqual(['Windows 100% edition']);
      expect(await names({ kind: 'iso', phase: 'pending', text: 'alp' })).toEqual(['Alpine']);
      // The file's path in its pool too: what a person remembers of an ISO named after its OS.
      expect(await names({ text: 'WIN.iso' })).toEqual(['Windows 100% edition']);
      expect(await names({ text: 'debian.qcow2' })).toEqual(['Debian 12']);
      expect(await names({ text: '.iso' })).toEqual(['Windows 100% edition', 'Alpine']);
      expect(await names({ limit: 2 })).toEqual(['Ubuntu 24.04', 'Debian 12']);
      expect(await names({ limit: 2, offset: 2 })).toEqual(['Windows 100% edition', 'Alpine']);
      expect(await repos.images.count({ kind: 'iso' })).toBe(2);
      expect(await repos.images.count()).toBe(4);
    });

    it('finds an image by location and by catalog ids', async () => {
      const image = await repos.images.create({
        name: 'x',
        kind: 'cloud',
        catalogId: 'fedora-41',
        location: { poolId: pool.id, relPath: 'a/b/fedora.qcow2' },
      });
      expect(await repos.images.getByLocation({ poolId: pool.id, relPath: 'a/b/fedora.qcow2' })).toEqual(image);
      expect(await repos.images.getByLocation({ poolId: pool.id, relPath: 'a/b/other.qcow2' })).toBeUndefined();
      expect(await errorCodeOf(repos.images.getByLocation({ poolId: pool.id, relPath: '../x' }))).toBe(
        ErrorCode.PATH_ESCAPES_POOL,
      );
      expect((await repos.images.findByCatalogIds(['fedora-41', 'nope'])).map((i) => i.id)).toEqual([image.id]);
      expect(await repos.images.findByCatalogIds(['fedora-41'], { poolId: 'pool-b' })).toEqual([]);
      expect(await repos.images.findByCatalogIds([])).toEqual([]);
    });

    it('enforces the phase transition table on update and leaves the row untouched when refused', async () => {
      const image = await repos.images.create({ name: 'x', kind: 'cloud' });
      const downloading = await repos.images.update(image.id, {
        phase: 'downloading',
        progress: { bytesDone: 10, bytesTotal: 100, percent: 10 },
      });
      expect(downloading).toMatchObject({ phase: 'downloading', version: 2, progress: { bytesDone: 10, percent: 10 } });
      expect(await errorCodeOf(repos.images.update(image.id, { phase: 'ready' }))).toBe(
        ErrorCode.ILLEGAL_PHASE_TRANSITION,
      );
      expect(await repos.images.get(image.id)).toEqual(downloading);
      const verifying = await repos.images.update(image.id, { phase: 'verifying' });
      const ready = await repos.images.update(image.id, { phase: 'ready', sizeBytes: 100, progress: null });
      expect(ready).toMatchObject({ phase: 'ready', version: 4, sizeBytes: 100, progress: null });
      expect(ready.updatedAt.getTime()).toBeGreaterThanOrEqual(verifying.updatedAt.getTime());
      expect(ready.createdAt).toEqual(image.createdAt);
    });

    it('takes a phase reached through another in one write only when both steps are in the table', async () => {
      const image = await repos.images.create({ name: 'x', kind: 'cloud', phase: 'ready' });
      const failed = await repos.images.update(image.id, {
        phase: 'error',
        error: { code: 'IMAGE_FILE_MISMATCH', message: 'not the file recorded', retryable: false },
      });
      expect(await errorCodeOf(repos.images.update(image.id, { phase: 'ready', error: null }))).toBe(
        ErrorCode.ILLEGAL_PHASE_TRANSITION,
      );
      // error → missing is not in the table, whatever comes after it.
      expect(await errorCodeOf(repos.images.update(image.id, { phase: 'ready' }, { via: 'missing' }))).toBe(
        ErrorCode.ILLEGAL_PHASE_TRANSITION,
      );
      expect(await repos.images.get(image.id)).toEqual(failed);
      const ready = await repos.images.update(image.id, { phase: 'ready', error: null }, { via: 'verifying' });
      expect(ready).toMatchObject({ phase: 'ready', error: null, version: failed.version + 1 });
    });

    it('refuses an invalid patch before touching the row', async () => {
      const image = await repos.images.create({ name: 'x', kind: 'cloud' });
      expect(await errorCodeOf(repos.images.update(image.id, { sizeBytes: -1 }))).toBe(ErrorCode.INVALID_INPUT);
      expect(await errorCodeOf(repos.images.update(image.id, { phase: 'bogus' as never }))).toBe(
        ErrorCode.INVALID_INPUT,
      );
      expect(
        await errorCodeOf(repos.images.update(image.id, { location: { poolId: pool.id, relPath: '../../etc' } })),
      ).toBe(ErrorCode.PATH_ESCAPES_POOL);
      expect(await repos.images.get(image.id)).toEqual(image);
      expect(await errorCodeOf(repos.images.update('missing-id', { name: 'y' }))).toBe(ErrorCode.NOT_FOUND);
    });

    it('turns a stale version into VERSION_CONFLICT instead of losing a write', async () => {
      const image = await repos.images.create({ name: 'original', kind: 'iso' });
      const first = await repos.images.update(image.id, { name: 'first writer' }, { expectedVersion: image.version });
      expect(
        await errorCodeOf(repos.images.update(image.id, { name: 'second writer' }, { expectedVersion: image.version })),
      ).toBe(ErrorCode.VERSION_CONFLICT);
      expect((await repos.images.require(image.id)).name).toBe('first writer');
      expect(await errorCodeOf(repos.images.delete(image.id, { expectedVersion: image.version }))).toBe(
        ErrorCode.VERSION_CONFLICT,
      );
      await repos.images.delete(image.id, { expectedVersion: first.version });
      expect(await repos.images.get(image.id)).toBeUndefined();
      expect(await errorCodeOf(repos.images.delete(image.id))).toBe(ErrorCode.NOT_FOUND);
    });

    it('writes whilePhase over any version while the row is in one of those phases, and refuses it after', async () => {
      const image = await repos.images.create({ name: 'busy', kind: 'iso', phase: 'pending' });
      // Other writers (a download starting, its progress) went first: no version is raced for.
      await repos.images.update(image.id, { phase: 'downloading' });
      await repos.images.update(image.id, { progress: { bytesDone: 1, bytesTotal: 10, percent: 10 } });
      const cancelled = await repos.images.update(
        image.id,
        { phase: 'error', error: { code: 'DOWNLOAD_CANCELLED', message: 'cancelled', retryable: true } },
        { whilePhase: ['pending', 'downloading', 'verifying'] },
      );
      expect(cancelled).toMatchObject({ phase: 'error', version: image.version + 3 });
      // No longer in those phases: refused, the row as it was.
      expect(await errorCodeOf(repos.images.update(image.id, { name: 'late' }, { whilePhase: ['downloading'] }))).toBe(
        ErrorCode.VERSION_CONFLICT,
      );
      expect(await repos.images.require(image.id)).toEqual(cancelled);
    });

    it('lets exactly one of two racing writers with the same version win', async () => {
      const image = await repos.images.create({ name: 'race', kind: 'iso' });
      const results = await Promise.allSettled(
        ['a', 'b', 'c'].map((name) => repos.images.update(image.id, { name }, { expectedVersion: image.version })),
      );
      const won = results.filter((r) => r.status === 'fulfilled');
      const lost = results.filter((r) => r.status === 'rejected');
      expect(won).toHaveLength(1);
      expect(lost.map((r) => isQuantixError(r.reason, ErrorCode.VERSION_CONFLICT))).toEqual([true, true]);
      expect((await repos.images.require(image.id)).version).toBe(2);
    });
  });

  describe('images: upsert by location', () => {
    const found = (relPath: string, sizeBytes = 100, extra: Partial<DiscoveredImage> = {}): DiscoveredImage => ({
      poolId: 'pool-a',
      relPath,
      kind: 'iso',
      sizeBytes,
      fileModifiedAt: new Date('2026-01-02T03:04:05.678Z'),
      ...extra,
    });

    it('inserts new files as ready images with deterministic ids', async () => {
      const result = await repos.images.upsertByLocation([found('a.iso'), found('sub/b.iso', 2 ** 40)]);
      expect(result).toEqual({ inserted: 2, updated: 0, untouched: 0 });
      const b = await repos.images.require(imageIdForLocation('pool-a', 'sub/b.iso'));
      expect(b).toMatchObject({
        name: 'b.iso',
        phase: 'ready',
        sizeBytes: 2 ** 40,
        location: { poolId: 'pool-a', relPath: 'sub/b.iso' },
      });
      expect(b.fileModifiedAt?.toISOString()).toBe('2026-01-02T03:04:05.678Z');
    });

    it('re-scans without duplicating: unchanged files are untouched, changed ones updated', async () => {
      await repos.images.upsertByLocation([found('a.iso'), found('b.iso')]);
      const before = await repos.images.require(imageIdForLocation('pool-a', 'a.iso'));
      expect(await repos.images.upsertByLocation([found('a.iso'), found('b.iso')])).toEqual({
        inserted: 0,
        updated: 0,
        untouched: 2,
      });
      expect(await repos.images.require(before.id)).toEqual(before);
      const changed = await repos.images.upsertByLocation([found('a.iso', 999), found('b.iso'), found('c.iso')]);
      expect(changed).toEqual({ inserted: 1, updated: 1, untouched: 1 });
      const after = await repos.images.require(before.id);
      expect(after).toMatchObject({ sizeBytes: 999, version: 2 });
      expect(await repos.images.count()).toBe(3);
    });

    it('takes what a re-scan learned about a changed file, and keeps what it did not', async () => {
      await repos.images.upsertByLocation([
        found('d.iso', 100, {
          format: 'iso',
          os: { family: 'linux', distribution: 'debian', version: '12' },
          labels: { a: '1' },
        }),
      ]);
      const id = imageIdForLocation('pool-a', 'd.iso');
      await repos.images.upsertByLocation([
        found('d.iso', 200, { os: { family: 'linux', distribution: 'debian', version: '13' }, labels: { b: '2' } }),
      ]);
      expect(await repos.images.require(id)).toMatchObject({
        sizeBytes: 200,
        format: 'iso',
        os: { distribution: 'debian', version: '13' },
        labels: { a: '1', b: '2' },
      });
      await repos.images.upsertByLocation([found('d.iso', 300)]); // a scan that could not identify it
      expect((await repos.images.require(id)).os).toMatchObject({ distribution: 'debian', version: '13' });
    });

    it('brings a missing image back to ready, but never touches a busy row', async () => {
      await repos.images.upsertByLocation([found('gone.iso')]);
      const id = imageIdForLocation('pool-a', 'gone.iso');
      await repos.images.update(id, { phase: 'missing' });
      const busy = await repos.images.create({
        name: 'dl',
        kind: 'cloud',
        location: { poolId: 'pool-a', relPath: 'dl.qcow2' },
      });
      await repos.images.update(busy.id, { phase: 'downloading' });
      const result = await repos.images.upsertByLocation([found('gone.iso'), found('dl.qcow2', 5, { kind: 'cloud' })]);
      expect(result).toEqual({ inserted: 0, updated: 1, untouched: 1 });
      expect((await repos.images.require(id)).phase).toBe('ready');
      expect(await repos.images.require(busy.id)).toMatchObject({ phase: 'downloading', sizeBytes: null });
    });

    it('collapses duplicates in one batch and refuses a batch with one bad entry without writing', async () => {
      expect(await repos.images.upsertByLocation([found('a.iso', 1), found('a.iso', 2)])).toEqual({
        inserted: 1,
        updated: 0,
        untouched: 0,
      });
      expect((await repos.images.require(imageIdForLocation('pool-a', 'a.iso'))).sizeBytes).toBe(2);
      expect(await errorCodeOf(repos.images.upsertByLocation([found('ok.iso'), found('../escape.iso')]))).toBe(
        ErrorCode.PATH_ESCAPES_POOL,
      );
      expect(await errorCodeOf(repos.images.upsertByLocation([found('ok.iso'), found('neg.iso', -1)]))).toBe(
        ErrorCode.INVALID_INPUT,
      );
      expect(await repos.images.count()).toBe(1);
    });

    it('handles batches larger than one INSERT chunk', async () => {
      const batch = Array.from({ length: 2500 }, (_, i) => found(`bulk/${i}.iso`, i));
      expect(await repos.images.upsertByLocation(batch)).toEqual({ inserted: 2500, updated: 0, untouched: 0 });
      expect(await repos.images.count({ poolId: 'pool-a' })).toBe(2500);
      expect((await repos.images.require(imageIdForLocation('pool-a', 'bulk/2499.iso'))).sizeBytes).toBe(2499);
    });

    it('stamps the rows of a pool: any insert, update or delete of one moves it, reads do not', async () => {
      const stamp = () => repos.images.fileStatesStamp({ poolId: 'pool-a', kind: 'iso' });
      const empty = await stamp();
      await repos.images.upsertByLocation([found('a.iso'), found('b.iso')]);
      const two = await stamp();
      expect(two).not.toBe(empty);
      await repos.images.upsertByLocation([found('a.iso'), found('b.iso')]); // nothing changed: nothing written
      await repos.images.listFileStates({ poolId: 'pool-a' });
      expect(await stamp()).toBe(two);
      const a = imageIdForLocation('pool-a', 'a.iso');
      await repos.images.update(a, { labels: { shelf: '1' } });
      const updated = await stamp();
      expect(updated).not.toBe(two);
      // A delete and an insert of a fresh row: same count, and the versions sum as before.
      await repos.images.delete(imageIdForLocation('pool-a', 'b.iso'));
      await repos.images.upsertByLocation([found('c.iso')]);
      expect(await stamp()).not.toBe(updated);
      // Rows of another kind are not stamped with these.
      const before = await stamp();
      await repos.images.upsertByLocation([found('d.qcow2', 5, { kind: 'cloud' })]);
      expect(await stamp()).toBe(before);
    });

    it('lists the file facts of located rows, as their whole rows have them', async () => {
      await repos.images.upsertByLocation([found('a.iso'), found('sub/b.iso', 2 ** 40)]);
      const b = imageIdForLocation('pool-a', 'sub/b.iso');
      await repos.images.update(b, {
        phase: 'missing',
        error: { code: 'ISO_TRUNCATED', message: 'cut short', retryable: false },
      });
      await repos.images.create({ name: 'nowhere', kind: 'cloud' }); // no location: not a file
      const byId = (a: { id: string }, b: { id: string }) => a.id.localeCompare(b.id);
      const states = (await repos.images.listFileStates()).sort(byId);
      const rows = (await repos.images.list()).filter((row) => row.location).sort(byId);
      expect(states).toHaveLength(2);
      expect(states).toEqual(
        rows.map((row) => ({
          id: row.id,
          relPath: row.location?.relPath,
          phase: row.phase,
          sizeBytes: row.sizeBytes,
          fileModifiedMs: row.fileModifiedAt?.getTime(),
          version: row.version,
          errorCode: row.error?.code ?? null,
        })),
      );
      expect(states.find((s) => s.id === b)).toMatchObject({
        sizeBytes: 2 ** 40,
        fileModifiedMs: Date.parse('2026-01-02T03:04:05.678Z'),
        errorCode: 'ISO_TRUNCATED',
      });
      expect(await repos.images.listFileStates({ poolId: 'pool-a', phase: 'ready' })).toHaveLength(1);
    });

    it('refuses files in a pool that does not exist', async () => {
      expect(await errorCodeOf(repos.images.upsertByLocation([{ ...found('x.iso'), poolId: 'ghost' }]))).toBe(
        ErrorCode.NOT_FOUND,
      );
    });
  });

  describe('storage pools', () => {
    it('creates, finds, lists by type and node, and updates with optimistic concurrency', async () => {
      const nfs = await repos.pools.create({
        name: 'ISO library',
        type: 'nfs',
        config: { server: '10.0.0.5', export: '/srv/nfs/qVDS01' },
        contentTypes: ['iso'],
        shared: true,
        nodeIds: ['n1', 'n2', 'n1'],
      });
      expect(nfs).toMatchObject({ shared: true, nodeIds: ['n1', 'n2'], contentTypes: ['iso'], version: 1 });
      expect(await repos.pools.getByName('ISO library')).toEqual(nfs);
      expect((await repos.pools.list({ type: 'nfs' })).map((p) => p.id)).toEqual([nfs.id]);
      expect((await repos.pools.list({ nodeId: 'n2' })).map((p) => p.id)).toEqual([nfs.id]);
      expect(await repos.pools.list({ nodeId: 'n3' })).toEqual([]);
      const updated = await repos.pools.update(nfs.id, { nodeIds: ['n3'] }, { expectedVersion: 1 });
      expect(updated).toMatchObject({ nodeIds: ['n3'], version: 2 });
      expect(await errorCodeOf(repos.pools.update(nfs.id, { name: 'x' }, { expectedVersion: 1 }))).toBe(
        ErrorCode.VERSION_CONFLICT,
      );
      expect(await errorCodeOf(repos.pools.create({ name: 'ISO library', type: 'local' }))).toBe(
        ErrorCode.ALREADY_EXISTS,
      );
      expect(await errorCodeOf(repos.pools.create({ name: 'bad', type: 'Bad Type!' }))).toBe(ErrorCode.INVALID_INPUT);
    });

    it('bumps the pool-set generation on every definition change, and only then', async () => {
      const start = await repos.pools.currentGeneration();
      const created = await repos.pools.create({ name: 'gen', type: 'local' });
      expect(await repos.pools.currentGeneration()).toBe(start + 1);
      await repos.pools.update(created.id, { labels: { tier: 'fast' } });
      expect(await repos.pools.currentGeneration()).toBe(start + 2);
      await repos.nodes.create({ id: 'n1', hostname: 'hv1' });
      await repos.pools.setNodeState({ poolId: created.id, nodeId: 'n1', status: 'active' });
      expect(await repos.pools.currentGeneration()).toBe(start + 2); // node state is not the definition
      expect(await errorCodeOf(repos.pools.update(created.id, { name: '' }))).toBe(ErrorCode.INVALID_INPUT);
      expect(await errorCodeOf(repos.pools.update(created.id, { name: 'x' }, { expectedVersion: 99 }))).toBe(
        ErrorCode.VERSION_CONFLICT,
      );
      expect(await repos.pools.currentGeneration()).toBe(start + 2); // refused writes bump nothing
      await repos.pools.delete(created.id);
      expect(await repos.pools.currentGeneration()).toBe(start + 3);
    });

    it('assigns a pool that is not shared to one node at most', async () => {
      expect(await errorCodeOf(repos.pools.create({ name: 'local', type: 'local', nodeIds: ['n1', 'n2'] }))).toBe(
        ErrorCode.INVALID_INPUT,
      );
      const local = await repos.pools.create({ name: 'local', type: 'local', nodeIds: ['n1'] });
      expect(await errorCodeOf(repos.pools.update(local.id, { nodeIds: ['n1', 'n2'] }))).toBe(ErrorCode.INVALID_INPUT);
      const shared = await repos.pools.update(local.id, { shared: true, nodeIds: ['n1', 'n2'] });
      expect(shared.nodeIds).toEqual(['n1', 'n2']);
      expect(await errorCodeOf(repos.pools.update(local.id, { shared: false }))).toBe(ErrorCode.INVALID_INPUT);
    });

    it('refuses to delete a pool that still holds images, and keeps both', async () => {
      await repos.images.create({ name: 'x', kind: 'iso', location: { poolId: pool.id, relPath: 'x.iso' } });
      expect(await errorCodeOf(repos.pools.delete(pool.id))).toBe(ErrorCode.IN_USE);
      expect(await repos.pools.get(pool.id)).toBeDefined();
      expect(await repos.images.count()).toBe(1);
    });

    it('stores per-node state apart from the definition, replaced on each report', async () => {
      await repos.nodes.create({ id: 'n1', hostname: 'hv1' });
      const first = await repos.pools.setNodeState({
        poolId: pool.id,
        nodeId: 'n1',
        status: 'unavailable',
        lastError: 'mount failed',
        syncedGeneration: 3,
      });
      expect(first).toMatchObject({
        status: 'unavailable',
        lastError: 'mount failed',
        syncedGeneration: 3,
        mountPath: null,
      });
      const second = await repos.pools.setNodeState({
        poolId: pool.id,
        nodeId: 'n1',
        status: 'active',
        mountPath: '/srv/nfs/qVDS01',
        capacityBytes: 8 * 1024 ** 4,
        availableBytes: 1024 ** 4,
        syncedGeneration: 4,
      });
      expect(second).toMatchObject({
        status: 'active',
        lastError: null,
        capacityBytes: 8 * 1024 ** 4,
        syncedGeneration: 4,
      });
      expect(await repos.pools.getNodeState(pool.id, 'n1')).toEqual(second);
      expect(await repos.pools.listNodeStates({ nodeId: 'n1' })).toEqual([second]);
      expect(await errorCodeOf(repos.pools.setNodeState({ poolId: pool.id, nodeId: 'ghost', status: 'active' }))).toBe(
        ErrorCode.NOT_FOUND,
      );
      await repos.pools.delete(pool.id);
      expect(await repos.pools.listNodeStates({ nodeId: 'n1' })).toEqual([]);
    });

    it('stores many nodes’ reports in one statement, and forgets states of pools unassigned since', async () => {
      await repos.nodes.create({ id: 'n1', hostname: 'hv1' });
      await repos.nodes.create({ id: 'n2', hostname: 'hv2' });
      const shared = await repos.pools.create({
        name: 'shared',
        type: 'nfs',
        config: { server: 'nas', export: '/x' },
        shared: true,
        nodeIds: ['n1', 'n2'],
      });
      await repos.pools.setNodeStates([
        { poolId: shared.id, nodeId: 'n1', status: 'unavailable', lastError: 'first' },
        { poolId: shared.id, nodeId: 'n2', status: 'active', mountPath: '/mnt/a' },
        // The same pair twice in one batch: the later report wins.
        { poolId: shared.id, nodeId: 'n1', status: 'active', mountPath: '/mnt/b' },
      ]);
      const stored = await repos.pools.listNodeStates({ poolId: shared.id });
      expect(stored.map((state) => [state.nodeId, state.status, state.mountPath, state.lastError])).toEqual([
        ['n1', 'active', '/mnt/b', null],
        ['n2', 'active', '/mnt/a', null],
      ]);
      await repos.pools.setNodeStates([]);
      expect(await repos.pools.listNodeStates({ poolId: shared.id })).toEqual(stored);

      // Another pool that holds n1 and n3 (n3 is not asked about) and one that holds no node.
      await repos.nodes.create({ id: 'n3', hostname: 'hv3' });
      const other = await repos.pools.create({
        name: 'other',
        type: 'nfs',
        config: { server: 'nas', export: '/y' },
        shared: true,
        nodeIds: ['n3', 'n1'],
      });
      await repos.pools.setNodeStates([
        { poolId: other.id, nodeId: 'n1', status: 'active' },
        { poolId: other.id, nodeId: 'n3', status: 'active' },
        { poolId: pool.id, nodeId: 'n1', status: 'active' },
        { poolId: pool.id, nodeId: 'n3', status: 'active' },
      ]);

      await repos.pools.update(shared.id, { nodeIds: ['n2'] });
      await repos.pools.deleteUnassignedNodeStates(['n1', 'n2', 'n1']);
      const pairs = async () =>
        (await repos.pools.listNodeStates({}))
          .map(
            (state) =>
              `${state.poolId === shared.id ? 'shared' : state.poolId === other.id ? 'other' : 'a'}:${state.nodeId}`,
          )
          .sort();
      expect(await pairs()).toEqual(['a:n3', 'other:n1', 'other:n3', 'shared:n2']);
      await repos.pools.deleteUnassignedNodeStates(['n3']);
      expect(await pairs()).toEqual(['other:n1', 'other:n3', 'shared:n2']);
    });

    it('marks the states of nodes gone unknown with each node’s reason, keeping what they last reported', async () => {
      await repos.nodes.create({ id: 'n1', hostname: 'hv1' });
      await repos.nodes.create({ id: 'n2', hostname: 'hv2' });
      await repos.nodes.create({ id: 'n3', hostname: 'hv3' });
      const checkedAt = new Date('2026-11-30T10:00:00.000Z');
      await repos.pools.setNodeStates([
        { poolId: pool.id, nodeId: 'n1', status: 'active', mountPath: '/mnt/a', capacityBytes: 2 ** 40, checkedAt },
        { poolId: pool.id, nodeId: 'n2', status: 'unknown', lastError: 'earlier' },
        { poolId: pool.id, nodeId: 'n3', status: 'active', mountPath: '/mnt/c' },
      ]);
      const marked = await repos.pools.markNodeStatesUnknown([
        { nodeId: 'n1', reason: 'n1 went away' },
        { nodeId: 'n2', reason: 'n2 went away' },
      ]);
      // n2 was unknown already: left as it was.
      expect(marked.map((state) => [state.nodeId, state.status, state.lastError])).toEqual([
        ['n1', 'unknown', 'n1 went away'],
      ]);
      expect(await repos.pools.getNodeState(pool.id, 'n1')).toMatchObject({
        status: 'unknown',
        mountPath: '/mnt/a',
        capacityBytes: 2 ** 40,
        checkedAt,
      });
      expect(await repos.pools.getNodeState(pool.id, 'n2')).toMatchObject({ status: 'unknown', lastError: 'earlier' });
      expect(await repos.pools.getNodeState(pool.id, 'n3')).toMatchObject({ status: 'active' });
      expect(await repos.pools.markNodeStatesUnknown([])).toEqual([]);
    });
  });

  describe('nodes and VMs', () => {
    it('registers nodes with unique hostnames and tracks their connection', async () => {
      const node = await repos.nodes.create({ hostname: 'hv1.example', address: '192.0.2.10', labels: { rack: 'r1' } });
      expect(node).toMatchObject({ connectionState: 'disconnected', lastSeenAt: null, capabilities: {} });
      expect(await errorCodeOf(repos.nodes.create({ hostname: 'hv1.example' }))).toBe(ErrorCode.ALREADY_EXISTS);
      expect(await errorCodeOf(repos.nodes.create({ hostname: 'bad host; rm -rf /' }))).toBe(ErrorCode.INVALID_INPUT);
      const seen = new Date('2026-11-26T10:00:00.123Z');
      const connected = await repos.nodes.update(node.id, {
        connectionState: 'connected',
        lastSeenAt: seen,
        agentVersion: '0.1.0',
      });
      expect(connected).toMatchObject({ connectionState: 'connected', lastSeenAt: seen, version: 2 });
      expect(await repos.nodes.getByHostname('hv1.example')).toEqual(connected);
      expect((await repos.nodes.list({ connectionState: 'connected' })).map((n) => n.id)).toEqual([node.id]);
      expect((await repos.nodes.list({ labels: { rack: 'r2' } })).length).toBe(0);
    });

    it('keeps a node token digest apart from the node record', async () => {
      const node = await repos.nodes.create({ hostname: 'hv-token' });
      expect(await repos.nodes.getTokenDigest(node.id)).toBeNull();
      await repos.nodes.setTokenDigest(node.id, 'f'.repeat(64));
      expect(await repos.nodes.getTokenDigest(node.id)).toBe('f'.repeat(64));
      expect(Object.keys(await repos.nodes.require(node.id))).not.toContain('tokenSha256');
      expect(JSON.stringify(await repos.nodes.require(node.id))).not.toContain('f'.repeat(64));
      expect(await errorCodeOf(repos.nodes.setTokenDigest(node.id, 'plain-token'))).toBe(ErrorCode.INVALID_INPUT);
      expect(await errorCodeOf(repos.nodes.setTokenDigest('ghost', 'f'.repeat(64)))).toBe(ErrorCode.NOT_FOUND);
    });

    it('looks up many token digests and records many connections in one statement each', async () => {
      await repos.nodes.create({ id: 'n1', hostname: 'hv1' });
      await repos.nodes.create({ id: 'n2', hostname: 'hv2', labels: { rack: 'r1' } });
      await repos.nodes.setTokenDigest('n1', 'a'.repeat(64));
      expect(await repos.nodes.getTokenDigests(['n1', 'n2', 'ghost'])).toEqual(
        new Map([
          ['n1', 'a'.repeat(64)],
          ['n2', null],
        ]),
      );

      const recorded = await repos.nodes.setConnectionStates([
        { id: 'n1', connectionState: 'connected', agentVersion: '1.2.3', capabilities: { kvm: true } },
        { id: 'n2', connectionState: 'connected', agentVersion: null },
        { id: 'ghost', connectionState: 'connected' },
      ]);
      expect(recorded.sort()).toEqual(['n1', 'n2']);
      const n1 = await repos.nodes.require('n1');
      expect(n1).toMatchObject({
        connectionState: 'connected',
        agentVersion: '1.2.3',
        capabilities: { kvm: true },
        version: 2,
      });
      expect(n1.lastSeenAt).toBeInstanceOf(Date);
      expect(await repos.nodes.require('n2')).toMatchObject({
        agentVersion: null,
        labels: { rack: 'r1' },
        capabilities: {},
      });

      // A disconnect changes the state only: what the hello said stays.
      await repos.nodes.setConnectionStates([{ id: 'n1', connectionState: 'disconnected' }]);
      expect(await repos.nodes.require('n1')).toMatchObject({
        connectionState: 'disconnected',
        agentVersion: '1.2.3',
        capabilities: { kvm: true },
        version: 3,
      });
      expect(await errorCodeOf(repos.nodes.setConnectionStates([{ id: 'n1', connectionState: 'gone' as never }]))).toBe(
        ErrorCode.INVALID_INPUT,
      );
    });

    it('creates VMs on existing nodes only, with safe names, and keeps a node with VMs', async () => {
      const node = await repos.nodes.create({ id: 'n1', hostname: 'hv1' });
      const image = await repos.images.create({
        name: 'deb',
        kind: 'cloud',
        phase: 'ready',
        location: { poolId: pool.id, relPath: 'deb.qcow2' },
      });
      const vm = await repos.vms.create({
        name: 'web-01',
        nodeId: node.id,
        cpu: 2,
        memoryMiB: 2048,
        disks: [{ imageId: image.id, poolId: pool.id, relPath: 'vms/web-01.qcow2', sizeGiB: 20 }],
        bootImageId: image.id,
      });
      expect(vm).toMatchObject({ state: 'creating', disks: [{ format: 'qcow2', bus: 'virtio', sizeGiB: 20 }] });
      expect(await errorCodeOf(repos.vms.create({ name: 'web-01', nodeId: node.id }))).toBe(ErrorCode.ALREADY_EXISTS);
      expect(await errorCodeOf(repos.vms.create({ name: 'x', nodeId: 'ghost' }))).toBe(ErrorCode.NOT_FOUND);
      expect(await errorCodeOf(repos.vms.create({ name: 'a;reboot', nodeId: node.id }))).toBe(ErrorCode.INVALID_INPUT);
      expect(await errorCodeOf(repos.vms.create({ name: '$(id)', nodeId: node.id }))).toBe(ErrorCode.INVALID_INPUT);
      expect(
        await errorCodeOf(
          repos.vms.create({
            name: 'y',
            nodeId: node.id,
            disks: [{ poolId: pool.id, relPath: '../../etc/shadow', sizeGiB: 1 }],
          }),
        ),
      ).toBe(ErrorCode.PATH_ESCAPES_POOL);
      const running = await repos.vms.update(vm.id, { state: 'running' }, { expectedVersion: 1 });
      expect((await repos.vms.list({ nodeId: node.id, state: ['running'] })).map((v) => v.id)).toEqual([running.id]);
      expect((await repos.vms.list({ nodeId: ['ghost', node.id] })).map((v) => v.id)).toEqual([running.id]);
      expect(await repos.vms.list({ nodeId: ['ghost'] })).toEqual([]);
      expect(await repos.vms.list({ nodeId: [] })).toEqual([]);
      expect(await repos.vms.getByName('web-01')).toEqual(running);
      expect(await errorCodeOf(repos.nodes.delete(node.id))).toBe(ErrorCode.IN_USE);
      await repos.images.delete(image.id);
      expect((await repos.vms.require(vm.id)).bootImageId).toBeNull();
      await repos.vms.delete(vm.id);
      await repos.nodes.delete(node.id);
      expect(await repos.nodes.list()).toEqual([]);
    });

    it('keeps a VM’s NICs with their MACs, and each MAC on one VM only', async () => {
      const node = await repos.nodes.create({ id: 'n-nic', hostname: 'hv-nic' });
      const nic = (mac: string) => ({ attachment: 'network' as const, source: 'default', mac });
      const web = await repos.vms.create({
        name: 'web',
        nodeId: node.id,
        nics: [nic('52:54:00:00:00:01'), { attachment: 'bridge', source: 'br0', mac: '52:54:00:00:00:02' }],
      });
      expect((await repos.vms.require(web.id)).nics).toEqual([
        { attachment: 'network', source: 'default', model: 'virtio', mac: '52:54:00:00:00:01' },
        { attachment: 'bridge', source: 'br0', model: 'virtio', mac: '52:54:00:00:00:02' },
      ]);
      // Another VM with a MAC web holds: refused whole, no row left behind.
      const taken = repos.vms.create({ name: 'db', nodeId: node.id, nics: [nic('52:54:00:00:00:02')] });
      await expect(taken).rejects.toMatchObject({
        code: ErrorCode.ALREADY_EXISTS,
        message: expect.stringContaining('a NIC with this MAC address'),
      });
      expect(await repos.vms.getByName('db')).toBeUndefined();
      expect(
        await errorCodeOf(repos.vms.create({ name: 'bad', nodeId: node.id, nics: [nic('01:00:5e:00:00:01')] })),
      ).toBe(ErrorCode.INVALID_INPUT);
      // Changing web's NICs frees the MAC it gave up; deleting web frees the rest.
      await repos.vms.update(web.id, { nics: [nic('52:54:00:00:00:01')] });
      const db = await repos.vms.create({ name: 'db', nodeId: node.id, nics: [nic('52:54:00:00:00:02')] });
      await repos.vms.delete(web.id);
      const again = await repos.vms.create({ name: 'web2', nodeId: node.id, nics: [nic('52:54:00:00:00:01')] });
      await repos.vms.delete(db.id);
      await repos.vms.delete(again.id);
      await repos.nodes.delete(node.id);
    });
  });
});
