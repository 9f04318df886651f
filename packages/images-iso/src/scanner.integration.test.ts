/**
 * The scanner against a real pool directory through the real @quantix/storage-local backend, and
 * the real image repository on PostgreSQL and on PGlite.
 */
import { copyFile, mkdir, mkdtemp, readFile, rename, rm, stat, unlink, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  createEventBus,
  createQuantix,
  ErrorCode,
  ImageCatalogToken,
  imageIdForLocation,
  type QuantixEvents,
  type Repositories,
  type StoragePool,
} from '@quantix/core';
import { TEST_DATABASE_CLIENTS } from '@quantix/core/testing';
import { LocalStorageBackend, storageLocalPlugin } from '@quantix/storage-local';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { useTestRepositories } from './__fixtures__/database.js';
import { buildIso, REAL_MEDIA, requireIsoTools } from './__fixtures__/isos.js';
import { ISO_CATALOG_NAME } from './catalog.js';
import { ImagesIsoErrorCode } from './errors.js';
import { createImagesIsoPlugin, IsoImageServiceToken } from './plugin.js';
import { ISO_LABELS, scanPool } from './scanner.js';

let base: string;
/** Ready-made ISOs, copied into pools as tests need them. */
const made: Record<string, string> = {};
const backend = new LocalStorageBackend();

beforeAll(async () => {
  requireIsoTools();
  base = await mkdtemp(join(tmpdir(), 'quantix-scan-'));
  const stock = join(base, 'stock');
  await mkdir(stock);
  made.ubuntu = await buildIso(join(stock, 'ubuntu.iso'), REAL_MEDIA.ubuntuServer2404);
  made.debian = await buildIso(join(stock, 'debian.iso'), REAL_MEDIA.debian12);
  made.windows = await buildIso(join(stock, 'windows.iso'), REAL_MEDIA.windows11);
  made.rocky = await buildIso(join(stock, 'rocky.iso'), REAL_MEDIA.rocky94);
  made.efi = await buildIso(join(stock, 'efi.iso'), { volumeId: 'Fedora-S-dvd-aarch64-41', boot: 'uefi' });
});

afterAll(async () => {
  await rm(base, { recursive: true, force: true });
});

