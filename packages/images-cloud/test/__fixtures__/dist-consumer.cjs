// Uses the BUILT packages through their exports maps, as a CommonJS consumer would: the plugin in a
// Quantix instance, and a real verified download from a loopback HTTP server.
const { createHash, randomBytes } = require('node:crypto');
const { mkdtempSync, readFileSync, rmSync } = require('node:fs');
const { tmpdir } = require('node:os');
const { join } = require('node:path');
const { createQuantix, ImageCatalogToken, ImageFetcherToken, isQuantixError } = require('@quantix/core');
const { createImagesCloudPlugin, HttpImageFetcher } = require('@quantix/images-cloud');
const { sha256Sums, startImageServer } = require('@quantix/images-cloud/testing');

(async () => {
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
})().catch((error) => {
  console.error(error);
  process.exit(1);
});
