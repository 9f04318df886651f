/**
 * The built `dist` of @quantix/storage-nfs, loaded by plain Node (no vitest transform) through
 * the package's exports map, as ESM and as CommonJS. It builds on the built storage-local, so
 * this also proves the class inheritance works across the two bundles.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const run = promisify(execFile);
const packageRoot = join(import.meta.dirname, '..');

const body = `
  const pool = { id: 'p', name: 'p', description: '', type: 'nfs', config: { server: '[fd00::1]', export: '/export/' },
    contentTypes: ['iso'], shared: true, nodeIds: [], labels: {}, version: 1, createdAt: new Date(), updatedAt: new Date() };
  const table = m.parseMountInfo('122 26 0:54 / /srv/nfs/qVDS01 rw - nfs4 [fd00::1]:/export rw,vers=4.2,addr=fd00::1\\n');
  const found = m.findPoolMount(m.nfsMounts(table), { server: 'fd00::1', export: '/export' });
  const backend = new m.NfsStorageBackend();
  const status = await backend.status({ pool });
  process.stdout.write(JSON.stringify({
    found: found && found.root,
    argv: m.buildMountArgv({ server: 'fd00::1', export: '/export', version: '4.2', options: [] }, '/mnt/p'),
    isDirectoryBackend: backend instanceof local.LocalStorageBackend,
    available: status.available,
    plugin: [m.storageNfsPlugin.name, m.storageNfsPlugin.apiVersion],
  }));
`;
const consumers = {
  esm: [
    '--input-type=module',
    '-e',
    `import * as m from '@quantix/storage-nfs';\nimport * as local from '@quantix/storage-local';\n${body}`,
  ],
  cjs: [
    '--input-type=commonjs',
    '-e',
    `const m = require('@quantix/storage-nfs');\nconst local = require('@quantix/storage-local');\n(async () => {${body}})();`,
  ],
};

describe('built dist of @quantix/storage-nfs', () => {
  it('exists (npm run build first)', () => {
    for (const file of ['index.js', 'index.cjs', 'index.d.ts', 'index.d.cts']) {
      expect(existsSync(join(packageRoot, 'dist', file)), `dist/${file}`).toBe(true);
    }
  });

  it.each(Object.entries(consumers))(
    'works from %s: finds a mount, builds a command, reports status',
    async (_, args) => {
      const { stdout } = await run(process.execPath, args, { cwd: packageRoot });
      expect(JSON.parse(stdout)).toEqual({
        found: '/srv/nfs/qVDS01',
        argv: ['mount', '-t', 'nfs', '-o', 'vers=4.2', '[fd00::1]:/export', '/mnt/p'],
        isDirectoryBackend: true,
        available: false,
        plugin: ['@quantix/storage-nfs', '^1.1.0'],
      });
    },
  );
});
