// Uses the BUILT package through its exports map, as a CommonJS consumer would: reads an ISO, and scans
// a pool through the plugin inside a Quantix instance (typedi, tokens, the repositories).
const { createQuantix, ImageCatalogToken } = require('@quantix/core');
const { createImagesIsoPlugin, IsoImageServiceToken, readIsoInfo, identifyIso } = require('@quantix/images-iso');
const { storageLocalPlugin } = require('@quantix/storage-local');
(async () => {

const [pool, iso] = process.argv.slice(2);
const info = await readIsoInfo({ path: iso });
const identified = await identifyIso({ iso: info, fileName: iso });
const quantix = await createQuantix({ database: { client: 'pglite' }, plugins: [storageLocalPlugin, createImagesIsoPlugin()] });
const created = await quantix.repositories.pools.create({ name: 'dist', type: 'local', config: { path: pool } });
const scan = await quantix.get(IsoImageServiceToken).scanPool({ pool: created.id });
const [image] = await quantix.repositories.images.list({ poolId: created.id });
const catalogs = (await Promise.all(quantix.getAll(ImageCatalogToken).map((c) => c.list()))).flat().length;
await quantix.close();
process.stdout.write(
  JSON.stringify({
    format: typeof require === 'undefined' ? 'esm' : 'cjs',
    volumeId: info.volumeId,
    os: identified.os,
    added: scan.added,
    phase: image?.phase,
    catalogEntries: catalogs > 0,
  }),
);
})().catch((error) => {
  console.error(error);
  process.exit(1);
});
