// One download through the download lifecycle that runs — @quantix/control-plane's
// DownloadService, in process (LocalDownloadExecutor): a catalog entry, an image row on an
// embedded database, progress written and emitted, the fetch, the verified result recorded —
// on the BUILT packages in a plain node process. Prints one JSON line: { ms, sizeBytes, checksum, phase }.
//   node bench/__fixtures__/download-once.mjs URL CHECKSUM_URL POOL_DIR
import { createInProcessDownloads } from '@quantix/control-plane';
import { createQuantix } from '@quantix/core';
import { createImagesCloudPlugin } from '@quantix/images-cloud';
import { createStorageLocalPlugin } from '@quantix/storage-local';

const [sourceUrl, checksumUrl, poolDir] = process.argv.slice(2);
const quantix = await createQuantix({
  database: { client: 'pglite' },
  plugins: [
    createStorageLocalPlugin(),
    createImagesCloudPlugin({
      builtinCatalog: false,
      entries: [{ id: 'bench', name: 'bench', sourceUrl, checksumUrl, checksumAlgorithm: 'sha256' }],
      fetcher: { policy: { allowAddresses: ['127.0.0.1'] } },
    }),
  ],
});
const pool = await quantix.repositories.pools.create({ name: 'bench', type: 'local', config: { path: poolDir, create: true } });
const downloads = createInProcessDownloads(quantix);
const start = performance.now();
const { completion } = await downloads.download({ catalogId: 'bench', poolId: pool.id });
const image = await completion;
const ms = performance.now() - start;
await downloads.close();
await quantix.close();
process.stdout.write(
  `${JSON.stringify({ ms, sizeBytes: image.sizeBytes, checksum: image.checksum?.value, phase: image.phase })}\n`,
);
