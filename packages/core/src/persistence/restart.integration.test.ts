/**
 * The heart of the mission: what one process wrote, a new process reads back with every field
 * equal — on PGlite (same data directory) and on PostgreSQL; after a clean exit and after the
 * writer was killed with SIGKILL.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { createTestDatabase, TEST_DATABASE_CLIENTS, type TestDatabase } from '../testing/databases.js';

const run = promisify(execFile);
const fixtures = join(import.meta.dirname, '../../test/__fixtures__');

async function runFixture(script: string, args: string[], expectKilled = false): Promise<string> {
  try {
    const { stdout } = await run(process.execPath, ['--import', 'tsx', join(fixtures, script), ...args], {
      env: { ...process.env, QUANTIX_LOG_LEVEL: 'silent' },
      maxBuffer: 64 * 1024 * 1024,
    });
    if (expectKilled) throw new Error(`${script} was expected to die by SIGKILL but exited normally`);
    return stdout;
  } catch (error) {
    const failure = error as { signal?: string; stdout?: string; stderr?: string };
    if (expectKilled && failure.signal === 'SIGKILL' && failure.stdout) return failure.stdout;
    throw new Error(`${script} failed: ${failure.stderr ?? String(error)}`);
  }
}

describe.each(TEST_DATABASE_CLIENTS)('restart persistence on %s', (client) => {
  let testDb: TestDatabase | undefined;
  let dataDir: string | undefined;

  afterEach(async () => {
    await testDb?.dispose();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
    testDb = undefined;
    dataDir = undefined;
  });

  it.each(['close', 'kill'] as const)(
    'reads back in a new process, field for field, what a process wrote (exit: %s)',
    async (mode) => {
      dataDir = client === 'pglite' ? mkdtempSync(join(tmpdir(), 'quantix-restart-')) : undefined;
      testDb = await createTestDatabase(client, dataDir ? { dataDir } : {});
      const config = JSON.stringify(testDb.config);

      const written = JSON.parse(await runFixture('restart-writer.ts', [config, mode], mode === 'kill'));
      expect(written.images).toHaveLength(52);
      expect(written.history).toEqual([2, 3, 4, 2]);

      const ids = JSON.stringify({ node: written.node.id, pool: written.pool.id, vm: written.vm.id });
      const read = JSON.parse(await runFixture('restart-reader.ts', [config, ids]));

      expect(read.node).toEqual(written.node);
      expect(read.pool).toEqual(written.pool);
      expect(read.state).toEqual(written.state);
      expect(read.vm).toEqual(written.vm);
      expect(read.images).toEqual(written.images);
      const cloud = read.images.find((i: { catalogId: string | null }) => i.catalogId === 'ubuntu-24.04-cloud-amd64');
      expect(cloud).toMatchObject({
        phase: 'ready',
        version: 4,
        sizeBytes: 600 * 1024 ** 2,
        fileModifiedAt: '2026-11-20T08:15:30.250Z',
      });
    },
  );
});
