/**
 * The download lifecycle in the database, on PGlite and PostgreSQL, run in process
 * (LocalDownloadExecutor) through a real Quantix instance with the real local storage backend
 * and the real HTTP fetcher, against a real HTTP server serving a qcow2. The same lifecycle on
 * nodes is tested in examples/control-plane (hub and node-link suites, with real daemons).
 */
import { execFileSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { statfs } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createQuantix, type Image, type Quantix, type QuantixEvents, type StoragePool } from '@quantix/core';
import {
  createTestDatabase,
  mountSmallFilesystem,
  TEST_DATABASE_CLIENTS,
  type TestDatabase,
} from '@quantix/core/testing';
import { type CatalogEntryInput, createImagesCloudPlugin, type ImagesCloudPluginOptions } from '@quantix/images-cloud';
import {
  type ImageServer,
  makeQcow2,
  sha256,
  sha256Sums,
  startImageServer,
  VIRTUAL_SIZE,
} from '@quantix/images-cloud/testing';
import { storageLocalPlugin } from '@quantix/storage-local';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { createInProcessDownloads, type DownloadService } from './downloads.js';
import { SOURCE_LABELS } from './source.js';

const IMAGE = '/jammy/current/jammy-server-cloudimg-amd64.img';
const SUMS = '/jammy/current/SHA256SUMS';
const ENTRY_ID = 'test-jammy';
/** Another release's image under the same file name, as mirrors name them (…/current/<same name>). */
const TWIN = '/noble/current/jammy-server-cloudimg-amd64.img';

let server: ImageServer;
let fixtures: string;
let image: Buffer;

function entry(): CatalogEntryInput {
  return {
    id: ENTRY_ID,
    name: 'Ubuntu 22.04 (test mirror)',
    os: { family: 'linux', distribution: 'ubuntu', version: '22.04', defaultUser: 'ubuntu', cloudInit: true },
    requirements: { minCpu: 1, minMemoryMiB: 512, minDiskGiB: 10, firmware: 'any' },
    sourceUrl: `${server.url}${IMAGE}`,
    checksumUrl: `${server.url}${SUMS}`,
    checksumAlgorithm: 'sha256',
  };
}

function files(root: string): string[] {
  if (!existsSync(root)) return [];
  return readdirSync(root, { recursive: true, withFileTypes: true })
    .filter((d) => d.isFile())
    .map((d) => join(d.parentPath, d.name).slice(root.length + 1))
    .sort();
}

beforeAll(async () => {
  fixtures = mkdtempSync(join(tmpdir(), 'quantix-lifecycle-fixtures-'));
  image = await makeQcow2(fixtures, 'jammy.qcow2', 6);
  server = await startImageServer();
});

afterAll(async () => {
  await server?.close();
  rmSync(fixtures, { recursive: true, force: true });
});

