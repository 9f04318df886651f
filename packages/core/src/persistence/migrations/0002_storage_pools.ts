import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  await knex.raw(`
    create table storage_pools (
      id text primary key,
      name text not null check (name <> ''),
      description text not null default '',
      type text not null,
      config jsonb not null default '{}'::jsonb,
      content_types jsonb not null default '["iso","images"]'::jsonb,
      shared boolean not null default false,
      node_ids jsonb not null default '[]'::jsonb,
      labels jsonb not null default '{}'::jsonb,
      version integer not null default 1,
      created_at timestamptz not null default now(),
      updated_at timestamptz not null default now(),
      constraint storage_pools_name_unique unique (name)
    )`);
  // Per-node state is separate from the definition: it is what a node last reported.
  await knex.raw(`
    create table pool_node_states (
      pool_id text not null references storage_pools (id) on delete cascade,
      node_id text not null references nodes (id) on delete cascade,
      status text not null check (status in ('pending', 'active', 'inactive', 'unavailable', 'error')),
      mount_path text,
      capacity_bytes bigint check (capacity_bytes >= 0),
      available_bytes bigint check (available_bytes >= 0),
      last_error text,
      synced_generation bigint not null default 0,
      checked_at timestamptz not null default now(),
      updated_at timestamptz not null default now(),
      primary key (pool_id, node_id)
    )`);
  await knex.raw('create index pool_node_states_node_idx on pool_node_states (node_id)');
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw('drop table pool_node_states');
  await knex.raw('drop table storage_pools');
}
