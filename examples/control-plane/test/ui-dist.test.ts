/**
 * The built control plane (dist/, loaded by plain Node through the exports map) serves the
 * built web UI (dist/ui): the bundle finds the page beside itself, page addresses get
 * index.html, assets are served, and unknown API paths keep the API's error shape.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const run = promisify(execFile);
const packageRoot = join(import.meta.dirname, '..');

describe('built dist of the control plane with its web UI', () => {
  it('has the UI built beside the bundle (npm run build first)', () => {
    for (const file of ['index.js', 'ui/index.html']) {
      expect(existsSync(join(packageRoot, 'dist', file)), `dist/${file}`).toBe(true);
    }
  });

  it('serves the page for a page address, its script, and API errors in the API shape', async () => {
    const staging = mkdtempSync(join(tmpdir(), 'quantix-ui-dist-'));
    try {
      const { stdout } = await run(
        process.execPath,
        [join(import.meta.dirname, '__fixtures__/ui-dist-consumer.mjs'), staging],
        {
          cwd: packageRoot,
          env: { ...process.env, QUANTIX_LOG_LEVEL: 'silent' },
        },
      );
      expect(JSON.parse(stdout)).toEqual({
        page: 200,
        root: true,
        csp: true,
        script: true,
        asset: 200,
        assetType: expect.stringMatching(/javascript/),
        assetBytes: true,
        assetCache: 'public, max-age=31536000, immutable',
        api: [404, 'NOT_FOUND'],
      });
    } finally {
      rmSync(staging, { recursive: true, force: true });
    }
  });
});
