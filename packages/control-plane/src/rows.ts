/** Rows of a knex.raw result: pg returns { rows }, PGlite the same shape through its knex dialect. */
export function rowsOf(result: unknown): Record<string, unknown>[] {
  return ((result as { rows?: Record<string, unknown>[] }).rows ?? []) as Record<string, unknown>[];
}
