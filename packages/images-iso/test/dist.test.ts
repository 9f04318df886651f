/**
 * The built `dist` of @quantix/images-iso, loaded by plain Node (no vitest transform) through the
 * package's exports map, as ESM and as CommonJS: a broken bundle (missing export, decorator
 * metadata trap, wrong format) fails here even when the source tests pass.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildIso, REAL_MEDIA, requireIsoTools } from '../src/__fixtures__/isos.js';

const run = promisify(execFile);
const packageRoot = join(import.meta.dirname, '..');
let base: string;
let pool: string;

beforeAll(async () => {
  requireIsoTools();
  base = await mkdtemp(join(tmpdir(), 'quantix-iso-dist-'));
  pool = join(base, 'pool');
  await mkdir(pool);
  await buildIso(join(pool, 'debian-12.7.0-amd64-netinst.iso'), REAL_MEDIA.debian12);
});

afterAll(async () => {
  await rm(base, { recursive: true, force: true });
});

describe('built dist of @quantix/images-iso', () => {
  it('exists (npm run build first)', () => {
    for (const file of ['index.js', 'index.cjs', 'index.d.ts', 'index.d.cts', 'testing.js', 'testing.cjs']) {
      expect(existsSync(join(packageRoot, 'dist', file)), `dist/${file}`).toBe(true);
    }
  });

  it.each([
    ['esm', 'dist-consumer.mjs'],
    ['cjs', 'dist-consumer.cjs'],
  ])(
    'works from %s: reads and identifies an ISO, inspects it through the plugin as a node scan does',
    async (format, script) => {
      const { stdout } = await run(
        process.execPath,
        [join(import.meta.dirname, '__fixtures__', script), pool, join(pool, 'debian-12.7.0-amd64-netinst.iso')],
        { env: { ...process.env, QUANTIX_LOG_LEVEL: 'silent' } },
      );
      expect(JSON.parse(stdout)).toEqual({
        format,
        volumeId: 'Debian 12.7.0 amd64 n',
        os: {
          family: 'linux',
          distribution: 'debian',
          version: '12',
          arch: 'x86_64',
          defaultUser: null,
          cloudInit: false,
          // Debian 12 came out after the installed osinfo-db (2022-12): read from the label.
          shortId: 'debian12',
          confidence: 'extrapolated',
          osinfoVersion: '20221203',
        },
        inspected: { distribution: 'debian', volumeId: 'Debian 12.7.0 amd64 n' },
        catalogEntries: true,
        testing: true,
      });
    },
  );
});
