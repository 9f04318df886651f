import { createQuantix, FileInspectorToken, ImageCatalogToken } from '@quantix/core';
import { describe, expect, it } from 'vitest';
import { ISO_CATALOG_NAME, IsoCatalog } from './catalog.js';
import { createImagesIsoPlugin } from './plugin.js';

describe('images-iso plugin', () => {
  it('provides the ISO catalog and inspector, with or without a database, and no scan or upload path of its own', async () => {
    const node = await createQuantix({ database: false, plugins: [createImagesIsoPlugin({ osinfo: false })] });
    const quantix = await createQuantix({ database: { client: 'pglite' }, plugins: [createImagesIsoPlugin()] });
    try {
      expect(node.getAll(ImageCatalogToken)[0]).toBeInstanceOf(IsoCatalog);
      expect(node.getAll(FileInspectorToken)).toHaveLength(1);
      expect(quantix.getAll(FileInspectorToken)).toHaveLength(1);
      // Moved from the deleted scanner test: the catalog lists ISO entries only.
      const iso = quantix.getAll(ImageCatalogToken).find((c) => c.name === ISO_CATALOG_NAME);
      expect((await iso?.list({ kind: 'iso' }))?.length).toBeGreaterThan(5);
      expect(await iso?.list({ kind: 'cloud' })).toEqual([]);
    } finally {
      await node.close();
      await quantix.close();
    }
  });
});
