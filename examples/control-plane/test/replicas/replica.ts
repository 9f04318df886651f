/**
 * One control-plane replica as its own process, for the replica tests (until `quantix serve`
 * takes --replica-id/--replica-url/--lease-seconds): the plugins `quantix serve` runs with, a
 * PostgreSQL database, and startControlPlane with the replica options. Configured by environment:
 *
 *   QX_DATABASE_URL   postgres://… (the test's database, through the test's proxy)
 *   QX_DB_TIMEOUT_MS  bound on each statement, as `quantix serve --database-timeout` gives it
 *   QX_API_TOKEN      the API token
 *   QX_REPLICA_ID, QX_REPLICA_URL, QX_LEASE_SECONDS
 *   QX_HOST, QX_PORT  where to listen
 *   QX_CATALOG        a JSON file of catalog entries
 *   QX_POOL_ROOTS     colon-separated directories pools may be in
 *
 * Prints {"event":"listening","url","replica"} once it serves; SIGTERM closes it cleanly.
 */
import { readFileSync } from 'node:fs';
import { createLogger, createPoolRootPolicy, createQuantix } from '@quantix/core';
import type { CatalogEntryInput } from '@quantix/images-cloud';
import { controlPlanePlugins } from '../../src/cli/up.js';
import { startControlPlane } from '../../src/control-plane.js';

const env = (name: string): string => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};

const timeout = Number(process.env.QX_DB_TIMEOUT_MS ?? 0);
const logger = createLogger({ name: 'quantix', level: process.env.QUANTIX_LOG_LEVEL ?? 'warn' });
const entries = process.env.QX_CATALOG
  ? (JSON.parse(readFileSync(process.env.QX_CATALOG, 'utf8')) as CatalogEntryInput[])
  : undefined;
const quantix = await createQuantix({
  database: {
    client: 'pg',
    connectionString: env('QX_DATABASE_URL'),
    ...(timeout
      ? {
          timeouts: { statementMs: timeout, connectMs: Math.min(5_000, timeout), acquireMs: Math.min(10_000, timeout) },
        }
      : {}),
  },
  plugins: controlPlanePlugins(entries ? { entries } : {}),
  logger,
});
const cp = await startControlPlane({
  quantix,
  apiToken: env('QX_API_TOKEN'),
  host: env('QX_HOST'),
  port: Number(env('QX_PORT')),
  replica: {
    id: env('QX_REPLICA_ID'),
    url: env('QX_REPLICA_URL'),
    leaseSeconds: Number(env('QX_LEASE_SECONDS')),
  },
  resumeGraceMs: 60_000,
  ...(process.env.QX_POOL_ROOTS
    ? { poolRoots: createPoolRootPolicy({ allowedRoots: process.env.QX_POOL_ROOTS.split(':') }) }
    : {}),
});
process.stdout.write(`${JSON.stringify({ event: 'listening', url: cp.url, replica: env('QX_REPLICA_ID') })}\n`);

process.once('SIGTERM', () => {
  void (async () => {
    await cp.close();
    await quantix.close();
    process.exit(0);
  })();
});
