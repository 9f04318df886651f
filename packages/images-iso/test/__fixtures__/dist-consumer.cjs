// Uses the BUILT package through its exports map, as a CommonJS consumer would: reads an ISO, and
// inspects it with the plugin's FileInspector inside a node's Quantix instance (typedi, tokens), as
// a node agent's scan does; and loads the testing entry other packages' tests use.
const { createQuantix, FileInspectorToken, ImageCatalogToken } = require('@quantix/core');
const { createImagesIsoPlugin, identifyIso, ISO_LABELS, readIsoInfo } = require('@quantix/images-iso');
const { buildIso } = require('@quantix/images-iso/testing');
(async () => {
  const [, iso] = process.argv.slice(2);
  const info = await readIsoInfo({ path: iso });
  const identified = await identifyIso({ iso: info, fileName: iso });
  const quantix = await createQuantix({ database: false, plugins: [createImagesIsoPlugin()] });
  const [inspector] = quantix.getAll(FileInspectorToken);
  const inspected = await inspector.inspect({ path: iso, relPath: 'debian.iso', content: 'iso' });
  const catalogs = (await Promise.all(quantix.getAll(ImageCatalogToken).map((c) => c.list()))).flat().length;
  await quantix.close();
  process.stdout.write(
    JSON.stringify({
      format: typeof require === 'undefined' ? 'esm' : 'cjs',
      volumeId: info.volumeId,
      os: identified.os,
      inspected: { distribution: inspected?.os?.distribution, volumeId: inspected?.labels?.[ISO_LABELS.volumeId] },
      catalogEntries: catalogs > 0,
      testing: typeof buildIso === 'function',
    }),
  );
})().catch((error) => {
  console.error(error);
  process.exit(1);
});
