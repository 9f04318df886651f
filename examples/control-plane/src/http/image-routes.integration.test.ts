/**
 * The image listings over HTTP, on PostgreSQL: keyset paging through `after`/`nextCursor`, a
 * cursor the server did not make refused with a stable code, search over names, OS and labels,
 * every field of an image kept by the fast serializer, and the OpenAPI document describing it all.
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
});
