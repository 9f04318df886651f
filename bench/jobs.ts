/**
 * bench/jobs — the control plane's job queue on PostgreSQL (pg-boss with renewed leases) beside
 * its natural peer, a hand-written SKIP LOCKED queue in raw SQL through `pg`, in one run: N jobs
 * sent, then run by 4 workers, each job taken, run (nothing to do) and marked done. Prints
 * jobs per second end to end for each and the ratio.
 * QUANTIX_BENCH_QUICK=1 runs a small version (CI runs it so the bench never rots).
 */
import { performance } from 'node:perf_hooks';
import { PgBossJobQueue } from '@quantix/control-plane';
import { createLogger } from '@quantix/core';
import { createPostgresTestDatabase } from '@quantix/core/testing';
import { rawPool } from './lib/raw-pool.js';
import { benchResults } from './lib/results.js';

const quick = process.env.QUANTIX_BENCH_QUICK === '1';
const JOBS = quick ? 200 : 2_000;
const WORKERS = 4;

const testDb = await createPostgresTestDatabase();
const connectionString = (testDb.config as { connectionString: string }).connectionString;
const logger = createLogger({ level: 'silent' });

async function ours(): Promise<number> {
  const queue = new PgBossJobQueue({ connectionString, schema: 'bench_jobs', logger, maxConnections: WORKERS + 2 });
  await queue.start();
  await queue.define('bench', { retryLimit: 0 });
  let done = 0;
  let finished: () => void = () => {};
  const all = new Promise<void>((resolve) => {
    finished = resolve;
  });
  const start = performance.now();
  for (let i = 0; i < JOBS; i++) await queue.send('bench', { i });
  await queue.work(
    'bench',
    async () => {
      if (++done === JOBS) finished();
    },
    { concurrency: WORKERS },
  );
  await all;
  const elapsed = performance.now() - start;
  await queue.stop({ timeoutMs: 2000 });
  return elapsed;
}

async function peer(): Promise<number> {
  const pool = rawPool(connectionString, WORKERS + 2);
  await pool.query(
    `create table if not exists bench_raw_jobs (id bigserial primary key, data jsonb not null, state text not null default 'created', started_on timestamptz)`,
  );
  const start = performance.now();
  for (let i = 0; i < JOBS; i++) await pool.query('insert into bench_raw_jobs (data) values ($1)', [{ i }]);
  const worker = async () => {
    for (;;) {
      const { rows } = await pool.query(
        `update bench_raw_jobs set state = 'active', started_on = now()
           where id = (select id from bench_raw_jobs where state = 'created' order by id for update skip locked limit 1)
         returning id`,
      );
      const id = rows[0]?.id;
      if (id === undefined) return;
      await pool.query(`update bench_raw_jobs set state = 'completed' where id = $1`, [id]);
    }
  };
  await Promise.all(Array.from({ length: WORKERS }, worker));
  const elapsed = performance.now() - start;
  await pool.end();
  return elapsed;
}

try {
  const peerMs = await peer();
  const oursMs = await ours();
  const rate = (ms: number) => (JOBS / ms) * 1000;
  const results = benchResults('jobs');
  console.log(
    results.add({
      name: `${JOBS} jobs sent, run by ${WORKERS} workers`,
      unit: 'jobs/s',
      better: 'higher',
      ours: { label: 'job queue (pg-boss)', value: rate(oursMs) },
      peer: { label: 'raw SKIP LOCKED SQL', value: rate(peerMs) },
    }),
  );
  await results.save();
} finally {
  await testDb.dispose();
}
