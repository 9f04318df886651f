import { createQuantix, ImageCatalogToken, ImageFetcherToken, type Quantix, type QuantixNode } from '@quantix/core';
import { afterEach, describe, expect, it } from 'vitest';
import { HttpImageFetcher } from './fetch/fetcher.js';
import { createImagesCloudPlugin, IMAGES_CLOUD_PLUGIN_NAME } from './plugin.js';

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
  it('provides the built-in catalog, user entries and the fetcher', async () => {
    quantix = await createQuantix({
      database: { client: 'pglite' },
      plugins: [createImagesCloudPlugin({ entries: [mirror], entriesCatalogName: 'lan' })],
    });
    expect(quantix.plugins).toEqual([IMAGES_CLOUD_PLUGIN_NAME]);
    expect(quantix.getAll(ImageCatalogToken).map((c) => c.name)).toEqual(['quantix-builtin', 'lan']);
    const [fetcher] = quantix.getAll(ImageFetcherToken);
    expect(fetcher).toBeInstanceOf(HttpImageFetcher);
    expect(fetcher?.schemes).toEqual(['http', 'https']);
  });

  it('on a node (no database) provides the catalogs and the fetcher', async () => {
    node = await createQuantix({ database: false, plugins: [createImagesCloudPlugin()] });
    expect(node.getAll(ImageCatalogToken).map((c) => c.name)).toEqual(['quantix-builtin']);
    expect(node.getAll(ImageFetcherToken)[0]).toBeInstanceOf(HttpImageFetcher);
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
