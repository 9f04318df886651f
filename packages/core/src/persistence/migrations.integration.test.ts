/**
 * Migrations on both databases: up from empty, down to empty, up again; and rows written
 * between steps survive every later up migration.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { createTestDatabase, TEST_DATABASE_CLIENTS, type TestDatabase } from '../testing/databases.js';
import { type Database, openDatabase } from './database.js';
import { MIGRATIONS, migrateDownAll, migrateToLatest, migrateUpOne, migrationStatus } from './migrations/index.js';
import { createRepositories } from './repositories/index.js';

const QUANTIX_TABLES = [
  'golden_image_revisions',
  'golden_images',
  'idempotency_keys',
  'image_counts',
  'images',
  'node_leases',
  'node_requests',
  'nodes',
  'pool_node_states',
  'quantix_counters',
  'replicas',
  'single_use_tickets',
  'storage_pools',
  'vm_macs',
  'vms',
];

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
    const { knex } = database;
    // Rows are written with plain SQL, as the code of that schema version would have written them.
    const writers: Record<string, (step: string) => Promise<void>> = {
      nodes: async (step) => {
        await knex('nodes').insert({
          id: `node-${step}`,
          hostname: `node-${step.replace(/_/g, '-')}`,
          labels: JSON.stringify({ step }),
        });
      },
      storage_pools: async (step) => {
        await knex('storage_pools').insert({
          id: `pool-${step}`,
          name: `pool ${step}`,
          type: 'local',
          config: JSON.stringify({ path: `/srv/${step}` }),
        });
      },
      images: async (step) => {
        await knex('images').insert({
          id: `image-${step}`,
          name: `image ${step}`,
          kind: 'iso',
          phase: 'ready',
          os: JSON.stringify({
            family: 'linux',
            distribution: null,
            version: null,
            arch: null,
            defaultUser: null,
            cloudInit: false,
          }),
          requirements: JSON.stringify({ minCpu: 1, minMemoryMiB: 512, minDiskGiB: 0, firmware: 'any' }),
          size_bytes: 123_456_789_012,
          pool_id: `pool-${step}`,
          rel_path: 'iso/x.iso',
        });
      },
      vms: async (step) => {
        await knex('vms').insert({
          id: `vm-${step}`,
          name: `vm-${step.replace(/_/g, '-')}`,
          node_id: `node-${step}`,
          cpu: 2,
          memory_mib: 512,
          state: 'stopped',
        });
      },
    };
    const stepsWritten: string[] = [];
    for (const [name] of MIGRATIONS) {
      expect(await migrateUpOne(knex)).toEqual([name]);
      const tables = await userTables(database);
      for (const [table, write] of Object.entries(writers)) if (tables.includes(table)) await write(name);
      stepsWritten.push(name);
    }
    expect(await migrateUpOne(knex)).toEqual([]);

    // Everything written at any step reads back through today's repositories, intact.
    const repos = createRepositories(knex);
    for (const [index, step] of stepsWritten.entries()) {
      const schemaAt = MIGRATIONS.slice(0, index + 1)
        .map(([n]) => n)
        .join(',');
      expect((await repos.nodes.require(`node-${step}`)).labels, schemaAt).toEqual({ step });
      if (schemaAt.includes('0002'))
        expect((await repos.pools.require(`pool-${step}`)).config).toEqual({ path: `/srv/${step}` });
      if (schemaAt.includes('0003')) {
        expect(await repos.images.require(`image-${step}`)).toMatchObject({
          sizeBytes: 123_456_789_012,
          location: { poolId: `pool-${step}`, relPath: 'iso/x.iso' },
          phase: 'ready',
        });
      }
      if (schemaAt.includes('0004')) expect((await repos.vms.require(`vm-${step}`)).cpu).toBe(2);
    }
    // Rows written before 0017 have its stored search text: found by any case of their name.
    expect((await repos.images.page({ text: 'IMAGE 0003_Images' })).images.map((image) => image.id)).toEqual([
      'image-0003_images',
    ]);
    // …and, after 0021, by their file's path in the pool.
    expect((await repos.images.page({ text: 'ISO/X.iso', limit: 1000 })).total).toBe(MIGRATIONS.length - 2);
    expect(await repos.nodes.list()).toHaveLength(MIGRATIONS.length);
    expect(await repos.images.count()).toBe(MIGRATIONS.length - 2);
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
