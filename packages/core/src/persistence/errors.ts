import { ErrorCode, isQuantixError, QuantixError } from '../errors.js';

// PostgreSQL SQLSTATE codes (the same from pg and PGlite).
const UNIQUE_VIOLATION = '23505';
const FOREIGN_KEY_VIOLATION = '23503';
// PostgreSQL 17 (PGlite) reports ON DELETE RESTRICT as restrict_violation; 15 as 23503.
const RESTRICT_VIOLATION = '23001';
const NOT_NULL_VIOLATION = '23502';
const CHECK_VIOLATION = '23514';
const INVALID_TEXT_REPRESENTATION = '22P02';
// A NUL byte or bytes that are not UTF-8; a number out of range; a string too long for its column.
const CHARACTER_NOT_IN_REPERTOIRE = '22021';
const UNTRANSLATABLE_CHARACTER = '22P05';
const NUMERIC_OUT_OF_RANGE = '22003';
const STRING_TOO_LONG = '22001';

// Connection trouble: the server is gone, restarting, unreachable or not answering in time.
const UNAVAILABLE_SQLSTATES = new Set(['57P01', '57P02', '57P03', '53300', '57014']);
const UNAVAILABLE_ERRNOS = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'ENETUNREACH']);
// pg and knex report some of it without a code, in these words (their own, not the server's).
const UNAVAILABLE_MESSAGES =
  /Connection terminated|Query read timeout|timeout exceeded when trying to connect|Client has encountered a connection error|Knex: Timeout acquiring a connection/i;

interface DriverError {
  code?: string;
  name?: string;
  constraint?: string;
  detail?: string;
  message?: string;
}

/** Whether `error` means the database cannot be reached now (as opposed to refusing a statement). */
export function isDatabaseUnavailable(error: unknown): boolean {
  const driver = (error ?? {}) as DriverError;
  if (driver.code && (UNAVAILABLE_SQLSTATES.has(driver.code) || driver.code.startsWith('08'))) return true;
  if (driver.code && UNAVAILABLE_ERRNOS.has(driver.code)) return true;
  if (driver.name === 'KnexTimeoutError') return true;
  return UNAVAILABLE_MESSAGES.test(driver.message ?? '');
}

/**
 * Turns a driver error into a domain error: a unique violation is ALREADY_EXISTS, a foreign
 * key violation is IN_USE or NOT_FOUND (by which side), a check violation INVALID_INPUT, lost
 * connections and timeouts DATABASE_UNAVAILABLE. QuantixErrors pass through; anything else is
 * DATABASE_ERROR. Messages never carry the driver's text: knex prefixes it with the statement
 * and its bindings, which are for the log (the `cause`), not for whoever made the request.
 */
export function mapDatabaseError(error: unknown, what: string): Error {
  if (isQuantixError(error)) return error;
  const driver = (error ?? {}) as DriverError;
  const constraint = driver.constraint ?? null;
  const sqlState = driver.code && /^[0-9A-Z]{5}$/.test(driver.code) ? driver.code : null;
  if (isDatabaseUnavailable(error)) {
    return new QuantixError(
      ErrorCode.DATABASE_UNAVAILABLE,
      `The database is not reachable now (${what}); retry shortly`,
      {
        details: { sqlState, retryable: true },
        cause: error,
      },
    );
  }
  switch (driver.code) {
    case UNIQUE_VIOLATION:
      return new QuantixError(ErrorCode.ALREADY_EXISTS, `${what} already exists (${describeConstraint(constraint)})`, {
        details: { constraint },
        cause: error,
      });
    case RESTRICT_VIOLATION:
      return inUse(what, driver, error);
    case FOREIGN_KEY_VIOLATION: {
      // "referenced from" means we deleted something in use; otherwise we pointed at something absent.
      const stillReferenced = /referenced from table/.test(driver.detail ?? '');
      return stillReferenced
        ? inUse(what, driver, error)
        : new QuantixError(ErrorCode.NOT_FOUND, `${what} refers to something that does not exist`, {
            details: { constraint },
            cause: error,
          });
    }
    case NOT_NULL_VIOLATION:
    case CHECK_VIOLATION:
    case INVALID_TEXT_REPRESENTATION:
    case CHARACTER_NOT_IN_REPERTOIRE:
    case UNTRANSLATABLE_CHARACTER:
    case NUMERIC_OUT_OF_RANGE:
    case STRING_TOO_LONG:
      return new QuantixError(
        ErrorCode.INVALID_INPUT,
        `Invalid ${what}: the database refused a value (${constraint ? describeConstraint(constraint) : `SQLSTATE ${driver.code}`})`,
        { details: { constraint, sqlState }, cause: error },
      );
    default:
      return new QuantixError(
        ErrorCode.DATABASE_ERROR,
        `Database error on ${what}${sqlState ? ` (SQLSTATE ${sqlState})` : ''}; see the log`,
        { details: { sqlState }, cause: error },
      );
  }
}

function inUse(what: string, driver: DriverError, cause: unknown): QuantixError {
  const referencing = /referenced from table "([^"]+)"/.exec(driver.detail ?? '')?.[1] ?? 'other records';
  return new QuantixError(ErrorCode.IN_USE, `${what} is still in use: ${referencing} refer to it; remove those first`, {
    details: { constraint: driver.constraint ?? null, referencedFrom: referencing },
    cause,
  });
}

const CONSTRAINT_NAMES: Record<string, string> = {
  images_pkey: 'an image with this id',
  images_location_unique: 'an image at this pool location',
  images_catalog_pool_unique: 'this catalog image in this pool',
  storage_pools_pkey: 'a pool with this id',
  storage_pools_name_unique: 'a pool with this name',
  nodes_pkey: 'a node with this id',
  nodes_hostname_unique: 'a node with this hostname',
  vms_pkey: 'a VM with this id',
  vms_name_unique: 'a VM with this name',
};

function describeConstraint(constraint: string | null): string {
  if (!constraint) return 'duplicate key';
  return CONSTRAINT_NAMES[constraint] ?? constraint;
}
