/**
 * What only the PostgreSQL queue has to show, with several replicas: a dead replica's job is
 * taken over once its lease runs out, and a live replica's long job is not (its lease is
 * renewed). Replicas are PgBossJobQueue instances on one real PostgreSQL; the dying one is a
 * real process killed with SIGKILL.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { createLogger } from '@quantix/core';
import { createPostgresTestDatabase, type TestDatabase, waitFor } from '@quantix/core/testing';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { PgBossJobQueue } from './pg-boss-queue.js';

const here = dirname(fileURLToPath(import.meta.url));
const logger = createLogger({ level: 'silent' });
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('pg-boss job leases across replicas', () => {
  let database: TestDatabase;
  let connectionString: string;
  const queues: PgBossJobQueue[] = [];
  const children: ChildProcess[] = [];
  const replica = async (schema: string) => {
    const queue = new PgBossJobQueue({ connectionString, schema, logger, maintenanceIntervalSeconds: 1 });
    await queue.start();
    queues.push(queue);
    return queue;
  };

  beforeAll(async () => {
    database = await createPostgresTestDatabase();
    connectionString = (database.config as { connectionString: string }).connectionString;
  });
  afterEach(async () => {
    for (const child of children.splice(0)) child.kill('SIGKILL');
    await Promise.all(queues.splice(0).map((queue) => queue.stop({ timeoutMs: 1000 })));
  });
  afterAll(async () => {
    await database?.dispose();
  });

  it('lets replicas that start together define the same queues at the same moment', async () => {
    // Three replicas starting at once define the same queues: pg-boss's DDL may deadlock or
    // collide between them (seen in the three-host test under load); each must still start.
    const schema = 'pgboss_define_race';
    const replicas = await Promise.all([replica(schema), replica(schema), replica(schema)]);
    const names = Array.from({ length: 6 }, (_, i) => `race-${i}`);
    for (let round = 0; round < 3; round++) {
      await Promise.all(replicas.flatMap((queue) => names.map((name) => queue.define(name, { retryLimit: round }))));
    }
    const sent = await replicas[0]?.send('race-0', { hello: 'world' });
    expect(sent).toMatch(/^[0-9a-f-]{36}$/);
    expect((await replicas[2]?.getJob('race-0', sent as string))?.state).toBe('created');
  });

  it('hands the job of a SIGKILLed replica to another once its lease runs out, and runs it there once', async () => {
    const schema = `jobs_${randomUUID().slice(0, 8)}`;
    const survivor = await replica(schema);
    await survivor.define('takeover', { leaseSeconds: 3, retryLimit: 2, retryDelaySeconds: 0 });
    const id = await survivor.send('takeover', { image: 'noble' });

    const child = spawn(
      process.execPath,
      ['--import', 'tsx', join(here, '..', '__fixtures__', 'job-child.ts'), connectionString, schema],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    children.push(child);
    const started = await new Promise<string>((resolve, reject) => {
      createInterface({ input: child.stdout as NodeJS.ReadableStream }).once('line', (line) =>
        resolve((JSON.parse(line) as { started: string }).started),
      );
      child.once('exit', (code) => reject(new Error(`the child replica exited (${code}) before taking the job`)));
    });
    expect(started).toBe(id);
    child.kill('SIGKILL');
    const killedAt = Date.now();

    const runs: { retryCount: number; at: number }[] = [];
    await survivor.work('takeover', async (job) => {
      runs.push({ retryCount: job.retryCount, at: Date.now() });
    });
    await waitFor(
      'the job completed on the survivor',
      async () => (await survivor.getJob('takeover', id ?? ''))?.state === 'completed',
    );
    expect(runs).toHaveLength(1);
    expect(runs[0]?.retryCount).toBe(1);
    // Lease 3 s, maintenance every 1 s, polling 0.5 s.
    expect((runs[0]?.at ?? 0) - killedAt).toBeLessThan(8_000);
  });

  it('keeps a live replica’s job for as long as it runs, beyond its lease', async () => {
    const schema = `jobs_${randomUUID().slice(0, 8)}`;
    const [a, b] = [await replica(schema), await replica(schema)];
    await a.define('long', { leaseSeconds: 2, retryLimit: 3, retryDelaySeconds: 0 });
    const runs: { replica: string; retryCount: number; aborted: boolean }[] = [];
    for (const [name, queue] of [
      ['a', a],
      ['b', b],
    ] as const) {
      await queue.work('long', async (job) => {
        const run = { replica: name, retryCount: job.retryCount, aborted: false };
        runs.push(run);
        await sleep(7_000); // three and a half leases
        run.aborted = job.signal.aborted;
      });
    }
    const id = await a.send('long', {});
    await waitFor(
      'the long job completed',
      async () => (await a.getJob('long', id ?? ''))?.state === 'completed',
      30_000,
    );
    expect(runs).toHaveLength(1);
    expect(runs[0]).toMatchObject({ retryCount: 0, aborted: false });
  });
});
