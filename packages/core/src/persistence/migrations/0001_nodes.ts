import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  await knex.raw(`
    create table nodes (
      id text primary key,
      hostname text not null,
      address text,
      labels jsonb not null default '{}'::jsonb,
      connection_state text not null default 'disconnected'
        check (connection_state in ('connected', 'disconnected')),
      last_seen_at timestamptz,
      agent_version text,
      capabilities jsonb not null default '{}'::jsonb,
      version integer not null default 1,
      created_at timestamptz not null default now(),
      updated_at timestamptz not null default now(),
      constraint nodes_hostname_unique unique (hostname)
    )`);
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw('drop table nodes');
}
