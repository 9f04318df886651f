/**
 * The built `dist` of @quantix/storage-local, loaded by plain Node (no vitest transform) through
 * the package's exports map, as ESM and as CommonJS, so a broken bundle cannot hide behind
 * green source tests.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, realpath, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const run = promisify(execFile);
const packageRoot = join(import.meta.dirname, '..');
let pool: string;

// The same consumer in both module systems: list a pool, try an escape, show the plugin.
const body = `
  const pool = { id: 'p', name: 'p', description: '', type: 'local', config: { path: process.env.POOL },
    contentTypes: ['iso'], shared: false, nodeIds: [], labels: {}, version: 1, createdAt: new Date(), updatedAt: new Date() };
  const backend = new m.LocalStorageBackend();
  const listed = (await backend.list({ pool, content: 'iso' })).files.map((f) => f.relPath);
  const escape = await backend.resolve({ pool, relPath: '../x' }).catch((e) => e.code);
  process.stdout.write(JSON.stringify({ listed, escape, plugin: [m.storageLocalPlugin.name, m.storageLocalPlugin.apiVersion] }));
`;
const consumers = {
  esm: ['--input-type=module', '-e', `import * as m from '@quantix/storage-local';\n${body}`],
  cjs: ['--input-type=commonjs', '-e', `const m = require('@quantix/storage-local');\n(async () => {${body}})();`],
};

beforeAll(async () => {
  pool = await realpath(await mkdtemp(join(tmpdir(), 'quantix-local-dist-')));
  await mkdir(join(pool, 'linux'));
  await writeFile(join(pool, 'linux', 'debian.iso'), '');
});
afterAll(async () => {
  await rm(pool, { recursive: true, force: true });
});

describe('built dist of @quantix/storage-local', () => {
  it('exists (npm run build first)', () => {
    for (const file of ['index.js', 'index.cjs', 'index.d.ts', 'index.d.cts']) {
      expect(existsSync(join(packageRoot, 'dist', file)), `dist/${file}`).toBe(true);
    }
  });

  it.each(Object.entries(consumers))(
    'works from %s: lists a pool, refuses an escape, exports its plugin',
    async (_, args) => {
      const { stdout } = await run(process.execPath, args, { cwd: packageRoot, env: { ...process.env, POOL: pool } });
      expect(JSON.parse(stdout)).toEqual({
        listed: ['linux/debian.iso'],
        escape: 'PATH_ESCAPES_POOL',
        plugin: ['@quantix/storage-local', '^1.1.0'],
      });
    },
  );
});
