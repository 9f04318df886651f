/**
 * The public API of @quantix/storage-nfs, pinned: every name the built entries export (types too) is
 * listed in test/public-api/. A change to the surface shows up in review as a change to that
 * list; rewrite it with `npx vitest run packages/storage-nfs/test/public-api.test.ts -u`.
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { publicApi } from '../../../scripts/public-api.js';

const packageRoot = join(import.meta.dirname, '..');

describe('public API of @quantix/storage-nfs', () => {
  it.each(['index'])('dist/%s exports exactly the pinned names', async (entry) => {
    const api = await publicApi(packageRoot, entry);
    expect(api.undeclared, 'runtime exports without declarations').toEqual([]);
    await expect(api.text).toMatchFileSnapshot(`public-api/${entry}.txt`);
  });
});
