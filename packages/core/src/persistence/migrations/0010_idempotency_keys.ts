import type { Knex } from 'knex';

/**
 * Idempotency keys of API writes: a client that retries a write with the same key (after a
 * replica died mid-request, say) gets the first answer again instead of a second write. The
 * answer is stored once the first attempt ends; `replica_id` says who is handling one still
 * under way, so a retry may take over from a replica that died.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.raw(`
    create table idempotency_keys (
      key text primary key,
      fingerprint text not null,
      replica_id text not null,
      status integer,
      content_type text,
      body text,
      created_at timestamptz not null default now()
    )`);
  await knex.raw('create index idempotency_keys_created on idempotency_keys (created_at)');
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw('drop table idempotency_keys');
}
