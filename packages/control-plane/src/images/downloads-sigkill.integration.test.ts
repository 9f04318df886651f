/**
 * Nothing lost, nothing stuck: a process downloading an image is killed with SIGKILL mid-way; a
 * new process on the same database (PGlite data directory, or PostgreSQL) runs
 * reconcileOnStart, resumes the row from its partial file and ends ready with the right
 * checksum — having fetched only the part that was missing.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';
import type { Image } from '@quantix/core';
import { createTestDatabase, TEST_DATABASE_CLIENTS, type TestDatabase } from '@quantix/core/testing';
import { type ImageServer, makeQcow2, sha256, sha256Sums, startImageServer } from '@quantix/images-cloud/testing';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';

const run = promisify(execFile);
const child = join(import.meta.dirname, '../__fixtures__/download-child.ts');
const IMAGE = '/rocky/Rocky-9-GenericCloud-Base.latest.x86_64.qcow2';
const SUMS = '/rocky/CHECKSUM';

let server: ImageServer;
let fixtures: string;
let image: Buffer;

beforeAll(async () => {
  fixtures = mkdtempSync(join(tmpdir(), 'quantix-sigkill-fixtures-'));
  image = await makeQcow2(fixtures, 'rocky.qcow2', 24);
  server = await startImageServer();
  server.setFile(IMAGE, image);
  server.setFile(SUMS, sha256Sums({ 'Rocky-9-GenericCloud-Base.latest.x86_64.qcow2': image }));
});

afterAll(async () => {
  await server?.close();
  rmSync(fixtures, { recursive: true, force: true });
});

/** Starts the child and resolves with its first stdout line (parsed), leaving it running. */
async function startUntilLine(args: string[]): Promise<{ proc: ChildProcess; line: Record<string, unknown> }> {
  const proc = spawn(process.execPath, ['--import', 'tsx', child, ...args], {
    env: { ...process.env, QUANTIX_LOG_LEVEL: 'silent' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  proc.stderr?.on('data', (chunk) => {
    stderr += chunk;
  });
  const lines = createInterface({ input: proc.stdout as NodeJS.ReadableStream });
  const exited = once(proc, 'exit').then(([code, signal]) => {
    throw new Error(`download child exited early (${code ?? signal}): ${stderr}`);
  });
  const first = once(lines, 'line').then(([line]) => JSON.parse(line as string) as Record<string, unknown>);
  const line = await Promise.race([first, exited]);
  exited.catch(() => undefined);
  return { proc, line };
}

describe.each(TEST_DATABASE_CLIENTS)('a download killed with SIGKILL, on %s', (client) => {
  let testDb: TestDatabase | undefined;
  let dataDir: string | undefined;
  let poolDir: string | undefined;

  afterEach(async () => {
    await testDb?.dispose();
    for (const dir of [dataDir, poolDir]) if (dir) rmSync(dir, { recursive: true, force: true });
    testDb = undefined;
    dataDir = undefined;
    poolDir = undefined;
  });

  it('resumes in a new process from the partial file and ends ready with the right checksum', async () => {
    dataDir = client === 'pglite' ? mkdtempSync(join(tmpdir(), 'quantix-sigkill-db-')) : undefined;
    testDb = await createTestDatabase(client, dataDir ? { dataDir } : {});
    poolDir = mkdtempSync(join(tmpdir(), 'quantix-sigkill-pool-'));
    server.requests.length = 0;
    // Slow enough that the kill lands mid-download (~4 s for the whole file).
    server.behaviour.bytesPerSecond = 6 * 1024 * 1024;
    const config = JSON.stringify({
      database: testDb.config,
      poolDir,
      printAfterBytes: Math.floor(image.length / 4),
      entry: {
        id: 'rocky-9-mirror',
        name: 'Rocky Linux 9 (test mirror)',
        sourceUrl: `${server.url}${IMAGE}`,
        checksumUrl: `${server.url}${SUMS}`,
        checksumAlgorithm: 'sha256',
      },
    });

    const { proc, line } = await startUntilLine(['start', config]);
    const killed = once(proc, 'exit');
    proc.kill('SIGKILL');
    const [, signal] = await killed;
    expect(signal).toBe('SIGKILL');
    const firstGet = server.requestsFor(IMAGE)[0];
    expect(firstGet?.completed).toBe(false);
    const seen = line.row as Image;
    expect(seen.phase).toBe('downloading');

    server.behaviour.bytesPerSecond = null;
    const before = server.requestsFor(IMAGE).length;
    const { stdout } = await run(process.execPath, ['--import', 'tsx', child, 'reconcile', config], {
      env: { ...process.env, QUANTIX_LOG_LEVEL: 'silent' },
      maxBuffer: 16 * 1024 * 1024,
    });
    const report = JSON.parse(stdout) as {
      before: Image[];
      resumed: { id: string; partialBytes: number }[];
      failed: Image[];
      finals: Image[];
      after: Image[];
    };

    // The new process found the row where the killed one left it…
    expect(report.before.map((i) => [i.id, i.phase])).toEqual([[line.imageId, 'downloading']]);
    expect(report.before[0]?.progress?.bytesDone).toBeGreaterThanOrEqual(Math.floor(image.length / 4));
    expect(report.failed).toEqual([]);
    expect(report.resumed).toHaveLength(1);
    const partialBytes = report.resumed[0]?.partialBytes ?? 0;
    expect(partialBytes).toBeGreaterThan(0);

    // …and finished it: ready, verified, the file in the pool.
    expect(report.finals[0]).toMatchObject({
      id: line.imageId,
      phase: 'ready',
      error: null,
      sizeBytes: image.length,
      checksum: { algorithm: 'sha256', value: sha256(image) },
      format: 'qcow2',
    });
    expect(report.after.filter((i) => i.phase !== 'ready')).toEqual([]);
    expect(sha256(readFileSync(join(poolDir, 'images', 'rocky-9-mirror.qcow2')))).toBe(sha256(image));

    // Only the missing part was fetched the second time.
    const resumedGets = server.requestsFor(IMAGE).slice(before);
    expect(resumedGets).toHaveLength(1);
    expect(resumedGets[0]).toMatchObject({ status: 206, range: `bytes=${partialBytes}-`, completed: true });
    expect(resumedGets[0]?.bytesSent).toBe(image.length - partialBytes);
    expect(resumedGets[0]?.bytesSent).toBeLessThan(image.length);
    // Two child processes each opening the database (a fresh PGlite runs initdb): slow on a busy machine.
  }, 180_000);
});
