import { mkdirSync } from 'node:fs';
import knexFactory, { type Knex } from 'knex';
import { ErrorCode, QuantixError } from '../errors.js';
import { migrateToLatest } from './migrations/index.js';

/**
 * Where Quantix keeps its state. PGlite is the embedded default (a data directory, or memory
 * when none is given); PostgreSQL through `pg` is for production. Both run the same SQL and
 * migrations. Drivers are imported only when used, so `pg` need not be installed for PGlite.
 */
export type DatabaseConfig =
  | { client: 'pglite'; dataDir?: string }
  | { client: 'pg'; connectionString: string; pool?: { min?: number; max?: number } };

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

async function createKnex(config: DatabaseConfig): Promise<Knex> {
  if (config.client === 'pg') {
    return knexFactory({
      client: 'pg',
      connection: config.connectionString,
      pool: { min: config.pool?.min ?? 0, max: config.pool?.max ?? 10 },
    });
  }
  const [{ PGlite }, clientModule] = await Promise.all([import('@electric-sql/pglite'), import('knex-pglite')]);
  // knex-pglite is CommonJS; its class arrives as the default export.
  const ClientPgLite = (clientModule as { default?: unknown }).default ?? clientModule;
  if (config.dataDir) mkdirSync(config.dataDir, { recursive: true });
  const pglite = new PGlite(config.dataDir);
  await pglite.waitReady;
  return knexFactory({
    client: ClientPgLite as Knex.Config['client'],
    dialect: 'postgres',
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
