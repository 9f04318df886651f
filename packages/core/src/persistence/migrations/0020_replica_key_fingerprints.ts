import type { Knex } from 'knex';

/**
 * Each replica's fingerprint of the secret the replicas must share (the ticket key, made from
 * the API token): a replica started with another token is found by the others, which warn and
 * list it, instead of each refusing the other's tickets and clients' tokens without a word. Null
 * for a replica that has no such secret or predates this column.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.raw('alter table replicas add column key_fingerprint text');
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw('alter table replicas drop column key_fingerprint');
}
