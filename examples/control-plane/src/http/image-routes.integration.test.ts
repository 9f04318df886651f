/**
 * The image listings over HTTP, on PostgreSQL: keyset paging through `after`/`nextCursor`, a
 * cursor the server did not make refused with a stable code, search over names, OS, labels and paths,
 * every field of an image kept by the fast serializer, and the OpenAPI document describing it all.
 * Then an image changed (PATCH /images/{id}): a merge patch, and what it refuses.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createQuantix, type Quantix } from '@quantix/core';
import { createTestDatabase, type TestDatabase } from '@quantix/core/testing';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ControlPlane, startControlPlane } from '../control-plane.js';

const API_TOKEN = 'image-routes-token';
const IMAGES = 230;

describe('image routes (PostgreSQL)', () => {
  let testDb: TestDatabase;
  let quantix: Quantix;
  let cp: ControlPlane;
  let work: string;

  const get = async (path: string) => {
    const response = await fetch(`${cp.url}/api/v1${path}`, { headers: { authorization: `Bearer ${API_TOKEN}` } });
    return { status: response.status, body: (await response.json()) as Record<string, unknown> };
  };

  const send = async (method: string, path: string, body: unknown) => {
    const response = await fetch(`${cp.url}/api/v1${path}`, {
      method,
      headers: { authorization: `Bearer ${API_TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    return { status: response.status, body: (await response.json()) as Record<string, unknown> };
  };

  beforeAll(async () => {
    testDb = await createTestDatabase('pg');
    quantix = await createQuantix({ database: testDb.config, logger: pino({ level: 'silent' }) });
    work = await mkdtemp(join(tmpdir(), 'quantix-image-routes-'));
    const { repositories } = quantix;
    await repositories.nodes.create({ id: 'hv-1', hostname: 'hv-1' });
    await repositories.pools.create({ id: 'pool-a', name: 'pool-a', type: 'local', nodeIds: ['hv-1'] });
    await repositories.images.upsertByLocation(
      Array.from({ length: IMAGES }, (_, i) => ({
        poolId: 'pool-a',
        relPath: `iso/disc-${i}.iso`,
        kind: 'iso' as const,
        sizeBytes: 1000 + i,
        ...(i % 10 === 0 ? { labels: { channel: 'nightly' } } : {}),
      })),
    );
    cp = await startControlPlane({ quantix, apiToken: API_TOKEN, stagingDir: join(work, 'staging') });
  });

  afterAll(async () => {
    await cp?.close();
    await quantix?.close();
    await testDb?.dispose();
    await rm(work, { recursive: true, force: true });
  });

  it('pages through every image with the cursor, as offset paging does', async () => {
    const byOffset: string[] = [];
    for (let offset = 0; offset < IMAGES; offset += 100) {
      const { body } = await get(`/images?limit=100&offset=${offset}`);
      byOffset.push(...(body.images as { id: string }[]).map((image) => image.id));
    }
    const byCursor: string[] = [];
    let path = '/images?limit=100';
    for (;;) {
      const { status, body } = await get(path);
      expect(status).toBe(200);
      expect(body.total).toBe(IMAGES);
      byCursor.push(...(body.images as { id: string }[]).map((image) => image.id));
      if (body.nextCursor === null) break;
      path = `/images?limit=100&after=${encodeURIComponent(body.nextCursor as string)}`;
    }
    expect(byCursor).toHaveLength(IMAGES);
    expect(byCursor).toEqual(byOffset);
  });

  it('refuses a cursor it did not make with INVALID_INPUT', async () => {
    for (const after of ['nope', Buffer.from('["1","x","y"]').toString('base64url')]) {
      const { status, body } = await get(`/images?after=${after}`);
      expect(status).toBe(400);
      expect(body).toMatchObject({ error: { code: 'INVALID_INPUT' } });
    }
  });

  it('finds images by name and by label, and answers every field of an image', async () => {
    const byName = await get('/images?text=disc-12&limit=1000');
    expect((byName.body.images as { name: string }[]).map((image) => image.name).sort()).toEqual([
      'disc-12.iso',
      'disc-120.iso',
      'disc-121.iso',
      'disc-122.iso',
      'disc-123.iso',
      'disc-124.iso',
      'disc-125.iso',
      'disc-126.iso',
      'disc-127.iso',
      'disc-128.iso',
      'disc-129.iso',
    ]);
    const byLabel = await get('/images?text=NIGHTLY&limit=1000');
    expect(byLabel.body.total).toBe(IMAGES / 10);
    // A scanned ISO is named after its OS: its file name finds it too, in the list and in the view.
    const named = await quantix.repositories.images.create({
      name: 'Windows 11',
      kind: 'iso',
      phase: 'ready',
      location: { poolId: 'pool-a', relPath: 'iso/Win11_24H2_custom.iso' },
    });
    try {
      const byFile = await get('/images?text=24h2_CUSTOM');
      expect((byFile.body.images as { id: string }[]).map((image) => image.id)).toEqual([named.id]);
      const inView = await get('/images/available?nodeId=hv-1&text=win11_24h2');
      expect((inView.body.images as { imageId: string }[]).map((image) => image.imageId)).toEqual([named.id]);
    } finally {
      await quantix.repositories.images.delete(named.id);
    }
    const [first] = byName.body.images as { id: string }[];
    const stored = await quantix.repositories.images.require(first?.id as string);
    expect((await get(`/images/${stored.id}`)).body).toEqual(
      JSON.parse(JSON.stringify({ ...stored, path: null, copiedFrom: null })),
    );
    const available = await get('/images/available?nodeId=hv-1&text=disc-12');
    expect((available.body.images as { name: string; status: string; reason: string }[])[0]).toMatchObject({
      name: 'disc-12.iso',
      status: 'unavailable',
      reason: 'pool pool-a has not reported from this node yet',
    });
    expect((await get('/images/available?nodeId=no-such-node')).body).toMatchObject({
      error: { code: 'NOT_FOUND' },
    });
  });

  it('describes the cursor and the answers in the OpenAPI document', async () => {
    const { body } = await get('/openapi.json');
    interface Operation {
      parameters: { name: string }[];
      responses: Record<string, { content: Record<string, { schema: { properties: object } }> }>;
    }
    const list = (body.paths as Record<string, Record<string, Operation>>)['/api/v1/images']?.get;
    if (!list) throw new Error('GET /images is not in the OpenAPI document');
    expect(list.parameters.map((p) => p.name)).toContain('after');
    const answer = list.responses['200']?.content['application/json']?.schema;
    expect(Object.keys(answer?.properties ?? {})).toEqual(['images', 'total', 'nextCursor']);
  });

  describe('changing an image', () => {
    // A scanned ISO of a database written before requirements stopped being made up: it says
    // 512 MiB, which its OS does not need — what a user corrects here.
    const scannedIso = () =>
      quantix.repositories.images.create({
        name: 'rescue-disc.iso',
        kind: 'iso',
        format: 'iso',
        phase: 'ready',
        location: { poolId: 'pool-a', relPath: 'iso/rescue-disc.iso' },
        labels: { team: 'infra', channel: 'beta', 'iso.quantix.io/volume-id': 'RESCUE' },
        requirements: { minCpu: 1, minMemoryMiB: 512, minDiskGiB: 0, firmware: 'any' },
      });

    it('changes name, labels and requirements as a merge patch; search and VM defaults follow', async () => {
      const image = await scannedIso();
      try {
        const changed = await send('PATCH', `/images/${image.id}`, {
          name: 'Rescue disc',
          labels: { channel: 'stable', team: null },
          requirements: { minMemoryMiB: 2048, firmware: 'uefi' },
        });
        expect(changed.status, JSON.stringify(changed.body)).toBe(200);
        expect(changed.body).toMatchObject({
          id: image.id,
          name: 'Rescue disc',
          phase: 'ready',
          requirements: { minCpu: 1, minMemoryMiB: 2048, minDiskGiB: 0, firmware: 'uefi' },
          version: image.version + 1,
          copiedFrom: null,
        });
        // Set, removed, and Quantix's own label untouched.
        expect(changed.body.labels).toEqual({ channel: 'stable', 'iso.quantix.io/volume-id': 'RESCUE' });
        expect((await get(`/images/${image.id}`)).body).toMatchObject({
          name: 'Rescue disc',
          version: image.version + 1,
        });
        const found = await get('/images?text=rescue%20disc');
        expect((found.body.images as { id: string }[]).map((i) => i.id)).toEqual([image.id]);
        expect((await get(`/images/${image.id}/vm-defaults`)).body).toMatchObject({
          firmware: 'uefi',
          memoryMiB: 2048,
        });
        // What a user asked for once: a description alone leaves the rest as it is.
        const described = await send('PATCH', `/images/${image.id}`, { description: 'boots anything' });
        expect(described.body).toMatchObject({
          name: 'Rescue disc',
          description: 'boots anything',
          requirements: { minMemoryMiB: 2048, firmware: 'uefi' },
        });
      } finally {
        await quantix.repositories.images.delete(image.id);
      }
    });

    it('edits an image whose row holds a label written before labels were checked, mending that label', async () => {
      const image = await scannedIso();
      try {
        await quantix.database
          .knex('images')
          .where({ id: image.id })
          .update({ labels: JSON.stringify({ 'iso.quantix.io/volume-id': 'EVIL\x1b[2J' }) });
        const changed = await send('PATCH', `/images/${image.id}`, { labels: { tier: 'gold' } });
        expect(changed.status, JSON.stringify(changed.body)).toBe(200);
        expect(changed.body.labels).toEqual({ tier: 'gold', 'iso.quantix.io/volume-id': 'EVIL\uFFFD[2J' });
        const refused = await send('PATCH', `/images/${image.id}`, { labels: { tier: 'gold\x1b[2J' } });
        expect(refused).toMatchObject({ status: 400, body: { error: { code: 'INVALID_INPUT' } } });
      } finally {
        await quantix.repositories.images.delete(image.id);
      }
    });

    it('lands edits made at once without losing one; refuses a stale expectedVersion', async () => {
      const image = await scannedIso();
      try {
        const answers = await Promise.all(
          ['a', 'b', 'c', 'd', 'e'].map((key) => send('PATCH', `/images/${image.id}`, { labels: { [key]: key } })),
        );
        expect(answers.map((a) => a.status)).toEqual([200, 200, 200, 200, 200]);
        const after = await quantix.repositories.images.require(image.id);
        expect(after.labels).toMatchObject({ a: 'a', b: 'b', c: 'c', d: 'd', e: 'e', team: 'infra' });
        expect(after.version).toBe(image.version + 5);
        const stale = await send('PATCH', `/images/${image.id}`, { name: 'late', expectedVersion: image.version });
        expect(stale).toMatchObject({ status: 409, body: { error: { code: 'VERSION_CONFLICT' } } });
        expect((await quantix.repositories.images.require(image.id)).name).toBe('rescue-disc.iso');
      } finally {
        await quantix.repositories.images.delete(image.id);
      }
    });

    it('refuses Quantix’s own labels, fields no user sets, an empty change and an image its download owns', async () => {
      const image = await scannedIso();
      const pending = await quantix.repositories.images.create({
        name: 'fetching.qcow2',
        kind: 'cloud',
        phase: 'pending',
        location: { poolId: 'pool-a', relPath: 'images/fetching.qcow2' },
      });
      try {
        for (const labels of [{ 'quantix.io/copied-from': image.id }, { 'iso.quantix.io/volume-id': null }]) {
          const refused = await send('PATCH', `/images/${image.id}`, { labels });
          expect(refused.status).toBe(400);
          expect(refused.body).toMatchObject({
            error: { code: 'INVALID_INPUT', details: { issues: [{ path: `labels.${Object.keys(labels)[0]}` }] } },
          });
        }
        for (const body of [{}, { phase: 'ready' }, { requirements: { minCpu: 0 } }, { name: '' }]) {
          const refused = await send('PATCH', `/images/${image.id}`, body);
          expect(refused, JSON.stringify(body)).toMatchObject({
            status: 400,
            body: { error: { code: 'INVALID_INPUT' } },
          });
        }
        // Labels added 100 at a time stop at 200 on an image (its 3 count too).
        const hundred = (from: number) =>
          Object.fromEntries(Array.from({ length: 100 }, (_, i) => [`k${from + i}`, 'v']));
        expect((await send('PATCH', `/images/${image.id}`, { labels: hundred(0) })).status).toBe(200);
        const tooMany = await send('PATCH', `/images/${image.id}`, { labels: hundred(100) });
        expect(tooMany).toMatchObject({
          status: 400,
          body: { error: { code: 'INVALID_INPUT', details: { issues: [{ path: 'labels' }] } } },
        });
        expect(Object.keys((await quantix.repositories.images.require(image.id)).labels)).toHaveLength(103);
        const busy = await send('PATCH', `/images/${pending.id}`, { name: 'mine' });
        expect(busy).toMatchObject({
          status: 409,
          body: { error: { code: 'IMAGE_BUSY', details: { phase: 'pending' } } },
        });
        expect((await quantix.repositories.images.require(pending.id)).version).toBe(pending.version);
        const missing = await send('PATCH', '/images/no-such-image', { name: 'x' });
        expect(missing).toMatchObject({ status: 404, body: { error: { code: 'NOT_FOUND' } } });
      } finally {
        await quantix.repositories.images.delete(image.id);
        await quantix.repositories.images.delete(pending.id);
      }
    });
  });
});