describe.each(TEST_DATABASE_CLIENTS)('scanPool on %s', (client) => {
  const repositories = useTestRepositories(client);
  let repos: Repositories;
  let root: string;
  let pool: StoragePool;
  let counter = 0;

  beforeEach(async () => {
    repos = repositories();
    counter += 1;
    root = join(base, `${client}-pool-${counter}`);
    await mkdir(root);
    pool = await repos.pools.create({
      name: `isos-${client}-${counter}`,
      type: 'local',
      config: { path: root },
      contentTypes: ['iso'],
      shared: true,
    });
  });

  const scan = (extra: Partial<Parameters<typeof scanPool>[0]> = {}) =>
    scanPool({ pool, backend, images: repos.images, ...extra });
  const row = (relPath: string) => repos.images.getByLocation({ poolId: pool.id, relPath });

  it('adds what is there, identified, and reports files that are not ISOs without a row', async () => {
    await copyFile(made.ubuntu as string, join(root, 'ubuntu-24.04.1-live-server-amd64.iso'));
    await mkdir(join(root, 'windows'));
    await copyFile(made.windows as string, join(root, 'windows', 'Win11_24H2_English_x64.iso'));
    await writeFile(join(root, 'notes.iso'), 'not an ISO at all\n');
    await writeFile(join(root, 'half.iso'), (await readFile(made.debian as string)).subarray(0, 100 * 1024));
    await writeFile(join(root, 'empty.iso'), '');
    await copyFile(made.debian as string, join(root, '.upload-1234.iso.partial')); // an upload in progress
    await writeFile(join(root, 'readme.txt'), 'hello');

    const result = await scan();
    expect(result).toMatchObject({ listed: 5, added: 2, changed: 0, unchanged: 0, missing: 0, busy: 0, filesRead: 5 });
    expect(result.invalid.map((i) => [i.relPath, i.code]).sort()).toEqual([
      ['empty.iso', ImagesIsoErrorCode.ISO_EMPTY],
      ['half.iso', ImagesIsoErrorCode.ISO_TRUNCATED],
      ['notes.iso', ImagesIsoErrorCode.ISO_NOT_ISO9660],
    ]);
    expect(await repos.images.count({ poolId: pool.id })).toBe(2);

    const ubuntu = await row('ubuntu-24.04.1-live-server-amd64.iso');
    const info = await stat(join(root, 'ubuntu-24.04.1-live-server-amd64.iso'));
    expect(ubuntu).toMatchObject({
      id: imageIdForLocation(pool.id, 'ubuntu-24.04.1-live-server-amd64.iso'),
      name: 'ubuntu-24.04.1-live-server-amd64.iso',
      kind: 'iso',
      format: 'iso',
      phase: 'ready',
      sizeBytes: info.size,
      fileModifiedAt: info.mtime,
      os: { family: 'linux', distribution: 'ubuntu', version: '24.04', arch: 'x86_64' },
      labels: {
        [ISO_LABELS.volumeId]: 'Ubuntu-Server 24.04.1 LTS amd64',
        [ISO_LABELS.boot]: 'bios,uefi',
        [ISO_LABELS.osSource]: 'builtin',
        [ISO_LABELS.osRule]: 'builtin:ubuntu',
      },
    });
    expect(await row('windows/Win11_24H2_English_x64.iso')).toMatchObject({
      os: { family: 'windows', distribution: 'windows', version: '11' },
      labels: { [ISO_LABELS.udf]: 'NSR02', [ISO_LABELS.osSource]: 'osinfo' },
    });
  });

  it('logs one warning for a scan, however many files are not ISOs, with the count and the first few', async () => {
    for (let i = 0; i < 60; i++) await writeFile(join(root, `fake-${String(i).padStart(2, '0')}.iso`), 'text\n');
    await copyFile(made.debian as string, join(root, 'debian.iso'));
    const warnings: { object: Record<string, unknown>; message?: string }[] = [];
    const logger = {
      debug: () => undefined,
      warn: (object: object, message?: string) =>
        void warnings.push({ object: object as Record<string, unknown>, message }),
    };
    const result = await scan({ logger, osinfo: false });
    expect(result.invalid).toHaveLength(60);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]?.message).toBe(`60 of 61 files in pool ${pool.id} are not usable ISOs`);
    expect(warnings[0]?.object).toMatchObject({ poolId: pool.id, count: 60 });
    expect(warnings[0]?.object.first).toHaveLength(5);
  });

  it('does not read unchanged files again, re-reads changed ones, and marks vanished ones missing', async () => {
    await copyFile(made.ubuntu as string, join(root, 'a.iso'));
    await copyFile(made.debian as string, join(root, 'b.iso'));
    await copyFile(made.rocky as string, join(root, 'c.iso'));
    expect(await scan()).toMatchObject({ added: 3, filesRead: 3 });
    const before = await row('a.iso');

    // Same size and mtime: trusted without reading. Prove it by making the content unreadable as an
    // ISO while keeping both — a scan that read it would report it invalid.
    const a = join(root, 'a.iso');
    const { size, atime, mtime } = await stat(a);
    await writeFile(a, Buffer.alloc(size, 0x41));
    await utimes(a, atime, mtime);
    const again = await scan();
    expect(again).toMatchObject({
      listed: 3,
      added: 0,
      changed: 0,
      unchanged: 3,
      missing: 0,
      filesRead: 0,
      bytesRead: 0,
      invalid: [],
    });
    expect(await row('a.iso')).toEqual(before);

    // A changed file (another ISO in its place) is read and its row follows.
    await copyFile(made.windows as string, join(root, 'b.iso'));
    // Gone: c.iso.
    await unlink(join(root, 'c.iso'));
    const changed = await scan();
    expect(changed).toMatchObject({ changed: 1, unchanged: 1, missing: 1, filesRead: 1 });
    const b = await row('b.iso');
    expect(b).toMatchObject({
      phase: 'ready',
      os: { distribution: 'windows', version: '11' },
      sizeBytes: (await stat(join(root, 'b.iso'))).size,
    });
    expect(await row('c.iso')).toMatchObject({ phase: 'missing' });

    // Back again: the missing row is ready again, with no new row.
    await copyFile(made.rocky as string, join(root, 'c.iso'));
    const back = await scan();
    expect(back).toMatchObject({ restored: 1, added: 0, missing: 0 });
    expect(await row('c.iso')).toMatchObject({ phase: 'ready', os: { distribution: 'rocky', version: '9.4' } });
    expect(await repos.images.count({ poolId: pool.id })).toBe(3);
  });

  it('takes an image out of service when its file is overwritten with something that is not an ISO', async () => {
    await copyFile(made.debian as string, join(root, 'debian.iso'));
    await scan();
    await writeFile(join(root, 'debian.iso'), (await readFile(made.debian as string)).subarray(0, 64 * 1024));
    const result = await scan();
    expect(result).toMatchObject({
      missing: 1,
      invalid: [{ relPath: 'debian.iso', code: ImagesIsoErrorCode.ISO_TRUNCATED }],
    });
    expect(await row('debian.iso')).toMatchObject({
      phase: 'missing',
      error: { code: ImagesIsoErrorCode.ISO_TRUNCATED, retryable: false },
    });
    // Unchanged junk is not read again, and stays reported.
    expect(await scan()).toMatchObject({
      filesRead: 0,
      invalid: [{ relPath: 'debian.iso', code: ImagesIsoErrorCode.ISO_TRUNCATED }],
    });
    // Fixed: ready again, the error gone.
    await copyFile(made.debian as string, join(root, 'debian.iso'));
    expect(await scan()).toMatchObject({ restored: 1, invalid: [] });
    expect(await row('debian.iso')).toMatchObject({ phase: 'ready', error: null });
  });

  it('leaves rows of other phases and under skipped directories alone', async () => {
    await copyFile(made.ubuntu as string, join(root, 'downloading.iso'));
    await mkdir(join(root, 'deep', 'er'), { recursive: true });
    await copyFile(made.debian as string, join(root, 'deep', 'er', 'debian.iso'));
    const downloading = await repos.images.create({
      name: 'catalog download',
      kind: 'iso',
      catalogId: 'ubuntu-24.04-server-amd64-iso',
      location: { poolId: pool.id, relPath: 'downloading.iso' },
    });
    await repos.images.update(downloading.id, { phase: 'downloading' });
    expect(await scan()).toMatchObject({ added: 1, busy: 1 });
    expect(await repos.images.get(downloading.id)).toMatchObject({ phase: 'downloading', sizeBytes: null });

    // The pool now lists only its top level: deep/ is skipped, so deep/er/debian.iso is not known to be gone.
    pool = await repos.pools.update(pool.id, { config: { path: root, maxDepth: 0 } });
    const shallow = await scan();
    expect(shallow.skipped).toEqual([{ relPath: 'deep', reason: 'deeper than maxDepth 0' }]);
    expect(shallow.missing).toBe(0);
    expect(await row('deep/er/debian.iso')).toMatchObject({ phase: 'ready' });
  });

  it('fails without touching any row when the pool directory is not there', async () => {
    await copyFile(made.ubuntu as string, join(root, 'u.iso'));
    await scan();
    await rename(root, `${root}.away`);
    await expect(scan()).rejects.toMatchObject({ code: ErrorCode.POOL_UNAVAILABLE });
    expect(await row('u.iso')).toMatchObject({ phase: 'ready' });
    await rename(`${root}.away`, root);
  });

  it('records the firmware the media need, the node of a node-local pool, and announces phase changes', async () => {
    const node = await repos.nodes.create({ hostname: `node-${client}-${counter}`, address: '127.0.0.1' });
    pool = await repos.pools.update(pool.id, { shared: false, nodeIds: [node.id] });
    await copyFile(made.efi as string, join(root, 'efi.iso'));
    const events = createEventBus();
    const phases: QuantixEvents['image.phase'][] = [];
    events.on('image.phase', (event) => phases.push(event));
    await scan({ nodeId: node.id, events });
    const efi = await row('efi.iso');
    expect(efi).toMatchObject({
      nodeId: node.id,
      requirements: { firmware: 'uefi' },
      os: { distribution: 'fedora', arch: 'aarch64' },
    });
    await unlink(join(root, 'efi.iso'));
    await scan({ nodeId: node.id, events });
    expect(phases).toEqual([
      { imageId: efi?.id, from: null, to: 'ready', error: null },
      { imageId: efi?.id, from: 'ready', to: 'missing', error: null },
    ]);
  });

  it('stops before writing anything when aborted', async () => {
    await copyFile(made.ubuntu as string, join(root, 'u.iso'));
    const controller = new AbortController();
    controller.abort();
    await expect(scan({ signal: controller.signal })).rejects.toThrow();
    expect(await repos.images.count({ poolId: pool.id })).toBe(0);
  });
});

