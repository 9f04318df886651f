/**
 * The periodic rescan (CreateControlPlaneOptions.rescanSeconds): an ISO copied into a pool by
 * hand, or removed from it, shows without anyone asking for a scan. A real NodeAgent with a real
 * pool directory, the control plane's job queue (pg-boss on PostgreSQL, in-process on PGlite);
 * only the WebSocket is an in-process pipe (see __fixtures__/in-process-node.ts).
 */
import { copyFile, mkdir, mkdtemp, rename, rm, unlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createQuantix, ErrorCode, type Quantix } from '@quantix/core';
import { createTestDatabase, TEST_DATABASE_CLIENTS, type TestDatabase } from '@quantix/core/testing';
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
  let node: PoolNode | undefined;

  beforeAll(async () => {
    testDb = await createTestDatabase(client);
    quantix = await createQuantix({ database: testDb.config, plugins: [storageLocalPlugin] });
    cp = createControlPlane({ quantix, rescanSeconds: 1 });
    await cp.start();
  });

  afterAll(async () => {
    await node?.close();
    await cp?.close();
    await quantix?.close();
    await testDb?.dispose();
  });

  it('finds an ISO copied into a pool by hand, and marks one removed by hand missing, unasked', async () => {
    const root = join(base, `${client}-pool`);
    await mkdir(root);
    const repos = quantix.repositories;
    node = await startPoolNode({
      hub: cp.hub,
      repositories: repos,
      name: `rescan-${client}`,
      root,
      allowedRoot: base,
      agent: { inspector: createIsoInspector() },
    });
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

  it('refuses a period that is not a whole number of seconds', () => {
    for (const rescanSeconds of [-1, 0.5, Number.NaN]) {
      expect(() => createControlPlane({ quantix, rescanSeconds })).toThrow(
        expect.objectContaining({ code: ErrorCode.INVALID_INPUT, message: expect.stringContaining('rescanSeconds') }),
      );
    }
  });
});
