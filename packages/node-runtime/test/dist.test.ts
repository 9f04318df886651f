/**
 * The built `dist` of @quantix/node-runtime, loaded by plain Node (no vitest transform) through
 * the package's exports map, as ESM and as CommonJS: the plugin in a real instance drives
 * libvirt's built-in test driver (virsh -c test:///default) through the local runner.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';

const run = promisify(execFile);
const packageRoot = join(import.meta.dirname, '..');

describe('built dist of @quantix/node-runtime', () => {
  beforeAll(async () => {
    // virsh comes with the libvirt client tools that this script installs when missing.
    await run('bash', [join(packageRoot, '..', '..', 'scripts', 'services.sh'), 'libvirt'], { timeout: 600_000 });
  });

  it('exists (npm run build first)', () => {
    for (const file of ['index.js', 'index.cjs', 'index.d.ts', 'index.d.cts']) {
      expect(existsSync(join(packageRoot, 'dist', file)), `dist/${file}`).toBe(true);
    }
  });

  it.each([
    ['esm', 'dist-consumer.mjs'],
    ['cjs', 'dist-consumer.cjs'],
  ])('works from %s: the plugin provides a hypervisor that lists domains', async (format, script) => {
    const { stdout } = await run(process.execPath, [join(import.meta.dirname, '__fixtures__', script)], {
      env: { ...process.env, QUANTIX_LOG_LEVEL: 'silent' },
    });
    expect(JSON.parse(stdout)).toEqual({
      format,
      target: 'local',
      domains: ['test:running'],
      quoted: `'echo' 'it'\\''s'`,
      xml: true,
      refused: 'INVALID_INPUT',
    });
  });
});
