import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  await knex.raw(`
    create table images (
      id text primary key,
      name text not null check (name <> ''),
      description text not null default '',
      labels jsonb not null default '{}'::jsonb,
      kind text not null check (kind in ('cloud', 'iso')),
      format text,
      os jsonb not null,
      requirements jsonb not null,
      catalog_id text,
      phase text not null
        check (phase in ('pending', 'downloading', 'verifying', 'ready', 'error', 'deleting', 'missing')),
      progress jsonb,
      size_bytes bigint check (size_bytes >= 0),
      virtual_size_bytes bigint check (virtual_size_bytes >= 0),
      checksum jsonb,
      error jsonb,
      pool_id text references storage_pools (id) on delete restrict,
      rel_path text,
      node_id text references nodes (id) on delete set null,
      file_modified_at timestamptz,
      version integer not null default 1,
      created_at timestamptz not null default now(),
      updated_at timestamptz not null default now(),
      check ((pool_id is null) = (rel_path is null))
    )`);
  // Identity rules: a file is one image per pool location; a catalog entry one image per pool.
  await knex.raw('create unique index images_location_unique on images (pool_id, rel_path)');
  await knex.raw(
    'create unique index images_catalog_pool_unique on images (catalog_id, pool_id) where catalog_id is not null',
  );
  await knex.raw('create index images_phase_idx on images (phase)');
  await knex.raw('create index images_kind_created_idx on images (kind, created_at, id)');
  await knex.raw('create index images_created_idx on images (created_at, id)');
  await knex.raw('create index images_node_idx on images (node_id) where node_id is not null');
  await knex.raw('create index images_labels_idx on images using gin (labels jsonb_path_ops)');
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw('drop table images');
}
