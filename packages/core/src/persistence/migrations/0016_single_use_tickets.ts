import type { Knex } from 'knex';

/**
 * Single-use tickets (consoles, live-event streams) every replica can redeem: a replica issues
 * one by inserting its SHA-256 digest, and whichever replica the viewer reaches spends it by
 * deleting the row, so it opens one door once, cluster-wide. The ticket itself is never stored.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.raw(`
    create table single_use_tickets (
      digest text primary key,
      purpose text not null,
      grant_json jsonb not null,
      expires_at timestamptz not null
    )`);
  await knex.raw('create index single_use_tickets_expires on single_use_tickets (expires_at)');
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw('drop table single_use_tickets');
}
