/**
 * Child process of the job takeover test: a replica that takes one job of the `takeover` queue,
 * prints `{"started": id}` and then works on it for ever — until the test SIGKILLs it, as a
 * replica dies, holding the job.
 */
import { createLogger } from '@quantix/core';
import { PgBossJobQueue } from '../jobs/pg-boss-queue.js';

const [connectionString = '', schema = ''] = process.argv.slice(2);
const queue = new PgBossJobQueue({ connectionString, schema, logger: createLogger({ level: 'silent' }) });
await queue.start();
await queue.work('takeover', async (job) => {
  process.stdout.write(`${JSON.stringify({ started: job.id })}\n`);
  await new Promise(() => {});
});
