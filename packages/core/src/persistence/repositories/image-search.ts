/**
 * The text an image search looked in before migration 0021: name, description, OS distribution
 * and labels (as JSON text), one per line so a search cannot match across two of them unless it
 * holds a newline. Migrations 0011 and 0017 index it; it stays as they ran.
 */
export const IMAGE_SEARCH_TEXT_0011 =
  "name || E'\\n' || description || E'\\n' || coalesce(os->>'distribution', '') || E'\\n' || labels::text";

/**
 * The text an image search looks in: that of 0011, then the file's path in its pool — a scanned
 * ISO is named after the OS it holds, and its file name is what a person remembers. Migration
 * 0021 stores it lower-cased as the generated column `images.search_text`, under a trigram GIN
 * index. Changing it needs a new migration (and this one kept as it is, for 0021).
 */
export const IMAGE_SEARCH_TEXT = `${IMAGE_SEARCH_TEXT_0011} || E'\\n' || coalesce(rel_path, '')`;

/** The trigram index over `images.search_text` (migrations 0017, then 0021). */
export const IMAGE_SEARCH_INDEX = 'images_search_text_trgm_idx';

/**
 * The condition of a text search, for a LIKE pattern (wildcards of the user's text escaped):
 * `lower(text) like lower(pattern)` is what `ilike` does, but the column is lower-cased once when
 * the row is written, so rechecking a match reads a stored string instead of building the text
 * from JSON and case-folding it per row (counting a label's 714 matches among 10,000 images:
 * 0.9 ms against 1.8).
 */
export const IMAGE_SEARCH_CONDITION = 'search_text like lower(?)';
