/**
 * The job queue contract, run unchanged against both implementations: pg-boss on a real
 * PostgreSQL (three queue instances on one database stand for three replicas) and the
 * in-process queue of the embedded single replica.
 */
import { randomUUID } from 'node:crypto';
import { createLogger } from '@quantix/core';
import { createPostgresTestDatabase, type TestDatabase, waitFor } from '@quantix/core/testing';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { InProcessJobQueue } from './in-process-queue.js';
import type { JobQueue } from './job-queue.js';
import { PgBossJobQueue } from './pg-boss-queue.js';

const logger = createLogger({ level: 'silent' });

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

interface Implementation {
  name: string;
  /** `count` replicas' queues (the in-process queue is one replica: one queue, whatever the count). */
  replicas(count: number): Promise<JobQueue[]>;
}

let database: TestDatabase;
beforeAll(async () => {
  database = await createPostgresTestDatabase();
});
afterAll(async () => {
  await database?.dispose();
});

const implementations: Implementation[] = [
  {
    name: 'pg-boss on PostgreSQL',
    async replicas(count) {
      const schema = `jobs_${randomUUID().slice(0, 8)}`;
      const connectionString = (database.config as { connectionString: string }).connectionString;
      return Array.from(
        { length: count },
        () => new PgBossJobQueue({ connectionString, schema, logger, maintenanceIntervalSeconds: 1 }),
      );
    },
  },
  {
    name: 'the in-process queue',
    async replicas() {
      return [new InProcessJobQueue()];
    },
  },
];

describe.each(implementations)('job queue contract: $name', (implementation) => {
  let queues: JobQueue[] = [];
  const start = async (count: number) => {
    queues = await implementation.replicas(count);
    // One at a time: the first creates pg-boss's schema, the others find it.
    for (const queue of queues) await queue.start();
    return queues;
  };
  afterEach(async () => {
    await Promise.all(queues.map((queue) => queue.stop({ timeoutMs: 2000 })));
    queues = [];
  });

  it('runs every job exactly once, whichever replica takes it', async () => {
    const replicas = await start(3);
    for (const queue of replicas) await queue.define('work', { retryLimit: 0 });
    const runs = new Map<string, number>();
    for (const queue of replicas) {
      await queue.work<{ n: number }>(
        'work',
        async (job) => {
          runs.set(job.id, (runs.get(job.id) ?? 0) + 1);
          await sleep(5);
        },
        { concurrency: 3 },
      );
    }
    const ids: string[] = [];
    for (let n = 0; n < 60; n++) {
      const id = await replicas[n % replicas.length]?.send('work', { n });
      if (id) ids.push(id);
    }
    expect(ids).toHaveLength(60);
    await waitFor('every job run', () => ids.every((id) => runs.has(id)));
    await waitFor('every job completed', async () => {
      const states = await Promise.all(ids.map((id) => replicas[0]?.getJob('work', id)));
      return states.every((job) => job?.state === 'completed');
    });
    expect([...runs.values()].every((count) => count === 1)).toBe(true);
    expect(runs.size).toBe(60);
  });

  it('retries a failing job with growing delays, then records it failed with its error', async () => {
    const [queue] = await start(1);
    if (!queue) throw new Error('no queue');
    await queue.define('flaky', { retryLimit: 2, retryDelaySeconds: 1, retryBackoff: true });
    const attempts: { at: number; retryCount: number }[] = [];
    await queue.work('flaky', async (job) => {
      attempts.push({ at: Date.now(), retryCount: job.retryCount });
      throw new Error(`mirror unreachable (attempt ${attempts.length})`);
    });
    const id = await queue.send('flaky', { url: 'https://mirror.example/x.img' });
    if (!id) throw new Error('not sent');
    const failed = await waitFor('the job failed for good', async () => {
      const job = await queue.getJob('flaky', id);
      return job?.state === 'failed' ? job : undefined;
    });
    expect(attempts.map((attempt) => attempt.retryCount)).toEqual([0, 1, 2]);
    expect(failed.retryCount).toBe(2);
    expect(failed.error).toBe('mirror unreachable (attempt 3)');
    const [first, second, third] = attempts.map((attempt) => attempt.at);
    // Backoff: the first retry waits 1–2 s, the second 2–4 s.
    expect((second ?? 0) - (first ?? 0)).toBeGreaterThanOrEqual(950);
    expect((third ?? 0) - (second ?? 0)).toBeGreaterThanOrEqual(1950);
  });

  it('completes a job that succeeds on a retry', async () => {
    const [queue] = await start(1);
    if (!queue) throw new Error('no queue');
    await queue.define('once-flaky', { retryLimit: 3, retryDelaySeconds: 1, retryBackoff: false });
    let runs = 0;
    await queue.work('once-flaky', async () => {
      runs++;
      if (runs === 1) throw new Error('transient');
    });
    const id = await queue.send('once-flaky', {});
    if (!id) throw new Error('not sent');
    const done = await waitFor('the job completed', async () => {
      const job = await queue.getJob('once-flaky', id);
      return job?.state === 'completed' ? job : undefined;
    });
    expect(done.retryCount).toBe(1);
    expect(runs).toBe(2);
  });

  it('takes a client-supplied id once: a second send with it is a no-op', async () => {
    const [queue] = await start(1);
    if (!queue) throw new Error('no queue');
    await queue.define('idempotent', { retryLimit: 0 });
    const id = randomUUID();
    expect(await queue.send('idempotent', { try: 1 }, { id })).toBe(id);
    expect(await queue.send('idempotent', { try: 2 }, { id })).toBeNull();
    const seen: unknown[] = [];
    await queue.work<{ try: number }>('idempotent', async (job) => {
      seen.push(job.data.try);
    });
    await waitFor('the job completed', async () => (await queue.getJob('idempotent', id))?.state === 'completed');
    await sleep(300);
    expect(seen).toEqual([1]);
  });

  it('holds a job back until its start time', async () => {
    const [queue] = await start(1);
    if (!queue) throw new Error('no queue');
    await queue.define('later', { retryLimit: 0 });
    let ranAt = 0;
    await queue.work('later', async () => {
      ranAt = Date.now();
    });
    const sentAt = Date.now();
    await queue.send('later', {}, { startAfterSeconds: 2 });
    await waitFor('the job ran', () => ranAt > 0);
    expect(ranAt - sentAt).toBeGreaterThanOrEqual(1900);
  });

  it('runs periodic work on one replica at a time, every period', async () => {
    const replicas = await start(3);
    let running = 0;
    let mostAtOnce = 0;
    let runs = 0;
    for (const queue of replicas) {
      await queue.every('sweep', 1, async () => {
        running++;
        mostAtOnce = Math.max(mostAtOnce, running);
        runs++;
        await sleep(1_200); // longer than a period: the next run must wait, not overlap
        running--;
      });
    }
    await waitFor('three sweeps', () => runs >= 3, 30_000);
    expect(mostAtOnce).toBe(1);
  });

  it('refuses a queue name the other implementation would refuse, with INVALID_INPUT', async () => {
    const [queue] = await start(1);
    await expect(queue?.define('9lives')).rejects.toMatchObject({ code: 'INVALID_INPUT' });
    await expect(queue?.define('a b')).rejects.toMatchObject({ code: 'INVALID_INPUT' });
  });
});
