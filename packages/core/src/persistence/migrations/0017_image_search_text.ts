import type { Knex } from 'knex';
import { IMAGE_SEARCH_INDEX, IMAGE_SEARCH_TEXT_0011 } from '../repositories/image-search.js';

/**
 * The text an image search looks in, stored lower-cased (`search_text`, generated from the row)
 * and indexed for trigrams, replacing 0011's index over the expression: rechecking the matches
 * of a search no longer rebuilds the text from JSON and case-folds it on every row. Existing rows
 * get the column when it is added.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.raw(
    `alter table images add column search_text text generated always as (lower(${IMAGE_SEARCH_TEXT_0011})) stored`,
  );
  await knex.raw(`create index ${IMAGE_SEARCH_INDEX} on images using gin (search_text gin_trgm_ops)`);
  await knex.raw('drop index images_search_trgm_idx');
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw(`create index images_search_trgm_idx on images using gin ((${IMAGE_SEARCH_TEXT_0011}) gin_trgm_ops)`);
  await knex.raw('alter table images drop column search_text'); // drops its index too
}
