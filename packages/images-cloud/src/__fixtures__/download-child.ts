/**
 * Child process of the SIGKILL test. `start`: opens the database, defines a pool, starts a
 * download and prints one JSON line once the row shows progress — then keeps downloading until
 * the test kills it. `reconcile`: a new process on the same database runs reconcileInterrupted
 * and prints what it found and how the download ended.
 */
import { createQuantix, type DatabaseConfig } from '@quantix/core';
import { storageLocalPlugin } from '@quantix/storage-local';
import type { CatalogEntryInput } from '../catalog/static-catalog.js';
import { CloudImageServiceToken, createImagesCloudPlugin } from '../plugin.js';

interface ChildConfig {
  database: DatabaseConfig;
  entry: CatalogEntryInput;
  poolDir: string;
  /** Print the line once the row records at least this many bytes. */
  printAfterBytes: number;
}

const mode = process.argv[2];
const config = JSON.parse(process.argv[3] ?? '{}') as ChildConfig;

const quantix = await createQuantix({
  database: config.database,
  plugins: [
    storageLocalPlugin,
    createImagesCloudPlugin({
      builtinCatalog: false,
      entries: [config.entry],
      fetcher: { policy: { allowAddresses: ['127.0.0.0/8'] } },
      // The test drives reconciliation itself, to show what the new process found first.
      reconcileOnStart: false,
      progressWriteIntervalMs: 100,
    }),
  ],
});
const service = quantix.get(CloudImageServiceToken);
const images = quantix.repositories.images;

if (mode === 'start') {
  const pool = await quantix.repositories.pools.create({ name: 'sigkill pool', type: 'local', config: { path: config.poolDir } });
  const { image } = await service.startDownload({ catalogId: config.entry.id, poolId: pool.id });
  // Wait until the database itself shows progress: what the next process will find.
  for (;;) {
    const row = await images.require(image.id);
    if (row.phase === 'downloading' && (row.progress?.bytesDone ?? 0) >= config.printAfterBytes) {
      process.stdout.write(`${JSON.stringify({ imageId: image.id, poolId: pool.id, row })}\n`);
      break;
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  // Keep downloading until killed.
  await new Promise(() => undefined);
} else if (mode === 'reconcile') {
  const before = await images.list({ phase: ['pending', 'downloading', 'verifying'] });
  const result = await service.reconcileInterrupted();
  const resumed = result.resumed.map((r) => ({ id: r.image.id, partialBytes: r.partialBytes }));
  const finals = await Promise.all(result.resumed.map((r) => r.completion));
  const after = await images.list();
  process.stdout.write(`${JSON.stringify({ before, resumed, failed: result.failed, finals, after })}\n`);
  await quantix.close();
} else {
  throw new Error(`unknown mode ${mode}`);
}
