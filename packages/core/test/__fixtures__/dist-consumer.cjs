// Uses the BUILT package through its exports map, as a CommonJS consumer would.
const { createQuantix, createServiceToken, definePlugin, isQuantixError, QUANTIX_PLUGIN_API_VERSION } = require('@quantix/core');

class ImageCounter {
  constructor(images, label) {
    this.images = images;
    this.label = label;
  }
  async describe() {
    return `${this.label}: ${await this.images.count()} image(s)`;
  }
}

const CounterToken = createServiceToken('dist.counter');
const plugin = definePlugin({
  name: 'dist-consumer',
  apiVersion: QUANTIX_PLUGIN_API_VERSION,
  register(ctx) {
    ctx.provide(CounterToken, { factory: (c) => new ImageCounter(c.repositories.images, String(c.config.label)) });
  },
});

(async () => {
  const quantix = await createQuantix({ database: { client: 'pglite' }, plugins: [plugin], config: { label: 'cjs' } });
  await quantix.repositories.images.create({ name: 'from dist', kind: 'iso' });
  const described = await quantix.get(CounterToken).describe();
  let refused = null;
  try {
    await quantix.repositories.images.create({ name: '', kind: 'iso' });
  } catch (error) {
    refused = isQuantixError(error) ? error.code : String(error);
  }
  await quantix.close();
  process.stdout.write(JSON.stringify({ described, refused, format: typeof require === 'undefined' ? 'esm' : 'cjs' }));
})().catch((error) => {
  console.error(error);
  process.exit(1);
});