describe('the images-iso plugin', () => {
  it('provides the ISO catalog and a scanner that finds the backend for the pool type', async () => {
    const root = join(base, 'plugin-pool');
    await mkdir(root);
    await copyFile(made.rocky as string, join(root, 'Rocky-9.4-x86_64-dvd.iso'));
    const quantix = await createQuantix({
      database: { client: 'pglite' },
      plugins: [storageLocalPlugin, createImagesIsoPlugin({ preloadOsinfo: true })],
    });
    try {
      const catalogs = quantix.getAll(ImageCatalogToken);
      const iso = catalogs.find((c) => c.name === ISO_CATALOG_NAME);
      expect((await iso?.list({ kind: 'iso' }))?.length).toBeGreaterThan(5);
      expect(await iso?.list({ kind: 'cloud' })).toEqual([]);

      const pool = await quantix.repositories.pools.create({ name: 'isos', type: 'local', config: { path: root } });
      const result = await quantix.get(IsoImageServiceToken).scanPool({ pool: pool.id });
      expect(result).toMatchObject({ added: 1 });
      const [image] = await quantix.repositories.images.list({ poolId: pool.id });
      expect(image?.os).toMatchObject({ distribution: 'rocky', version: '9.4' });
    } finally {
      await quantix.close();
    }
  });
});
