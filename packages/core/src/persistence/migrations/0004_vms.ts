import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  await knex.raw(`
    create table vms (
      id text primary key,
      name text not null,
      node_id text not null references nodes (id) on delete restrict,
      cpu integer not null check (cpu >= 1),
      memory_mib integer not null check (memory_mib >= 16),
      firmware text not null default 'bios',
      disks jsonb not null default '[]'::jsonb,
      cdroms jsonb not null default '[]'::jsonb,
      boot_image_id text references images (id) on delete set null,
      state text not null
        check (state in ('creating', 'stopped', 'running', 'paused', 'error', 'deleting')),
      error text,
      labels jsonb not null default '{}'::jsonb,
      version integer not null default 1,
      created_at timestamptz not null default now(),
      updated_at timestamptz not null default now(),
      constraint vms_name_unique unique (name)
    )`);
  await knex.raw('create index vms_node_idx on vms (node_id)');
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw('drop table vms');
}
