import type { Knex } from 'knex';

/**
 * Foreign keys get names of our own: database errors are told apart by SQLSTATE and constraint
 * name (never by message text, which the server translates), so the names must be stable and
 * ours, not PostgreSQL's generated `<table>_<column>_fkey`. Only names change; no row is touched.
 */
export const FOREIGN_KEY_RENAMES: ReadonlyArray<readonly [table: string, generated: string, named: string]> = [
  ['pool_node_states', 'pool_node_states_pool_id_fkey', 'pool_node_states_pool_fk'],
  ['pool_node_states', 'pool_node_states_node_id_fkey', 'pool_node_states_node_fk'],
  ['images', 'images_pool_id_fkey', 'images_pool_fk'],
  ['images', 'images_node_id_fkey', 'images_node_fk'],
  ['vms', 'vms_node_id_fkey', 'vms_node_fk'],
  ['vms', 'vms_boot_image_id_fkey', 'vms_boot_image_fk'],
];

export async function up(knex: Knex): Promise<void> {
  for (const [table, generated, named] of FOREIGN_KEY_RENAMES) {
    await knex.raw('alter table ?? rename constraint ?? to ??', [table, generated, named]);
  }
}

export async function down(knex: Knex): Promise<void> {
  for (const [table, generated, named] of FOREIGN_KEY_RENAMES) {
    await knex.raw('alter table ?? rename constraint ?? to ??', [table, named, generated]);
  }
}
