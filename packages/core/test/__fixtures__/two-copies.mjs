// Two copies of the BUILT @quantix/core in one process: the ESM build imported, the CJS build
// required. A plugin written against one copy is given to an instance made by the other.
import { createRequire } from 'node:module';
import * as esm from '@quantix/core';

const cjs = createRequire(import.meta.url)('@quantix/core');

const backend = {
  type: 'from-cjs',
  status: async () => ({ available: true, reason: null, rootPath: '/', capacityBytes: 1, availableBytes: 1, usedBytes: 0 }),
  list: async () => ({ files: [], skipped: [] }),
};
const CjsGreeter = cjs.createServiceToken('two-copies.greeter');
const CjsCodes = cjs.defineErrorCodes('two-copies-plugin', {
  TWO_COPIES_REFUSED: { status: 409, retryable: false, description: 'Refused by the CJS copy.' },
});
const cjsPlugin = cjs.definePlugin({
  name: 'cjs-plugin',
  apiVersion: '^1.1.0',
  // The ESM kernel provides the repositories; the CJS copy's token must name the same service.
  needs: [cjs.RepositoriesToken],
  register(ctx) {
    ctx.provide(cjs.StorageBackendToken, { value: backend });
    ctx.provide(CjsGreeter, { factory: (c) => ({ greet: async () => `images: ${await c.repositories.images.count()}` }) });
  },
});

const quantix = await esm.createQuantix({ database: { client: 'pglite' }, plugins: [cjsPlugin] });
const result = {
  twoCopies: esm.createQuantix !== cjs.createQuantix && esm.StorageBackendToken !== cjs.StorageBackendToken,
  backends: quantix.getAll(esm.StorageBackendToken).map((b) => b.type),
  greeting: await quantix.get(esm.createServiceToken('two-copies.greeter')).greet(),
  // A code registered through one copy has its status in the other's registry.
  registered: esm.errorCodeInfo(CjsCodes.TWO_COPIES_REFUSED)?.status ?? null,
  recognised: esm.isQuantixError(new cjs.QuantixError(CjsCodes.TWO_COPIES_REFUSED, 'no'), 'TWO_COPIES_REFUSED'),
};
await quantix.close();

// A second provider of a single-valued token is refused even when the two come from two copies.
const esmPlugin = esm.definePlugin({
  name: 'esm-plugin',
  apiVersion: '^1.1.0',
  register: (ctx) => ctx.provide(esm.createServiceToken('two-copies.greeter'), { value: {} }),
});
try {
  await esm.createQuantix({ database: { client: 'pglite' }, plugins: [cjsPlugin, esmPlugin] });
  result.conflict = 'started';
} catch (error) {
  result.conflict = cjs.isQuantixError(error) ? `${error.code}: ${error.message}` : String(error);
}
process.stdout.write(JSON.stringify(result));
