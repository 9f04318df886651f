import type { Knex } from 'knex';

/**
 * Golden images that follow upstream: a table of followed images (one row per golden image:
 * its catalog entry, pool, cron schedule, how many revisions to keep, when it runs next, what the
 * last check found) and a table of its revisions (revision number → image row). The golden
 * image's id is the id of the image it was first followed on; it is not a foreign key, because
 * that first revision may be pruned while the golden image goes on. A revision's row goes with
 * its image row (on delete cascade): the image rows are the truth, this only numbers them.
 * `name` and `rel_path` are the first revision's, from which later revisions are named
 * (`<name> (r2)`, `images/x.r2.qcow2`) even after the first is gone.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.raw(`
    create table golden_images (
      id text not null,
      catalog_id text not null,
      pool_id text not null,
      name text not null,
      rel_path text not null,
      schedule text not null,
      keep integer not null,
      next_run_at timestamptz not null,
      next_revision integer not null default 2,
      upstream_checksum text,
      last_check_at timestamptz,
      last_check jsonb,
      created_at timestamptz not null default now(),
      updated_at timestamptz not null default now(),
      constraint golden_images_pkey primary key (id),
      constraint golden_images_pool_fk foreign key (pool_id) references storage_pools (id) on delete cascade,
      constraint golden_images_keep_check check (keep >= 1)
    )`);
  await knex.raw('create index golden_images_next_run_idx on golden_images (next_run_at)');
  await knex.raw(`
    create table golden_image_revisions (
      golden_id text not null,
      revision integer not null,
      image_id text not null,
      checksum text,
      created_at timestamptz not null default now(),
      constraint golden_image_revisions_pkey primary key (golden_id, revision),
      constraint golden_image_revisions_image_unique unique (image_id),
      constraint golden_image_revisions_golden_fk foreign key (golden_id) references golden_images (id) on delete cascade,
      constraint golden_image_revisions_image_fk foreign key (image_id) references images (id) on delete cascade
    )`);
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw('drop table golden_image_revisions');
  await knex.raw('drop table golden_images');
}
