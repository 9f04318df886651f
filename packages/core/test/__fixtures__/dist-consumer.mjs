// Uses the BUILT package through its exports map, as an ESM consumer would.
import { createQuantix, createServiceToken, definePlugin, isQuantixError, QUANTIX_PLUGIN_API_VERSION } from '@quantix/core';

class ImageCounter {
  // Constructor injection by hand: typedi must not be asked to guess these from metadata.
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

const quantix = await createQuantix({ database: { client: 'pglite' }, plugins: [plugin], config: { label: 'esm' } });
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
