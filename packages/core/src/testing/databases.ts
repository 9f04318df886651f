import { randomBytes } from 'node:crypto';
import knexFactory from 'knex';
import type { Repositories } from '../contracts/repositories.js';
import { type Database, type DatabaseConfig, openDatabase } from '../persistence/database.js';
import { createRepositories } from '../persistence/repositories/index.js';

/**
 * Databases for contract suites, after Backstage's TestDatabases: every suite runs against
 * embedded PGlite and a real PostgreSQL. PostgreSQL comes from QUANTIX_TEST_PG_URL (default:
 * the local server on 127.0.0.1:5432). It is never skipped: if it is not there, the suite fails
 * and says how to start it.
 */
export const TEST_DATABASE_CLIENTS = ['pglite', 'pg'] as const;
export type TestDatabaseClient = (typeof TEST_DATABASE_CLIENTS)[number];

export function adminPostgresUrl(): string {
  return process.env.QUANTIX_TEST_PG_URL ?? 'postgres://quantix:quantix@127.0.0.1:5432/postgres';
}

export interface TestDatabase {
  config: DatabaseConfig;
  /** Drops what was created for the test. */
  dispose(): Promise<void>;
}

/** A fresh, empty PostgreSQL database on the test server, dropped by dispose(). */
export async function createPostgresTestDatabase(): Promise<TestDatabase> {
  const adminUrl = adminPostgresUrl();
  const name = `quantix_test_${randomBytes(6).toString('hex')}`;
  const admin = knexFactory({ client: 'pg', connection: adminUrl, pool: { min: 0, max: 1 } });
  try {
    await admin.raw(`create database ${name}`);
  } catch (error) {
    await admin.destroy();
    throw new Error(
      `PostgreSQL is required for this test and is not reachable at ${adminUrl} (${(error as Error).message}). ` +
        'Start a PostgreSQL server there, or point QUANTIX_TEST_PG_URL at one.',
      { cause: error },
    );
  }
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return {
    config: { client: 'pg', connectionString: url.toString() },
    async dispose() {
      try {
        await admin.raw(`drop database if exists ${name} with (force)`);
      } finally {
        await admin.destroy();
      }
    },
  };
}

/** A fresh test database of the given client: PGlite in memory (or in `dataDir`), or PostgreSQL. */
export async function createTestDatabase(
  client: TestDatabaseClient,
  options: { dataDir?: string } = {},
): Promise<TestDatabase> {
  if (client === 'pg') return createPostgresTestDatabase();
  const config: DatabaseConfig = options.dataDir
    ? { client: 'pglite', dataDir: options.dataDir }
    : { client: 'pglite' };
  return { config, dispose: async () => undefined };
}

/** A test database opened and migrated, with its repositories. */
export interface OpenTestDatabase {
  /** How to open it again (another connection, a child process). */
  config: DatabaseConfig;
  database: Database;
  repositories: Repositories;
  /** Empties every table a test writes (nodes, pools, images, VMs, replicas and what hangs on them). */
  reset(): Promise<void>;
  /** Closes the connection and drops the database. */
  close(): Promise<void>;
}

/**
 * A fresh database of the given client (or one made already, e.g. a server of the test's own),
 * opened with migrations run: `beforeAll(async () => { db = await openTestDatabase(client) })`,
 * `beforeEach(() => db.reset())`, `afterAll(() => db?.close())`.
 */
export async function openTestDatabase(source: TestDatabaseClient | TestDatabase): Promise<OpenTestDatabase> {
  const testDb = typeof source === 'string' ? await createTestDatabase(source) : source;
  let database: Database;
  try {
    database = await openDatabase(testDb.config);
  } catch (error) {
    await testDb.dispose();
    throw error;
  }
  return {
    config: testDb.config,
    database,
    repositories: createRepositories(database.knex),
    async reset() {
      await database.knex.raw(
        'truncate node_requests, node_leases, replicas, vms, images, pool_node_states, storage_pools, nodes cascade',
      );
    },
    async close() {
      try {
        await database.close();
      } finally {
        await testDb.dispose();
      }
    },
  };
}
