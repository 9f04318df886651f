import type { Knex } from 'knex';
import { IMAGE_SEARCH_TEXT_0011 } from '../repositories/image-search.js';

/**
 * Image search and the VM-creation view's ordering, through indexes:
 * - a trigram GIN index (pg_trgm) over the text a search looks in (name, description, OS
 *   distribution, labels), so `ilike '%…%'` on 10,000 images reads a few index pages, not the table;
 * - (phase, name, id), the order in which the view walks each status, so a page stops after its rows;
 * - (pool_id, phase, kind) with catalog_id: totals of the view and of pool/phase/kind filters,
 *   counted from the index alone.
 * pg_trgm is a trusted extension: the owner of the database may create it.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.raw('create extension if not exists pg_trgm');
  await knex.raw(`create index images_search_trgm_idx on images using gin ((${IMAGE_SEARCH_TEXT_0011}) gin_trgm_ops)`);
  await knex.raw('create index images_phase_name_idx on images (phase, name, id)');
  await knex.raw('create index images_pool_phase_kind_idx on images (pool_id, phase, kind) include (catalog_id)');
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw('drop index images_pool_phase_kind_idx');
  await knex.raw('drop index images_phase_name_idx');
  await knex.raw('drop index images_search_trgm_idx');
}
