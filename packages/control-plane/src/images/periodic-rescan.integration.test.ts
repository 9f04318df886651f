/**
 * The periodic rescan (CreateControlPlaneOptions.rescanSeconds): an ISO or a disk image copied
 * into a pool by hand, or removed from it, shows without anyone asking for a scan. A real NodeAgent with a real
 * pool directory, the control plane's job queue (pg-boss on PostgreSQL, in-process on PGlite);
 * only the WebSocket is an in-process pipe (see __fixtures__/in-process-node.ts).
 */
import { copyFile, mkdir, mkdtemp, rename, rm, unlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createQuantix, ErrorCode, type Quantix } from '@quantix/core';
import { createTestDatabase, TEST_DATABASE_CLIENTS, type TestDatabase } from '@quantix/core/testing';
import { makeQcow2, sha256 } from '@quantix/images-cloud/testing';
import { createIsoInspector } from '@quantix/images-iso';
import { buildIso, REAL_MEDIA, requireIsoTools } from '@quantix/images-iso/testing';
import { storageLocalPlugin } from '@quantix/storage-local';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { type PoolNode, startPoolNode } from '../__fixtures__/in-process-node.js';
import { type ControlPlaneServices, createControlPlane } from '../control-plane.js';

/** How long a test waits for a rescan to have found what changed: several periods of 1 s. */
const WAIT = { timeout: 30_000, interval: 100 };

let base: string;
let debianIso: string;

beforeAll(async () => {
  requireIsoTools();
  base = await mkdtemp(join(tmpdir(), 'quantix-rescan-'));
  debianIso = await buildIso(join(base, 'debian.iso'), REAL_MEDIA.debian12);
});

afterAll(async () => {
  await rm(base, { recursive: true, force: true });
});

describe.each(TEST_DATABASE_CLIENTS)('periodic rescans on %s', (client) => {
  let testDb: TestDatabase;
  let quantix: Quantix;
  let cp: ControlPlaneServices;
  const nodes: PoolNode[] = [];

  beforeAll(async () => {
    testDb = await createTestDatabase(client);
    quantix = await createQuantix({ database: testDb.config, plugins: [storageLocalPlugin] });
    cp = createControlPlane({ quantix, rescanSeconds: 1 });
    await cp.start();
  });

  afterAll(async () => {
    for (const node of nodes) await node.close();
    await cp?.close();
    await quantix?.close();
    await testDb?.dispose();
  });

  it('finds an ISO copied into a pool by hand, and marks one removed by hand missing, unasked', async () => {
    const root = join(base, `${client}-pool`);
    await mkdir(root);
    const repos = quantix.repositories;
    const node = await startPoolNode({
      hub: cp.hub,
      repositories: repos,
      name: `rescan-${client}`,
      root,
      allowedRoot: base,
      agent: { inspector: createIsoInspector() },
    });
    nodes.push(node);
    const { pool } = node;
    expect(await repos.images.list({ poolId: pool.id })).toEqual([]);

    // Copied in as a file manager or `scp` would: aside under a hidden name, then renamed.
    await copyFile(debianIso, join(root, '.incoming.iso'));
    await rename(join(root, '.incoming.iso'), join(root, 'debian-12.7.0-amd64-netinst.iso'));
    const relPath = 'debian-12.7.0-amd64-netinst.iso';
    await vi.waitFor(async () => {
      const image = await repos.images.getByLocation({ poolId: pool.id, relPath });
      expect(image).toMatchObject({ phase: 'ready', kind: 'iso', os: { distribution: 'debian' } });
    }, WAIT);

    await unlink(join(root, relPath));
    await vi.waitFor(async () => {
      expect((await repos.images.getByLocation({ poolId: pool.id, relPath }))?.phase).toBe('missing');
    }, WAIT);
  });

  it('finds a disk image copied into a pool of disk images by hand, and marks it missing once removed, unasked', async () => {
    const root = join(base, `${client}-disks`);
    await mkdir(root);
    const repos = quantix.repositories;
    const node = await startPoolNode({
      hub: cp.hub,
      repositories: repos,
      name: `rescan-disks-${client}`,
      root,
      allowedRoot: base,
      contentTypes: ['images'],
    });
    nodes.push(node);
    const { pool } = node;
    expect(await repos.images.list({ poolId: pool.id })).toEqual([]);

    // Made aside, as a copy would be, then moved in.
    const aside = join(base, `${client}-aside`);
    await mkdir(aside);
    await makeQcow2(aside, 'appliance.qcow2', 1);
    await rename(join(aside, 'appliance.qcow2'), join(root, 'appliance.qcow2'));
    const relPath = 'appliance.qcow2';
    await vi.waitFor(async () => {
      const image = await repos.images.getByLocation({ poolId: pool.id, relPath });
      expect(image).toMatchObject({ phase: 'ready', kind: 'cloud', format: 'qcow2' });
    }, WAIT);

    await unlink(join(root, relPath));
    await vi.waitFor(async () => {
      expect((await repos.images.getByLocation({ poolId: pool.id, relPath }))?.phase).toBe('missing');
    }, WAIT);
  });

  it('takes a downloaded image whose file was removed by hand out of service, and back when the file is back, as it was', async () => {
    const root = join(base, `${client}-downloads`);
    await mkdir(root);
    const repos = quantix.repositories;
    const node = await startPoolNode({
      hub: cp.hub,
      repositories: repos,
      name: `rescan-downloads-${client}`,
      root,
      allowedRoot: base,
      contentTypes: ['images'],
    });
    nodes.push(node);
    const { pool } = node;
    // The row and file a catalog download leaves.
    const content = await makeQcow2(root, 'jammy.qcow2', 1);
    const downloaded = await repos.images.create({
      name: 'Ubuntu 22.04',
      kind: 'cloud',
      format: 'qcow2',
      catalogId: 'ubuntu-22.04',
      os: { family: 'linux', distribution: 'ubuntu', version: '22.04' },
      checksum: { algorithm: 'sha256', value: sha256(content) },
      location: { poolId: pool.id, relPath: 'jammy.qcow2' },
    });
    await repos.images.update(downloaded.id, { phase: 'ready', sizeBytes: content.length });
    const file = join(root, 'jammy.qcow2');
    const kept = {
      name: 'Ubuntu 22.04',
      catalogId: 'ubuntu-22.04',
      os: { distribution: 'ubuntu' },
      checksum: downloaded.checksum,
    };

    await rename(file, join(base, `${client}-jammy.qcow2`));
    await vi.waitFor(async () => {
      expect(await repos.images.get(downloaded.id)).toMatchObject({ phase: 'missing', ...kept });
    }, WAIT);
    await rename(join(base, `${client}-jammy.qcow2`), file);
    await vi.waitFor(async () => {
      expect(await repos.images.get(downloaded.id)).toMatchObject({ phase: 'ready', ...kept });
    }, WAIT);
    // No second row for the file: the download's row is the one image there.
    expect((await repos.images.list({ poolId: pool.id })).map((image) => image.id)).toEqual([downloaded.id]);
  });

  it('refuses a period that is not a whole number of seconds', () => {
    for (const rescanSeconds of [-1, 0.5, Number.NaN]) {
      expect(() => createControlPlane({ quantix, rescanSeconds })).toThrow(
        expect.objectContaining({ code: ErrorCode.INVALID_INPUT, message: expect.stringContaining('rescanSeconds') }),
      );
    }
  });
});
