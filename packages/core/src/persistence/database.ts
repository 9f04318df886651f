import { mkdirSync } from 'node:fs';
import type { Knex } from 'knex';
import { ErrorCode, QuantixError } from '../errors.js';
import { migrateToLatest } from './migrations/index.js';
import { pgTypesWithFastTimestamps } from './pg-types.js';

/**
 * Where Quantix keeps its state. PGlite is the embedded default (a data directory, or memory
 * when none is given); PostgreSQL through `pg` is for production. Both run the same SQL and
 * migrations. Drivers are imported only when used, so `pg` need not be installed for PGlite.
 */
export type DatabaseConfig =
  | { client: 'pglite'; dataDir?: string }
  | {
      client: 'pg';
      connectionString: string;
      pool?: { min?: number; max?: number };
      /** Bounds on every wait, so a database that is down or frozen gives an error, not a hang. */
      timeouts?: DatabaseTimeouts;
    };

export interface DatabaseTimeouts {
  /** Opening a connection (default 5 s). */
  connectMs?: number;
  /** Waiting for a free connection from the pool (default 10 s). */
  acquireMs?: number;
  /** One statement, enforced by the server (statement_timeout; default 30 s). */
  statementMs?: number;
  /** One statement, enforced here: catches a server that stopped answering at all (default statement + up to 5 s). */
  queryMs?: number;
}

export const DEFAULT_DATABASE_TIMEOUTS: Required<DatabaseTimeouts> = {
  connectMs: 5_000,
  acquireMs: 10_000,
  statementMs: 30_000,
  queryMs: 35_000,
};

export interface Database {
  readonly client: DatabaseConfig['client'];
  readonly knex: Knex;
  /** Closes the connection(s). PGlite flushes its data directory. */
  close(): Promise<void>;
}

export interface OpenDatabaseOptions {
  /** Run pending migrations on open (default true). */
  migrate?: boolean;
}

/** A short description of the config for logs and errors, without credentials. */
export function describeDatabase(config: DatabaseConfig): string {
  if (config.client === 'pglite') return `pglite:${config.dataDir ?? 'memory'}`;
  try {
    const url = new URL(config.connectionString);
    return `postgres://${url.host}${url.pathname}`;
  } catch {
    return 'postgres';
  }
}

type PGliteInstance = import('@electric-sql/pglite').PGlite;

/** Extensions the migrations create: pg_trgm for image search (0011), shipped inside PGlite. */
async function pgliteExtensions() {
  const { pg_trgm } = await import('@electric-sql/pglite/contrib/pg_trgm');
  return { pg_trgm };
}

async function openPgliteDirectory(dataDir: string): Promise<PGliteInstance> {
  const { PGlite } = await import('@electric-sql/pglite');
  mkdirSync(dataDir, { recursive: true });
  const pglite = new PGlite({ dataDir, extensions: await pgliteExtensions() });
  await pglite.waitReady;
  return pglite;
}

// A fresh PGlite runs initdb, which takes seconds; loading a dump of a freshly initialised
// cluster takes well under one. The first in-memory database of a process is created fresh
// and dumped before use; every later one starts from that dump.
let memoryTemplate: Promise<Blob> | undefined;

async function openPgliteMemory(): Promise<PGliteInstance> {
  const { PGlite } = await import('@electric-sql/pglite');
  if (memoryTemplate === undefined) {
    const seed = new PGlite({ extensions: await pgliteExtensions() });
    const template = seed.waitReady.then(() => seed.dumpDataDir('none'));
    memoryTemplate = template;
    try {
      await template;
    } catch (error) {
      memoryTemplate = undefined;
      throw error;
    }
    return seed;
  }
  const pglite = new PGlite({ loadDataDir: await memoryTemplate, extensions: await pgliteExtensions() });
  await pglite.waitReady;
  return pglite;
}

async function createKnex(config: DatabaseConfig): Promise<Knex> {
  // knex (and its driver) load when a database opens, not with this package: a node daemon,
  // which has none, does without them (`quantix-node --help` 0.46 s instead of 0.51 s).
  const { default: knexFactory } = await import('knex');
  if (config.client === 'pg') {
    const { default: pg } = await import('pg');
    const statementMs = config.timeouts?.statementMs ?? DEFAULT_DATABASE_TIMEOUTS.statementMs;
    return knexFactory({
      client: 'pg',
      connection: {
        connectionString: config.connectionString,
        connectionTimeoutMillis: config.timeouts?.connectMs ?? DEFAULT_DATABASE_TIMEOUTS.connectMs,
        statement_timeout: statementMs,
        query_timeout: config.timeouts?.queryMs ?? statementMs + Math.min(5_000, statementMs),
        idle_in_transaction_session_timeout: statementMs,
        keepAlive: true,
        types: pgTypesWithFastTimestamps(pg.types.getTypeParser),
      },
      pool: {
        min: config.pool?.min ?? 0,
        max: config.pool?.max ?? 10,
        acquireTimeoutMillis: config.timeouts?.acquireMs ?? DEFAULT_DATABASE_TIMEOUTS.acquireMs,
      },
      // Statements go into error messages without their bindings, which may hold user data or digests.
      compileSqlOnError: false,
    });
  }
  const clientModule = await import('knex-pglite');
  // knex-pglite is CommonJS; its class arrives as the default export.
  const ClientPgLite = (clientModule as { default?: unknown }).default ?? clientModule;
  const pglite = config.dataDir ? await openPgliteDirectory(config.dataDir) : await openPgliteMemory();
  return knexFactory({
    client: ClientPgLite as Knex.Config['client'],
    dialect: 'postgres',
    compileSqlOnError: false,
    connection: () => ({ pglite }) as unknown as Knex.ConnectionConfig,
  });
}

/** Opens (and by default migrates) a database. DATABASE_UNAVAILABLE when it cannot. */
export async function openDatabase(config: DatabaseConfig, options: OpenDatabaseOptions = {}): Promise<Database> {
  let knex: Knex;
  try {
    knex = await createKnex(config);
    await knex.raw('select 1');
  } catch (error) {
    throw new QuantixError(
      ErrorCode.DATABASE_UNAVAILABLE,
      `Cannot open database ${describeDatabase(config)}: ${(error as Error).message}`,
      { cause: error },
    );
  }
  let closed = false;
  const database: Database = {
    client: config.client,
    knex,
    async close() {
      if (closed) return;
      closed = true;
      await knex.destroy();
    },
  };
  if (options.migrate !== false) {
    try {
      await migrateToLatest(knex);
    } catch (error) {
      await database.close();
      throw new QuantixError(
        ErrorCode.DATABASE_UNAVAILABLE,
        `Cannot migrate database ${describeDatabase(config)}: ${(error as Error).message}`,
        { cause: error },
      );
    }
  }
  return database;
}
