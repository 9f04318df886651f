/**
 * The built `dist` of @quantix/core, loaded by plain Node (no vitest transform) through the
 * package's exports map, as ESM and as CommonJS. A bundle broken by the build (missing
 * export, decorator-metadata trap, wrong format) fails here even when source tests pass.
 */
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const run = promisify(execFile);
const packageRoot = join(import.meta.dirname, '..');

describe('built dist of @quantix/core', () => {
  it('exists (npm run build first)', () => {
    for (const file of ['index.js', 'index.cjs', 'index.d.ts', 'index.d.cts', 'testing.js', 'testing.cjs']) {
      expect(existsSync(join(packageRoot, 'dist', file)), `dist/${file}`).toBe(true);
    }
  });

  it.each([
    ['esm', 'dist-consumer.mjs'],
    ['cjs', 'dist-consumer.cjs'],
  ])('works from %s: a plugin provides a service that uses the repositories', async (format, script) => {
    const { stdout } = await run(process.execPath, [join(import.meta.dirname, '__fixtures__', script)], {
      env: { ...process.env, QUANTIX_LOG_LEVEL: 'silent' },
    });
    expect(JSON.parse(stdout)).toEqual({ described: `${format}: 1 image(s)`, refused: 'INVALID_INPUT', format });
  });

  it('works with two copies of core in one process: tokens and error codes of one are found by the other', async () => {
    const { stdout } = await run(process.execPath, [join(import.meta.dirname, '__fixtures__', 'two-copies.mjs')], {
      env: { ...process.env, QUANTIX_LOG_LEVEL: 'silent' },
    });
    expect(JSON.parse(stdout)).toEqual({
      twoCopies: true,
      backends: ['from-cjs'],
      greeting: 'images: 0',
      registered: 409,
      recognised: true,
      conflict:
        "PLUGIN_CONFLICT: Plugin 'esm-plugin': provides 'two-copies.greeter', which plugin 'cjs-plugin' already provides; only one may",
    });
  });

  it('declares no typedi types and loads no reflect-metadata', () => {
    for (const file of ['index.d.ts', 'index.d.cts', 'testing.d.ts', 'testing.d.cts']) {
      const declarations = readFileSync(join(packageRoot, 'dist', file), 'utf8');
      expect(declarations, file).not.toMatch(/from ['"]typedi['"]|import\(['"]typedi['"]\)/);
    }
    for (const file of ['index.js', 'index.cjs']) {
      expect(readFileSync(join(packageRoot, 'dist', file), 'utf8'), file).not.toContain('reflect-metadata');
    }
  });
});
