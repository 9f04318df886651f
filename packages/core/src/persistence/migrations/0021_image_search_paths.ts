import type { Knex } from 'knex';
import { IMAGE_SEARCH_INDEX, IMAGE_SEARCH_TEXT, IMAGE_SEARCH_TEXT_0011 } from '../repositories/image-search.js';

/**
 * A search finds an image by its file's path in its pool too (IMAGE_SEARCH_TEXT): a scanned ISO
 * is named after the OS it holds ("Ubuntu Server 24.04 LTS"), and searching for its file name
 * found nothing. A stored generated column's expression cannot be changed in place before
 * PostgreSQL 17, so `search_text` is made again (the table is rewritten once, every row's text
 * computed), with its index.
 */
export async function up(knex: Knex): Promise<void> {
  await remake(knex, IMAGE_SEARCH_TEXT);
}

export async function down(knex: Knex): Promise<void> {
  await remake(knex, IMAGE_SEARCH_TEXT_0011);
}

async function remake(knex: Knex, text: string): Promise<void> {
  await knex.raw('alter table images drop column search_text'); // drops its index too
  await knex.raw(`alter table images add column search_text text generated always as (lower(${text})) stored`);
  await knex.raw(`create index ${IMAGE_SEARCH_INDEX} on images using gin (search_text gin_trgm_ops)`);
}
