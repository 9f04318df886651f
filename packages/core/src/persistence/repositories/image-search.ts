/**
 * The text an image search looks in: name, description, OS distribution and labels (as JSON
 * text), one per line so a search cannot match across two of them unless it holds a newline.
 * Migration 0011 indexes exactly this expression (trigram GIN); a query must spell it the same
 * way for PostgreSQL to use the index. Changing it needs a new migration.
 */
export const IMAGE_SEARCH_TEXT =
  "name || E'\\n' || description || E'\\n' || coalesce(os->>'distribution', '') || E'\\n' || labels::text";
