import type { Knex } from 'knex';

/**
 * Pool states may be `unknown`: what a node reported before it went away. Only the CHECK
 * constraint changes; every row stays as it is.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.raw('alter table pool_node_states drop constraint pool_node_states_status_check');
  await knex.raw(`
    alter table pool_node_states add constraint pool_node_states_status_check
      check (status in ('pending', 'active', 'inactive', 'unavailable', 'error', 'unknown'))`);
}

/** Back to the old set: an `unknown` state becomes `pending` (the node has not said yet), kept otherwise. */
export async function down(knex: Knex): Promise<void> {
  await knex.raw(`update pool_node_states set status = 'pending' where status = 'unknown'`);
  await knex.raw('alter table pool_node_states drop constraint pool_node_states_status_check');
  await knex.raw(`
    alter table pool_node_states add constraint pool_node_states_status_check
      check (status in ('pending', 'active', 'inactive', 'unavailable', 'error'))`);
}
