import type { Knex } from 'knex';

/**
 * The rows every node connection rewrites — the node itself, its lease, its pool states — get
 * room on their own page (fillfactor 50): a new row version that fits beside the old one, with no
 * indexed column changed, is a HOT update, which writes no index entry and leaves nothing for
 * vacuum. At the default 100 pages were full, and a 2,000-node reconnect storm updated most
 * pool states and leases out of place (measured: 8% and 38% HOT; 100% after), which cost
 * PostgreSQL ~90 ms of CPU a storm against ~60 now, and bloated the tables between vacuums. New
 * pages follow the setting at once; pages written before it fill up as they are rewritten.
 */
const TABLES = ['nodes', 'node_leases', 'pool_node_states'] as const;
const FILLFACTOR = 50;

export async function up(knex: Knex): Promise<void> {
  for (const table of TABLES) await knex.raw(`alter table ${table} set (fillfactor = ${FILLFACTOR})`);
}

export async function down(knex: Knex): Promise<void> {
  for (const table of TABLES) await knex.raw(`alter table ${table} reset (fillfactor)`);
}
