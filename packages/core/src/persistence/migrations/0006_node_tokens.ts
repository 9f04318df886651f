import type { Knex } from 'knex';

/** Nodes authenticate with a per-node token; only its SHA-256 is stored. */
export async function up(knex: Knex): Promise<void> {
  await knex.raw('alter table nodes add column token_sha256 text');
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw('alter table nodes drop column token_sha256');
}
