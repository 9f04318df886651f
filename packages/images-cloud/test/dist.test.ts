/**
 * The built `dist` of @quantix/images-cloud, loaded by plain Node (no vitest transform) through
 * the package's exports map, as ESM and as CommonJS: the plugin registers in a Quantix instance
 * and the fetcher downloads and verifies a file from a real loopback server.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const run = promisify(execFile);
const packageRoot = join(import.meta.dirname, '..');

describe('built dist of @quantix/images-cloud', () => {
  it('exists (npm run build first)', () => {
    for (const file of [
      'index.js',
      'index.cjs',
      'index.d.ts',
      'index.d.cts',
      'testing.js',
      'testing.cjs',
      'testing.d.ts',
    ]) {
      expect(existsSync(join(packageRoot, 'dist', file)), `dist/${file}`).toBe(true);
    }
  });

  it.each([
    ['esm', 'dist-consumer.mjs'],
    ['cjs', 'dist-consumer.cjs'],
  ])(
    'works from %s: plugin, catalog, a verified download from the testing mirror, the source policy',
    async (format, script) => {
      const { stdout } = await run(process.execPath, [join(import.meta.dirname, '__fixtures__', script)], {
        env: { ...process.env, QUANTIX_LOG_LEVEL: 'silent' },
      });
      expect(JSON.parse(stdout)).toEqual({
        format,
        catalogEntries: 8,
        verified: true,
        detectedFormat: 'raw',
        refused: 'SOURCE_NOT_ALLOWED',
        hasFetcher: true,
      });
    },
  );
});
