/**
 * Child process of the SIGKILL test. `start`: opens the database, defines a pool, starts a
 * download and prints one JSON line once the row shows progress — then keeps downloading until
 * the test kills it. `reconcile`: a new process on the same database runs the download
 * service's reconcileOnStart (as a control plane does at start) and prints what it found and
 * how the download ended. Downloads run in process (LocalDownloadExecutor).
 */
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { createQuantix, type DatabaseConfig } from '@quantix/core';
import { storageLocalPlugin } from '@quantix/storage-local';
import { type CatalogEntryInput, createImagesCloudPlugin } from '@quantix/images-cloud';
import { createInProcessDownloads } from '../images/downloads.js';

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
    }),
  ],
});
const service = createInProcessDownloads(quantix, { progressWriteMs: 100 });
const images = quantix.repositories.images;

if (mode === 'start') {
  const pool = await quantix.repositories.pools.create({ name: 'sigkill pool', type: 'local', config: { path: config.poolDir } });
  const { image } = await service.download({ catalogId: config.entry.id, poolId: pool.id });
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
  // What the killed process left on disk: the partial file the resumed download continues.
  const partialBytes = (row: { location: { relPath: string } | null }) => {
    const path = `${join(config.poolDir, row.location?.relPath ?? '')}.partial`;
    return existsSync(path) ? statSync(path).size : 0;
  };
  const left = new Map(before.map((row) => [row.id, partialBytes(row)]));
  const result = await service.reconcileOnStart();
  const resumed = result.resumed.map((r) => ({ id: r.image.id, partialBytes: left.get(r.image.id) ?? 0 }));
  const finals = await Promise.all(result.resumed.map((r) => r.completion));
  const after = await images.list();
  process.stdout.write(`${JSON.stringify({ before, resumed, failed: result.failed, finals, after })}\n`);
  await quantix.close();
} else {
  throw new Error(`unknown mode ${mode}`);
}
