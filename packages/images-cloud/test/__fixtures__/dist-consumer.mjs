// Uses the BUILT packages through their exports maps, as an ESM consumer would: the plugin in a
// Quantix instance, and a real verified download from a loopback HTTP server.
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createQuantix, ImageCatalogToken, ImageFetcherToken, isQuantixError } from '@quantix/core';
import { createImagesCloudPlugin, HttpImageFetcher } from '@quantix/images-cloud';
import { sha256Sums, startImageServer } from '@quantix/images-cloud/testing';

const body = randomBytes(256 * 1024);
const sum = createHash('sha256').update(body).digest('hex');
const server = await startImageServer();
server.setFile('/disk.img', body);
server.setFile('/SHA256SUMS', sha256Sums({ 'disk.img': body }));
const base = server.url;
const dir = mkdtempSync(join(tmpdir(), 'images-cloud-dist-'));

const quantix = await createQuantix({
  database: { client: 'pglite' },
  plugins: [createImagesCloudPlugin({ fetcher: { policy: { allowAddresses: ['127.0.0.1'] } } })],
});
const catalogEntries = (await quantix.getAll(ImageCatalogToken)[0].list()).length;
const [fetcher] = quantix.getAll(ImageFetcherToken);
const result = await fetcher.fetch({ sourceUrl: `${base}/disk.img`, checksumUrl: `${base}/SHA256SUMS`, destinationPath: join(dir, 'disk.img') });
const onDisk = createHash('sha256').update(readFileSync(join(dir, 'disk.img'))).digest('hex');
let refused = null;
try {
  await new HttpImageFetcher().fetch({ sourceUrl: 'http://169.254.169.254/latest', checksumUrl: `${base}/SHA256SUMS`, destinationPath: join(dir, 'x') });
} catch (error) {
  refused = isQuantixError(error) ? error.code : String(error);
}
const hasFetcher = quantix.has(ImageFetcherToken);
await quantix.close();
await server.close();
rmSync(dir, { recursive: true, force: true });
process.stdout.write(
  JSON.stringify({
    format: typeof require === 'undefined' ? 'esm' : 'cjs',
    catalogEntries,
    verified: result.checksum.value === sum && onDisk === sum,
    detectedFormat: result.detectedFormat,
    refused,
    hasFetcher,
  }),
);
