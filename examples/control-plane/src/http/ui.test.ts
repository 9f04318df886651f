import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Fastify, { type FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { serveUi } from './ui.js';

describe('serveUi', () => {
  let dir: string;
  let app: FastifyInstance;
  let bare: FastifyInstance;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'quantix-ui-'));
    mkdirSync(join(dir, 'assets'));
    writeFileSync(join(dir, 'index.html'), '<!doctype html><title>Quantix</title><div id="root"></div>');
    writeFileSync(join(dir, 'assets/index-abc123.js'), 'console.log(1)');
    app = Fastify();
    app.get('/api/v1/pools', async () => ({ pools: [] }));
    await serveUi(app, { apiPrefix: '/api/v1', dir });
    bare = Fastify();
    await serveUi(bare, { apiPrefix: '/api/v1', dir: null });
  });

  afterAll(async () => {
    await app.close();
    await bare.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('serves index.html at / and for every page address, with a strict content security policy', async () => {
    for (const url of ['/', '/vms/new', '/images?kind=iso']) {
      const response = await app.inject({ url });
      expect(response.statusCode, url).toBe(200);
      expect(response.body).toContain('<div id="root"></div>');
      expect(response.headers['content-security-policy']).toContain("default-src 'self'");
      expect(response.headers['cache-control']).toBe('no-cache');
    }
  });

  it('serves hashed assets as immutable', async () => {
    const response = await app.inject({ url: '/assets/index-abc123.js' });
    expect(response.statusCode).toBe(200);
    expect(response.headers['content-type']).toMatch(/javascript/);
    expect(response.headers['cache-control']).toContain('immutable');
  });

  it('keeps serving the UI it started with when its files are replaced (a rebuild, an upgrade in place)', async () => {
    const page = (await app.inject({ url: '/images' })).body;
    rmSync(join(dir, 'assets'), { recursive: true, force: true });
    mkdirSync(join(dir, 'assets'));
    writeFileSync(join(dir, 'index.html'), '<!doctype html><script src="/assets/index-new456.js"></script>');
    writeFileSync(join(dir, 'assets/index-new456.js'), 'console.log(2)');
    // The page and the assets it names, as they were: a whole UI, not a page naming assets that are gone.
    expect((await app.inject({ url: '/images' })).body).toBe(page);
    const asset = await app.inject({ url: '/assets/index-abc123.js' });
    expect(asset.statusCode).toBe(200);
    expect(asset.body).toBe('console.log(1)');
  });

  it('answers a client that has the page or an asset already with 304', async () => {
    for (const url of ['/', '/assets/index-abc123.js']) {
      const first = await app.inject({ url });
      const etag = first.headers.etag as string;
      expect(etag, url).toMatch(/^"[\w-]+"$/);
      const again = await app.inject({ url, headers: { 'if-none-match': etag } });
      expect(again.statusCode, url).toBe(304);
      expect(again.body).toBe('');
    }
    expect((await app.inject({ method: 'HEAD', url: '/assets/index-abc123.js' })).statusCode).toBe(200);
  });

  it('answers unknown API paths and non-GET requests with the API error shape, not the page', async () => {
    expect((await app.inject({ url: '/api/v1/pools' })).json()).toEqual({ pools: [] });
    for (const [method, url] of [
      ['GET', '/api/v1/nope'],
      ['GET', '/api/v1'],
      ['POST', '/vms/new'],
      ['GET', '/assets/index-old.js'],
      ['GET', '/favicon.ico'],
    ] as const) {
      const response = await app.inject({ method, url });
      expect(response.statusCode, `${method} ${url}`).toBe(404);
      expect(response.json()).toMatchObject({ error: { code: 'NOT_FOUND' } });
    }
  });

  it('explains how to build the UI when it is not built, and leaves the API alone', async () => {
    const response = await bare.inject({ url: '/images' });
    expect(response.statusCode).toBe(503);
    expect(response.body).toContain('npm run build -w @quantix/example-control-plane');
    expect((await bare.inject({ url: '/api/v1/x' })).json()).toMatchObject({ error: { code: 'NOT_FOUND' } });
  });
});
