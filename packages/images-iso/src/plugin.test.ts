import { createQuantix, FileInspectorToken, ImageCatalogToken } from '@quantix/core';
import { describe, expect, it } from 'vitest';
import { IsoCatalog } from './catalog.js';
import { createImagesIsoPlugin, IsoImageServiceToken } from './plugin.js';

describe('images-iso plugin', () => {
  it('provides the ISO catalog and inspector, and the scan and upload service only with a database', async () => {
    const node = await createQuantix({ database: false, plugins: [createImagesIsoPlugin({ osinfo: false })] });
    const quantix = await createQuantix({ database: { client: 'pglite' }, plugins: [createImagesIsoPlugin()] });
    try {
      expect(node.getAll(ImageCatalogToken)[0]).toBeInstanceOf(IsoCatalog);
      expect(node.getAll(FileInspectorToken)).toHaveLength(1);
      expect(node.has(IsoImageServiceToken)).toBe(false);
      expect(quantix.get(IsoImageServiceToken)).toMatchObject({
        scanPool: expect.any(Function),
        upload: expect.any(Function),
      });
    } finally {
      await node.close();
      await quantix.close();
    }
  });
});
