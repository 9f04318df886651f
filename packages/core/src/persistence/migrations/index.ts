import type { Knex } from 'knex';
import * as m0001 from './0001_nodes.js';
import * as m0002 from './0002_storage_pools.js';
import * as m0003 from './0003_images.js';
import * as m0004 from './0004_vms.js';
import * as m0005 from './0005_pool_generation.js';
import * as m0006 from './0006_node_tokens.js';
import * as m0007 from './0007_pool_state_unknown.js';
import * as m0008 from './0008_constraint_names.js';
import * as m0009 from './0009_replicas.js';
import * as m0010 from './0010_idempotency_keys.js';
import * as m0011 from './0011_image_search.js';
import * as m0012 from './0012_image_counts.js';
import * as m0013 from './0013_vm_nics.js';
import * as m0015 from './0015_golden_images.js';
import * as m0016 from './0016_single_use_tickets.js';
import * as m0017 from './0017_image_search_text.js';
import * as m0018 from './0018_room_for_hot_updates.js';
import * as m0019 from './0019_room_for_image_rewrites.js';
import * as m0020 from './0020_replica_key_fingerprints.js';
import * as m0021 from './0021_image_search_paths.js';

interface Migration {
  up(knex: Knex): Promise<void>;
  down(knex: Knex): Promise<void>;
}

/**
 * Migrations live in code, not in a directory scanned at run time, so they survive bundling.
 * Append only: a released migration is never edited, and an up migration never drops data.
 */
export const MIGRATIONS: ReadonlyArray<readonly [name: string, migration: Migration]> = [
  ['0001_nodes', m0001],
  ['0002_storage_pools', m0002],
  ['0003_images', m0003],
  ['0004_vms', m0004],
  ['0005_pool_generation', m0005],
  ['0006_node_tokens', m0006],
  ['0007_pool_state_unknown', m0007],
  ['0008_constraint_names', m0008],
  ['0009_replicas', m0009],
  ['0010_idempotency_keys', m0010],
  ['0011_image_search', m0011],
  ['0012_image_counts', m0012],
  ['0013_vm_nics', m0013],
  ['0015_golden_images', m0015],
  ['0016_single_use_tickets', m0016],
  ['0017_image_search_text', m0017],
  ['0018_room_for_hot_updates', m0018],
  ['0019_room_for_image_rewrites', m0019],
  ['0020_replica_key_fingerprints', m0020],
  ['0021_image_search_paths', m0021],
];

class CodeMigrationSource implements Knex.MigrationSource<string> {
  async getMigrations(): Promise<string[]> {
    return MIGRATIONS.map(([name]) => name);
  }
  getMigrationName(name: string): string {
    return name;
  }
  async getMigration(name: string): Promise<Knex.Migration> {
    const found = MIGRATIONS.find(([candidate]) => candidate === name);
    if (!found) throw new Error(`unknown migration ${name}`);
    return found[1];
  }
}

/** knex runs these under its migration lock table, so two processes never migrate at once. */
export const MIGRATION_CONFIG: Knex.MigratorConfig = {
  migrationSource: new CodeMigrationSource(),
  tableName: 'quantix_migrations',
};

export async function migrateToLatest(knex: Knex): Promise<string[]> {
  const [, applied] = (await knex.migrate.latest(MIGRATION_CONFIG)) as [number, string[]];
  return applied;
}

export async function migrateUpOne(knex: Knex): Promise<string[]> {
  const [, applied] = (await knex.migrate.up(MIGRATION_CONFIG)) as [number, string[]];
  return applied;
}

/** Undoes every migration; used by tests and by `down` tooling, never on start-up. */
export async function migrateDownAll(knex: Knex): Promise<string[]> {
  const [, undone] = (await knex.migrate.rollback(MIGRATION_CONFIG, true)) as [number, string[]];
  return undone;
}

export async function migrationStatus(knex: Knex): Promise<{ applied: string[]; pending: string[] }> {
  const [applied, pending] = (await knex.migrate.list(MIGRATION_CONFIG)) as [{ name: string }[], string[]];
  return { applied: applied.map((m) => m.name), pending: pending.map((p) => (typeof p === 'string' ? p : String(p))) };
}
