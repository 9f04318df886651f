import type { Knex } from 'knex';

/**
 * The pool-set generation: one counter bumped in the same transaction as every pool
 * definition change, so a node's acknowledged generation says exactly which set it applied.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.raw(`
    create table quantix_counters (
      name text primary key,
      value bigint not null default 0
    )`);
  await knex.raw(`insert into quantix_counters (name, value) values ('pool_generation', 1)`);
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw('drop table quantix_counters');
}
