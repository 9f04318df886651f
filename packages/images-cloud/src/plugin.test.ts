import { createQuantix, ImageCatalogToken, ImageFetcherToken, type Quantix, type QuantixNode } from '@quantix/core';
import { afterEach, describe, expect, it } from 'vitest';
import { HttpImageFetcher } from './fetch/fetcher.js';
import { CloudImageService } from './lifecycle/service.js';
import { CloudImageServiceToken, createImagesCloudPlugin, IMAGES_CLOUD_PLUGIN_NAME } from './plugin.js';

let quantix: Quantix | undefined;
let node: QuantixNode | undefined;
afterEach(async () => {
  await quantix?.close();
  await node?.close();
  quantix = undefined;
  node = undefined;
});

const mirror = {
  id: 'ubuntu-24.04',
  name: 'Ubuntu 24.04 (LAN mirror)',
  sourceUrl: 'http://10.0.0.2/noble-server-cloudimg-amd64.img',
  checksumUrl: 'http://10.0.0.2/SHA256SUMS',
};

describe('images-cloud plugin', () => {
  it('provides the built-in catalog, user entries, the fetcher and the lifecycle service', async () => {
    quantix = await createQuantix({
      database: { client: 'pglite' },
      plugins: [createImagesCloudPlugin({ entries: [mirror], entriesCatalogName: 'lan' })],
    });
    expect(quantix.plugins).toEqual([IMAGES_CLOUD_PLUGIN_NAME]);
    expect(quantix.getAll(ImageCatalogToken).map((c) => c.name)).toEqual(['quantix-builtin', 'lan']);
    const [fetcher] = quantix.getAll(ImageFetcherToken);
    expect(fetcher).toBeInstanceOf(HttpImageFetcher);
    expect(fetcher?.schemes).toEqual(['http', 'https']);
    expect(quantix.get(CloudImageServiceToken)).toBeInstanceOf(CloudImageService);
  });

  it('on a node (no database) provides the catalogs and the fetcher, and no lifecycle service', async () => {
    node = await createQuantix({ database: false, plugins: [createImagesCloudPlugin()] });
    expect(node.getAll(ImageCatalogToken).map((c) => c.name)).toEqual(['quantix-builtin']);
    expect(node.getAll(ImageFetcherToken)[0]).toBeInstanceOf(HttpImageFetcher);
    expect(node.has(CloudImageServiceToken)).toBe(false);
  });

  it('uses the last catalog that has an entry: a mirror entry replaces the built-in one, and the default policy still guards it', async () => {
    quantix = await createQuantix({
      database: { client: 'pglite' },
      plugins: [createImagesCloudPlugin({ entries: [mirror] })],
    });
    const pool = await quantix.repositories.pools.create({
      name: 'p',
      type: 'local',
      config: { path: '/nonexistent' },
    });
    // 10.0.0.2 is a private address: refused before any request, and no row is recorded.
    const refused = await quantix
      .get(CloudImageServiceToken)
      .startDownload({ catalogId: 'ubuntu-24.04', poolId: pool.id })
      .catch((e: unknown) => e);
    expect(refused).toMatchObject({
      code: 'SOURCE_NOT_ALLOWED',
      details: { url: mirror.sourceUrl, address: '10.0.0.2' },
    });
    expect(await quantix.repositories.images.count()).toBe(0);
    const unknown = await quantix
      .get(CloudImageServiceToken)
      .startDownload({ catalogId: 'no-such-image', poolId: pool.id })
      .catch((e: unknown) => e);
    expect(unknown).toMatchObject({ code: 'NOT_FOUND' });
  });

  it('fails start-up, naming the plugin, on a broken catalog entry', async () => {
    const failure = await createQuantix({
      database: { client: 'pglite' },
      plugins: [createImagesCloudPlugin({ entries: [{ id: 'x', name: 'x', sourceUrl: 'https://m/x.img' }] })],
    }).catch((e: unknown) => e);
    expect(failure).toMatchObject({ code: 'PLUGIN_INVALID', details: { plugin: IMAGES_CLOUD_PLUGIN_NAME } });
    expect((failure as Error).message).toContain('checksum');
  });
});
