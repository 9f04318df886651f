import type { Knex } from 'knex';

/**
 * Image rows keep a tenth of each page free (fillfactor 90), so some of the rows a transaction
 * rewrites — a re-scan's batch of changed files, say — get their new version on their old page:
 * a HOT update when no indexed column changed (no index entries written), else at least in place.
 *
 * At the default 100 pages were full, and every image a batch rewrote moved to the end of the
 * table. After a re-scan that found every file changed, and a vacuum, the first page of each
 * trigram's posting tree in the search index was empty; GIN sizes a posting tree by its first
 * page, so it took a trigram every image holds for a rare one and read it whole: counting a name
 * fragment among 10,000 images took 0.66-0.96 ms of server time instead of 0.12-0.14. With the
 * room, 0.14 ms after the same re-scan (~12% of its rows HOT). The cost: the table is ~12% larger
 * until its rows are first rewritten. New pages follow the setting at once; pages written before
 * it fill up as they are rewritten.
 */
const FILLFACTOR = 90;

export async function up(knex: Knex): Promise<void> {
  await knex.raw(`alter table images set (fillfactor = ${FILLFACTOR})`);
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw('alter table images reset (fillfactor)');
}