describe.each(TEST_DATABASE_CLIENTS)('cloud image lifecycle on %s', (client) => {
  let testDb: TestDatabase;
  let dataDir: string | undefined;
  let quantix: Quantix | undefined;
  let poolDir: string;
  let pool: StoragePool;
  let phases: QuantixEvents['image.phase'][];
  let progress: QuantixEvents['image.progress'][];

  let downloads: DownloadService | undefined;

  async function open(options: ImagesCloudPluginOptions = {}, reconcile = true): Promise<Quantix> {
    const instance = await createQuantix({
      database: testDb.config,
      plugins: [
        storageLocalPlugin,
        createImagesCloudPlugin({
          builtinCatalog: false,
          // A second entry whose URL ends in the same file name, from another directory.
          entries: [entry(), { ...entry(), id: `${ENTRY_ID}-twin`, name: 'Twin', sourceUrl: `${server.url}${TWIN}` }],
          fetcher: { policy: { allowAddresses: ['127.0.0.0/8'] }, retry: { baseDelayMs: 10, maxDelayMs: 50 } },
          ...options,
        }),
      ],
    });
    phases = [];
    progress = [];
    instance.events.on('image.phase', (e) => phases.push(e));
    instance.events.on('image.progress', (e) => progress.push(e));
    downloads = createInProcessDownloads(instance, { progressWriteMs: 20 });
    if (reconcile) await downloads.reconcileOnStart();
    return instance;
  }

  /** Closes the downloads first (rows stay as they are, for the next start), then the instance. */
  async function close(): Promise<void> {
    await downloads?.close();
    await quantix?.close();
  }

  const service = () => downloads as DownloadService;
  /** Settles once a third of the image has arrived for download `imageId`, as its progress events say. */
  const aThirdArrived = (imageId: string) =>
    new Promise<void>((resolve) => {
      const check = (e: QuantixEvents['image.progress']) => {
        if (e.imageId === imageId && e.progress.bytesDone > image.length / 3) {
          quantix?.events.off('image.progress', check);
          resolve();
        }
      };
      quantix?.events.on('image.progress', check);
    });

  const imagePath = () => join(poolDir, 'images', `${ENTRY_ID}.qcow2`);
  const createPoolAt = (path: string) =>
    (quantix as Quantix).repositories.pools.create({
      name: `small-${path.slice(-6)}`,
      type: 'local',
      config: { path },
    });

  beforeAll(async () => {
    dataDir = client === 'pglite' ? mkdtempSync(join(tmpdir(), 'quantix-lifecycle-db-')) : undefined;
    testDb = await createTestDatabase(client, dataDir ? { dataDir } : {});
  });

  afterAll(async () => {
    await testDb?.dispose();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  beforeEach(async () => {
    server.reset();
    server.setFile(IMAGE, image);
    server.setFile(SUMS, sha256Sums({ 'jammy-server-cloudimg-amd64.img': image }));
    poolDir = mkdtempSync(join(tmpdir(), 'quantix-pool-'));
    quantix = await open();
    pool = await quantix.repositories.pools.create({
      name: `pool-${poolDir.slice(-6)}`,
      type: 'local',
      config: { path: poolDir },
    });
  });

  afterEach(async () => {
    await close();
    quantix = undefined;
    rmSync(poolDir, { recursive: true, force: true });
  });

  it('downloads a catalog image into a pool: pending → downloading → verifying → ready, with progress in the row', async () => {
    const { image: pending, completion } = await service().download({ catalogId: ENTRY_ID, poolId: pool.id });
    expect(pending).toMatchObject({
      phase: 'pending',
      kind: 'cloud',
      catalogId: ENTRY_ID,
      location: { poolId: pool.id, relPath: `images/${ENTRY_ID}.qcow2` },
      os: { distribution: 'ubuntu', defaultUser: 'ubuntu' },
      labels: { [SOURCE_LABELS.url]: `${server.url}${IMAGE}`, [SOURCE_LABELS.checksumUrl]: `${server.url}${SUMS}` },
    });
    const ready = await completion;

    expect(ready).toMatchObject({
      phase: 'ready',
      error: null,
      format: 'qcow2',
      sizeBytes: image.length,
      virtualSizeBytes: VIRTUAL_SIZE,
      checksum: { algorithm: 'sha256', value: sha256(image) },
      progress: { bytesDone: image.length, bytesTotal: image.length, percent: 100 },
    });
    expect(ready.fileModifiedAt).toBeInstanceOf(Date);
    expect(await quantix?.repositories.images.require(pending.id)).toEqual(ready);
    expect(sha256(readFileSync(imagePath()))).toBe(sha256(image));
    expect(files(poolDir)).toEqual([`images/${ENTRY_ID}.qcow2`]);
    expect(phases.map((p) => `${p.from}→${p.to}`)).toEqual([
      'null→pending',
      'pending→downloading',
      'downloading→verifying',
      'verifying→ready',
    ]);
    expect(progress.length).toBeGreaterThan(0);
    expect(progress.at(-1)?.progress).toEqual({ bytesDone: image.length, bytesTotal: image.length, percent: 100 });
    // The row is updated as it goes, each write bumping the version: create, phases, progress.
    expect(ready.version).toBeGreaterThanOrEqual(4);

    // Asked again: the same row, nothing fetched.
    server.requests.length = 0;
    const again = await service().download({ catalogId: ENTRY_ID, poolId: pool.id });
    expect(again.image.id).toBe(pending.id);
    expect((await again.completion).phase).toBe('ready');
    expect(server.requests).toEqual([]);
  });

  it('keeps two catalog entries whose URLs end in the same file name apart, each in its own file', async () => {
    server.setFile(TWIN, image);
    const [a, b] = await Promise.all([
      service().download({ catalogId: ENTRY_ID, poolId: pool.id }),
      service().download({ catalogId: `${ENTRY_ID}-twin`, poolId: pool.id }),
    ]);
    expect(a.image.id).not.toBe(b.image.id);
    const [ra, rb] = await Promise.all([a.completion, b.completion]);
    expect([ra.phase, rb.phase]).toEqual(['ready', 'ready']);
    expect(files(poolDir)).toEqual([`images/${ENTRY_ID}-twin.qcow2`, `images/${ENTRY_ID}.qcow2`]);
  });

  it('joins two requests of the same image into the same pool into one download', async () => {
    server.behaviour.bytesPerSecond = 16 * 1024 * 1024;
    const [a, b] = await Promise.all([
      service().download({ catalogId: ENTRY_ID, poolId: pool.id }),
      service().download({ catalogId: ENTRY_ID, poolId: pool.id }),
    ]);
    expect(b.image.id).toBe(a.image.id);
    const [ra, rb] = await Promise.all([a.completion, b.completion]);
    expect(ra).toEqual(rb);
    expect(server.requestsFor(IMAGE)).toHaveLength(1);
    expect(await quantix?.repositories.images.count({ catalogId: ENTRY_ID, poolId: pool.id })).toBe(1);
  });

  it('a URL download whose file is taken in the pool: the same download asked again joins it, any other is refused, the row kept', async () => {
    server.setFile(TWIN, image);
    const source = (path: string, checksum: string | null) => ({
      url: `${server.url}${path}`,
      checksum: checksum ? { algorithm: 'sha256' as const, value: checksum } : null,
    });
    const first = await service().download({ poolId: pool.id, source: source(IMAGE, sha256(image)) });
    const ready = await first.completion;
    expect(ready).toMatchObject({ phase: 'ready', location: { relPath: 'images/jammy-server-cloudimg-amd64.img' } });

    // The same request again (its checksum in capitals): the same image, nothing fetched.
    server.requests.length = 0;
    const again = await service().download({ poolId: pool.id, source: source(IMAGE, sha256(image).toUpperCase()) });
    expect(again.image.id).toBe(ready.id);
    expect(server.requests).toEqual([]);

    // Another URL ending in the same file name, another checksum, another name: each refused, naming the image.
    const refusals: [Parameters<DownloadService['download']>[0], RegExp][] = [
      [{ poolId: pool.id, source: source(TWIN, sha256(image)) }, /it was downloaded from .*\/jammy\/current\//],
      [{ poolId: pool.id, source: source(IMAGE, 'ab'.repeat(32)) }, /it is verified against another sha256/],
      [{ poolId: pool.id, source: source(IMAGE, sha256(image)), name: 'mine' }, /it is named jammy-server/],
    ];
    for (const [request, reason] of refusals) {
      const refused = await service()
        .download(request)
        .catch((error: unknown) => error);
      expect(refused).toMatchObject({ code: 'ALREADY_EXISTS', details: { imageId: ready.id } });
      expect((refused as Error).message).toMatch(/already has an image at images\/jammy-server-cloudimg-amd64\.img/);
      expect((refused as Error).message).toMatch(reason);
    }
    expect(await quantix?.repositories.images.require(ready.id)).toEqual(ready);
    expect(await quantix?.repositories.images.count({ poolId: pool.id })).toBe(1);
    expect(server.requests).toEqual([]);
  });

  it('a failed URL download without a checksum is not retried by a request that brings one: refused until it is deleted', async () => {
    const url = `${server.url}${IMAGE}`;
    const failed = await (await service().download({ poolId: pool.id, source: { url, checksum: null } })).completion;
    expect(failed).toMatchObject({ phase: 'error', error: { code: 'CHECKSUM_UNAVAILABLE' } });
    const checked = {
      poolId: pool.id,
      source: { url, checksum: { algorithm: 'sha256' as const, value: sha256(image) } },
    };
    await expect(service().download(checked)).rejects.toMatchObject({
      code: 'ALREADY_EXISTS',
      message: expect.stringMatching(/\(jammy-server-cloudimg-amd64\.img, error\).*it has no checksum/),
    });
    await (quantix as Quantix).repositories.images.delete(failed.id);
    expect(await (await service().download(checked)).completion).toMatchObject({ phase: 'ready' });
  });

  it('wrong bytes: the row ends error CHECKSUM_MISMATCH, no ready row, no file left; a retry then succeeds', async () => {
    server.behaviour.corruptPaths = [IMAGE];
    const { image: pending, completion } = await service().download({ catalogId: ENTRY_ID, poolId: pool.id });
    const failed = await completion;
    expect(failed).toMatchObject({
      phase: 'error',
      checksum: null,
      error: { code: 'CHECKSUM_MISMATCH', retryable: true },
    });
    expect(failed.error?.message).toContain(sha256(image));
    expect(await quantix?.repositories.images.count({ phase: 'ready', poolId: pool.id })).toBe(0);
    expect(files(poolDir)).toEqual([]);
    expect(phases.at(-1)).toMatchObject({ imageId: pending.id, to: 'error', error: { code: 'CHECKSUM_MISMATCH' } });

    server.behaviour.corruptPaths = [];
    const retried = await service().retry(pending.id);
    expect(retried.image).toMatchObject({ id: pending.id, phase: 'pending', error: null });
    expect(await retried.completion).toMatchObject({ phase: 'ready', checksum: { value: sha256(image) } });
  });

  it('a pool without room for the image: refused before a byte is written, saying how much is missing', async () => {
    // A real small filesystem: the pool is a 2 MiB tmpfs, the image 6 MiB.
    const mounted = mountSmallFilesystem('2m');
    const small = mounted.path;
    try {
      const pool = await createPoolAt(small);
      const failed = await (await service().download({ catalogId: ENTRY_ID, poolId: pool.id })).completion;
      expect(failed).toMatchObject({ phase: 'error', error: { code: 'POOL_NO_SPACE', retryable: false } });
      expect(failed.error?.message).toMatch(/No room in the pool for .*: \d+ bytes needed, \d+ available/);
      // Refused on the answer's Content-Length: the pool holds no partial file.
      expect(files(small).filter((f) => !f.endsWith('.meta'))).toEqual([]);
    } finally {
      mounted.unmount();
    }
  });

  it('a pool that fills up mid-download: the row ends error saying so, nothing ready; once there is room, a retry resumes it', async () => {
    // Room for the image when it starts; then something else takes it (another download, a VM disk).
    const mounted = mountSmallFilesystem('8m');
    const small = mounted.path;
    try {
      const pool = await createPoolAt(small);
      // Slow enough that the disk fills long before the image is in, however loaded the machine.
      server.behaviour.bytesPerSecond = 1024 * 1024;
      const { image: pending, completion } = await service().download({ catalogId: ENTRY_ID, poolId: pool.id });
      // Some of it is in the pool: the partial file has bytes.
      const partial = join(small, 'images', `${ENTRY_ID}.qcow2.partial`);
      await vi.waitFor(() => expect(existsSync(partial) && statSync(partial).size).toBeGreaterThan(0), {
        timeout: 10_000,
        interval: 10,
      });
      // Whatever room is left is taken: the download's next write finds the disk full. It goes on
      // writing meanwhile, so the room statfs reported may be smaller by the time fallocate asks
      // for all of it (ENOSPC under load): asked again until the filler fits or none is left.
      await vi.waitFor(
        async () => {
          const { bavail, bsize } = await statfs(small);
          if (bavail === 0) return;
          execFileSync('fallocate', ['-l', String(bavail * bsize), join(small, 'filler.bin')], {
            stdio: ['ignore', 'ignore', 'pipe'],
          });
        },
        { timeout: 10_000, interval: 10 },
      );
      const failed = await completion;
      expect(failed).toMatchObject({
        phase: 'error',
        checksum: null,
        error: { code: 'POOL_NO_SPACE', retryable: true },
      });
      expect(failed.error?.message).toMatch(
        /^No room in the pool for .*: the file system filled after \d+ of \d+ bytes \(the room was taken meanwhile\); a retry once there is room goes on from there$/,
      );
      expect(await quantix?.repositories.images.count({ phase: 'ready', poolId: pool.id })).toBe(0);

      rmSync(join(small, 'filler.bin'));
      server.behaviour.bytesPerSecond = null;
      const requestsBefore = server.requestsFor(IMAGE).length;
      const retried = await service().retry(pending.id);
      expect(await retried.completion).toMatchObject({ phase: 'ready', checksum: { value: sha256(image) } });
      expect(sha256(readFileSync(join(small, 'images', `${ENTRY_ID}.qcow2`)))).toBe(sha256(image));
      // It went on from what it had written: the retry asked only for the rest.
      const byRetry = server.requestsFor(IMAGE).slice(requestsBefore);
      expect(byRetry.map((r) => [r.status, /^bytes=[1-9]\d*-$/.test(r.range ?? '')])).toEqual([[206, true]]);
      expect(byRetry[0]?.bytesSent).toBeLessThan(image.length);
    } finally {
      mounted.unmount();
    }
  });

  it('refuses a disallowed URL before any request and before recording a row', async () => {
    await close();
    quantix = await open({ fetcher: { policy: { allowAddresses: ['127.0.0.1'], allowPorts: [443] } } });
    const refused = await service()
      .download({ catalogId: ENTRY_ID, poolId: pool.id })
      .catch((e: unknown) => e);
    expect(refused).toMatchObject({ code: 'SOURCE_NOT_ALLOWED', details: { reason: 'port' } });
    const metadata = await service()
      .download({
        poolId: pool.id,
        source: { url: 'https://169.254.169.254/latest/meta-data/disk.img', checksumUrl: `${server.url}${SUMS}` },
      })
      .catch((e: unknown) => e);
    expect(metadata).toMatchObject({ code: 'SOURCE_NOT_ALLOWED', details: { reason: 'address' } });
    expect(server.requests).toEqual([]);
    expect(await quantix?.repositories.images.count({ poolId: pool.id })).toBe(0);
  });

  it('cancel keeps the partial file; a retry resumes it and fetches fewer bytes than the whole', async () => {
    server.behaviour.bytesPerSecond = 3 * 1024 * 1024;
    const { image: pending, completion } = await service().download({ catalogId: ENTRY_ID, poolId: pool.id });
    await aThirdArrived(pending.id);
    const cancelled = await service().cancel(pending.id);
    expect(cancelled).toMatchObject({ phase: 'error', error: { code: 'DOWNLOAD_CANCELLED', retryable: true } });
    expect((await completion).phase).toBe('error');
    expect(existsSync(`${imagePath()}.partial`)).toBe(true);

    server.behaviour.bytesPerSecond = null;
    const retried = await service().retry(pending.id);
    expect(await retried.completion).toMatchObject({ phase: 'ready', checksum: { value: sha256(image) } });
    const gets = server.requestsFor(IMAGE);
    expect(gets.at(-1)?.status).toBe(206);
    expect(gets.at(-1)?.bytesSent).toBeLessThan(image.length);
  });

  it('cancels a download another replica runs through its row: that run stops, what arrived stays, a retry resumes', async () => {
    server.behaviour.bytesPerSecond = 3 * 1024 * 1024;
    const { image: pending, completion } = await service().download({ catalogId: ENTRY_ID, poolId: pool.id });
    await aThirdArrived(pending.id);
    // Another replica's download service: the run is not its own, only the row is shared.
    const elsewhere = createInProcessDownloads(quantix as Quantix, { progressWriteMs: 20 });
    try {
      const cancelled = await elsewhere.cancel(pending.id);
      expect(cancelled).toMatchObject({ phase: 'error', error: { code: 'DOWNLOAD_CANCELLED', retryable: true } });
      // The run finds the row is no longer its own at its next write, and stops, leaving the row as cancelled.
      expect(await completion).toMatchObject({ phase: 'error', error: { code: 'DOWNLOAD_CANCELLED' } });
      // The transfer stopped with it, part of the way (once what was in flight has been counted).
      const get = server.requestsFor(IMAGE).at(-1);
      let before = -1;
      await vi.waitFor(
        () => {
          const sent = get?.bytesSent ?? 0;
          const settled = sent === before;
          before = sent;
          expect(settled).toBe(true);
        },
        { timeout: 10_000, interval: 300 },
      );
      expect(get).toMatchObject({ method: 'GET', completed: false });
      expect(get?.bytesSent).toBeLessThan(image.length);
      expect(existsSync(`${imagePath()}.partial`)).toBe(true);
      // Cancelling what is no longer downloading answers it as it is.
      expect(await elsewhere.cancel(pending.id)).toMatchObject({ phase: 'error', version: cancelled.version });
    } finally {
      await elsewhere.close();
    }
    server.behaviour.bytesPerSecond = null;
    const retried = await service().retry(pending.id);
    expect(await retried.completion).toMatchObject({ phase: 'ready', checksum: { value: sha256(image) } });
    expect(server.requestsFor(IMAGE).at(-1)?.status).toBe(206);
  });

  it('a row changed by someone else mid-download stops the job without overwriting the change', async () => {
    server.behaviour.bytesPerSecond = 4 * 1024 * 1024;
    const { image: pending, completion } = await service().download({ catalogId: ENTRY_ID, poolId: pool.id });
    const images = (quantix as Quantix).repositories.images;
    let row: Image = pending;
    for (let i = 0; i < 200 && row.phase !== 'downloading'; i++) {
      await new Promise((r) => setTimeout(r, 10));
      row = await images.require(pending.id);
    }
    // Another writer (an operator deleting the image) changes the row under the download; like
    // any writer it reads again when the download's own progress write got in first.
    let deleting: Image | undefined;
    for (let i = 0; i < 50 && !deleting; i++) {
      deleting = await images
        .update(pending.id, { phase: 'deleting' }, { expectedVersion: row.version })
        .catch(async (error: { code?: string }) => {
          if (error.code !== 'VERSION_CONFLICT') throw error;
          row = await images.require(pending.id);
          return undefined;
        });
    }
    const final = await completion;
    expect(final.phase).toBe('deleting');
    expect(await images.require(pending.id)).toMatchObject({ phase: 'deleting', version: deleting?.version });
    expect(service().isRunning(pending.id)).toBe(false);
  });

  it('after a graceful restart mid-download, the next start resumes the row from its partial file', async () => {
    server.behaviour.bytesPerSecond = 3 * 1024 * 1024;
    const { image: pending } = await service().download({ catalogId: ENTRY_ID, poolId: pool.id });
    await new Promise<void>((resolve) =>
      quantix?.events.on('image.progress', (e) => {
        if (e.progress.bytesDone > image.length / 3) resolve();
      }),
    );
    await close(); // rows stay `downloading`: nothing is failed by a shutdown
    quantix = await open({}, false);
    const left = await quantix.repositories.images.require(pending.id);
    expect(left.phase).toBe('downloading');
    expect(left.progress?.bytesDone).toBeGreaterThan(0);

    server.behaviour.bytesPerSecond = null;
    const reconciled = await service().reconcileOnStart();
    expect(reconciled.failed).toEqual([]);
    expect(reconciled.resumed.map((r) => r.image.id)).toEqual([pending.id]);
    expect(existsSync(`${imagePath()}.partial`)).toBe(true);
    const done = await reconciled.resumed[0]?.completion;
    expect(done).toMatchObject({ phase: 'ready', checksum: { value: sha256(image) } });
    expect(server.requestsFor(IMAGE).at(-1)?.bytesSent).toBeLessThan(image.length);
  });

  it('reconciles what cannot be resumed into error with the reason, and leaves others’ rows alone', async () => {
    const images = (quantix as Quantix).repositories.images;
    // A download of ours whose pool directory is gone.
    const goneDir = mkdtempSync(join(tmpdir(), 'quantix-gone-pool-'));
    const gonePool = await quantix?.repositories.pools.create({
      name: `gone-${goneDir.slice(-6)}`,
      type: 'local',
      config: { path: goneDir },
    });
    const ours = await images.create({
      name: 'interrupted',
      kind: 'cloud',
      labels: { [SOURCE_LABELS.url]: `${server.url}${IMAGE}`, [SOURCE_LABELS.checksumUrl]: `${server.url}${SUMS}` },
      location: { poolId: gonePool?.id as string, relPath: 'images/x.qcow2' },
    });
    await images.update(ours.id, { phase: 'downloading' });
    rmSync(goneDir, { recursive: true, force: true });
    // A cloud image stuck mid-download with no source recorded: nothing to resume from.
    const orphan = await images.create({ name: 'orphan', kind: 'cloud' });
    await images.update(orphan.id, { phase: 'verifying' });
    // An ISO another service is fetching: not ours to touch.
    const iso = await images.create({ name: 'someone else’s iso', kind: 'iso' });
    await images.update(iso.id, { phase: 'downloading' });

    const result = await service().reconcileOnStart();
    expect(result.skipped.map((s) => s.id)).toEqual([iso.id]);
    expect(result.failed.map((f) => [f.id, f.error?.code])).toEqual([[orphan.id, 'DOWNLOAD_INTERRUPTED']]);
    // Ours is taken up again and fails on its missing pool directory, saying so.
    expect(result.resumed.map((r) => r.image.id)).toEqual([ours.id]);
    expect(await result.resumed[0]?.completion).toMatchObject({ phase: 'error', error: { code: 'POOL_UNAVAILABLE' } });
    expect(await images.require(ours.id)).toMatchObject({ phase: 'error', error: { retryable: true } });
    expect((await images.require(ours.id)).error?.message).toContain('cannot be resumed');
    expect(await images.require(orphan.id)).toMatchObject({ phase: 'error', error: { retryable: false } });
    expect((await images.require(iso.id)).phase).toBe('downloading');
    // Nothing of ours is left in a transient phase.
    expect(await images.count({ phase: ['downloading', 'verifying'], kind: 'cloud' })).toBe(0);
  });

  it('a crash after the rename but before the row said ready: the next start verifies the file and finishes', async () => {
    const images = (quantix as Quantix).repositories.images;
    const row = await images.create({
      name: 'renamed, not recorded',
      kind: 'cloud',
      catalogId: ENTRY_ID,
      labels: { [SOURCE_LABELS.url]: `${server.url}${IMAGE}`, [SOURCE_LABELS.checksumUrl]: `${server.url}${SUMS}` },
      location: { poolId: pool.id, relPath: `images/${ENTRY_ID}.qcow2` },
    });
    await images.update(row.id, { phase: 'downloading' });
    await images.update(row.id, { phase: 'verifying' });
    mkdirSync(join(poolDir, 'images'), { recursive: true });
    writeFileSync(imagePath(), image);

    await close();
    quantix = await open(); // runs reconcileOnStart, as a control plane does at start
    let now = await quantix.repositories.images.require(row.id);
    for (let i = 0; i < 300 && now.phase !== 'ready' && now.phase !== 'error'; i++) {
      await new Promise((r) => setTimeout(r, 20));
      now = await quantix.repositories.images.require(row.id);
    }
    expect(now).toMatchObject({ phase: 'ready', sizeBytes: image.length, checksum: { value: sha256(image) } });
    expect(server.requestsFor(IMAGE)).toEqual([]);
  });
});

describe('catalog entries and the source policy', () => {
  const mirror = {
    id: 'ubuntu-24.04',
    name: 'Ubuntu 24.04 (LAN mirror)',
    sourceUrl: 'http://10.0.0.2/noble-server-cloudimg-amd64.img',
    checksumUrl: 'http://10.0.0.2/SHA256SUMS',
  };

  it('uses the last catalog that has an entry: a mirror entry replaces the built-in one, and the default policy still guards it', async () => {
    const quantix = await createQuantix({
      database: { client: 'pglite' },
      plugins: [storageLocalPlugin, createImagesCloudPlugin({ entries: [mirror] })],
    });
    const downloads = createInProcessDownloads(quantix);
    const pool = await quantix.repositories.pools.create({
      name: 'p',
      type: 'local',
      config: { path: '/nonexistent' },
    });
    // 10.0.0.2 is a private address: refused before any request, and no row is recorded.
    const refused = await downloads.download({ catalogId: 'ubuntu-24.04', poolId: pool.id }).catch((e: unknown) => e);
    expect(refused).toMatchObject({
      code: 'SOURCE_NOT_ALLOWED',
      details: { url: mirror.sourceUrl, address: '10.0.0.2' },
    });
    expect(await quantix.repositories.images.count()).toBe(0);
    const unknown = await downloads.download({ catalogId: 'no-such-image', poolId: pool.id }).catch((e: unknown) => e);
    expect(unknown).toMatchObject({ code: 'NOT_FOUND' });
    await downloads.close();
    await quantix.close();
  });
});
