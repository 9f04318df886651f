/**
 * Migrations on both databases: up from empty, down to empty, up again; and rows written
 * between steps survive every later up migration.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { createTestDatabase, TEST_DATABASE_CLIENTS, type TestDatabase } from '../testing/databases.js';
import { type Database, openDatabase } from './database.js';
import { MIGRATIONS, migrateDownAll, migrateToLatest, migrateUpOne, migrationStatus } from './migrations/index.js';
import { createRepositories } from './repositories/index.js';

const QUANTIX_TABLES = ['images', 'nodes', 'pool_node_states', 'storage_pools', 'vms'];

async function userTables(db: Database): Promise<string[]> {
  const result = await db.knex.raw(
    `select table_name from information_schema.tables where table_schema = 'public' and table_name not like 'quantix_migrations%' order by table_name`,
  );
  return (result.rows as { table_name: string }[]).map((r) => r.table_name);
}

describe.each(TEST_DATABASE_CLIENTS)('migrations on %s', (client) => {
  let testDb: TestDatabase | undefined;
  let db: Database | undefined;

  afterEach(async () => {
    await db?.close();
    await testDb?.dispose();
    db = undefined;
    testDb = undefined;
  });

  async function openEmpty(): Promise<Database> {
    testDb = await createTestDatabase(client);
    db = await openDatabase(testDb.config, { migrate: false });
    return db;
  }

  it('go up from empty, down to empty, and up again cleanly', async () => {
    const database = await openEmpty();
    expect(await userTables(database)).toEqual([]);
    expect(await migrateToLatest(database.knex)).toEqual(MIGRATIONS.map(([name]) => name));
    expect(await userTables(database)).toEqual(QUANTIX_TABLES);
    expect(await migrationStatus(database.knex)).toEqual({ applied: MIGRATIONS.map(([n]) => n), pending: [] });
    expect(await migrateToLatest(database.knex)).toEqual([]); // idempotent

    expect(await migrateDownAll(database.knex)).toEqual(MIGRATIONS.map(([name]) => name).reverse());
    expect(await userTables(database)).toEqual([]);
    expect((await migrationStatus(database.knex)).applied).toEqual([]);

    await migrateToLatest(database.knex);
    expect(await userTables(database)).toEqual(QUANTIX_TABLES);
    const repos = createRepositories(database.knex);
    const node = await repos.nodes.create({ hostname: 'after-reup' });
    expect(await repos.nodes.require(node.id)).toEqual(node);
  });

  it('keep rows written between steps through every later up migration', async () => {
    const database = await openEmpty();
    const repos = createRepositories(database.knex);
    const written: { check: () => Promise<void> }[] = [];

    for (const [name] of MIGRATIONS) {
      expect(await migrateUpOne(database.knex)).toEqual([name]);
      const tables = await userTables(database);
      // After each step, write into every table that exists now.
      if (tables.includes('nodes')) {
        const node = await repos.nodes.create({
          hostname: `node-after-${name.replace(/_/g, '-')}`,
          labels: { step: name },
        });
        written.push({ check: async () => expect(await repos.nodes.require(node.id)).toEqual(node) });
      }
      if (tables.includes('storage_pools')) {
        const pool = await repos.pools.create({
          id: `pool-${name}`,
          name: `pool after ${name}`,
          type: 'local',
          config: { path: `/srv/${name}` },
        });
        written.push({ check: async () => expect(await repos.pools.require(pool.id)).toEqual(pool) });
      }
      if (tables.includes('images')) {
        const image = await repos.images.create({
          name: `image after ${name}`,
          kind: 'iso',
          phase: 'ready',
          sizeBytes: 123_456_789_012,
          location: { poolId: `pool-${name}`, relPath: 'iso/x.iso' },
        });
        written.push({ check: async () => expect(await repos.images.require(image.id)).toEqual(image) });
      }
      if (tables.includes('vms')) {
        const host = await repos.nodes.create({ hostname: `vm-host-${name.replace(/_/g, '-')}` });
        const vm = await repos.vms.create({ name: `vm-${name.replace(/_/g, '-')}`, nodeId: host.id });
        written.push({ check: async () => expect(await repos.vms.require(vm.id)).toEqual(vm) });
      }
      for (const row of written) await row.check();
    }
    expect(written.length).toBeGreaterThanOrEqual(MIGRATIONS.length);
    expect(await migrateUpOne(database.knex)).toEqual([]);
  });

  it('run under knex’s lock: two migrators at once apply each migration exactly once', async () => {
    testDb = await createTestDatabase(client);
    const first = await openDatabase(testDb.config, { migrate: false });
    // PGlite has a single connection, so its two migrators share it; PostgreSQL gets two pools.
    const second = client === 'pg' ? await openDatabase(testDb.config, { migrate: false }) : first;
    try {
      const results = await Promise.allSettled([migrateToLatest(first.knex), migrateToLatest(second.knex)]);
      const applied = results.flatMap((r) => (r.status === 'fulfilled' ? r.value : []));
      // One migrator applies everything; the other finds nothing to do or is refused by the lock.
      expect(applied.sort()).toEqual(MIGRATIONS.map(([n]) => n).sort());
      const rows = await first.knex('quantix_migrations').select('name');
      expect(rows.map((r) => r.name).sort()).toEqual(MIGRATIONS.map(([n]) => n).sort());
      expect(await userTables(first)).toEqual(QUANTIX_TABLES);
    } finally {
      await first.close();
      await second.close();
    }
  });
});
