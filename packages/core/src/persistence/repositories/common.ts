import type { Knex } from 'knex';
import type { Page } from '../../contracts/repositories.js';
import { ErrorCode, QuantixError } from '../../errors.js';
import { type DatabaseErrorContext, mapDatabaseError } from '../errors.js';
import { toNumber } from '../rows.js';

export type Row = Record<string, unknown>;

/** Runs `work`, mapping driver errors to domain errors that name `what`. */
export async function guarded<T>(what: string, work: () => Promise<T>, context: DatabaseErrorContext = {}): Promise<T> {
  try {
    return await work();
  } catch (error) {
    throw mapDatabaseError(error, what, context);
  }
}

export function notFound(what: string, id: string): QuantixError {
  return new QuantixError(ErrorCode.NOT_FOUND, `${what} ${id} does not exist`, { details: { id } });
}

function versionConflict(what: string, id: string, expected: number, actual: number): QuantixError {
  return new QuantixError(
    ErrorCode.VERSION_CONFLICT,
    `${what} ${id} was changed by someone else (version ${actual}, you had ${expected}); read it again and retry`,
    { details: { id, expectedVersion: expected, actualVersion: actual } },
  );
}

export function applyPage(query: Knex.QueryBuilder, page: Page): Knex.QueryBuilder {
  if (page.limit !== undefined) query.limit(page.limit);
  if (page.offset !== undefined) query.offset(page.offset);
  return query;
}

/** Escapes LIKE wildcards so user text matches literally. */
export function likePattern(text: string): string {
  return `%${text.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
}

/**
 * The one update path for versioned tables: lock the row, check the caller's version, let
 * `build` compute the new column values from the current row (and refuse if it must), then
 * write with version + 1. Returns the written row.
 */
export async function updateVersioned(
  knex: Knex,
  options: {
    table: string;
    id: string;
    what: string;
    expectedVersion: number | undefined;
    build: (current: Row) => Row;
    /** Runs in the same transaction after the write (e.g. bump a generation counter). */
    afterWrite?: (trx: Knex.Transaction) => Promise<void>;
    /** The columns read and returned (default all): a table may hold columns its rows never show. */
    columns?: readonly string[];
  },
): Promise<Row> {
  const { table, id, what, expectedVersion, build, afterWrite } = options;
  const columns = options.columns ? [...options.columns] : ['*'];
  return guarded(what, () =>
    knex.transaction(async (trx) => {
      const current = (await trx(table).where({ id }).forUpdate().first(columns)) as Row | undefined;
      if (!current) throw notFound(what, id);
      const version = toNumber(current.version);
      if (expectedVersion !== undefined && version !== expectedVersion) {
        throw versionConflict(what, id, expectedVersion, version);
      }
      const [written] = (await trx(table)
        .where({ id, version })
        .update({ ...build(current), version: version + 1, updated_at: trx.fn.now() })
        .returning(columns)) as Row[];
      if (!written) throw versionConflict(what, id, version, version + 1);
      await afterWrite?.(trx);
      return written;
    }),
  );
}

export async function deleteVersioned(
  knex: Knex,
  options: {
    table: string;
    id: string;
    what: string;
    expectedVersion: number | undefined;
    afterWrite?: (trx: Knex.Transaction) => Promise<void>;
  },
): Promise<void> {
  const { table, id, what, expectedVersion, afterWrite } = options;
  await guarded(
    what,
    () =>
      knex.transaction(async (trx) => {
        const current = (await trx(table).where({ id }).forUpdate().first('version')) as Row | undefined;
        if (!current) throw notFound(what, id);
        const version = toNumber(current.version);
        if (expectedVersion !== undefined && version !== expectedVersion) {
          throw versionConflict(what, id, expectedVersion, version);
        }
        await trx(table).where({ id }).delete();
        await afterWrite?.(trx);
      }),
    { operation: 'delete' },
  );
}
