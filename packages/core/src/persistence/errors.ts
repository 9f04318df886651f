import { ErrorCode, isQuantixError, QuantixError } from '../errors.js';

// PostgreSQL SQLSTATE codes (the same from pg and PGlite).
const UNIQUE_VIOLATION = '23505';
const FOREIGN_KEY_VIOLATION = '23503';
// PostgreSQL 17 (PGlite) reports ON DELETE RESTRICT as restrict_violation; 15 as 23503.
const RESTRICT_VIOLATION = '23001';
const NOT_NULL_VIOLATION = '23502';
const CHECK_VIOLATION = '23514';
const INVALID_TEXT_REPRESENTATION = '22P02';

interface DriverError {
  code?: string;
  constraint?: string;
  detail?: string;
  message?: string;
}

/**
 * Turns a driver error into a domain error: a unique violation is ALREADY_EXISTS, a foreign
 * key violation is IN_USE or NOT_FOUND (by which side), a check violation INVALID_INPUT.
 * QuantixErrors pass through; anything else is DATABASE_ERROR with the driver error as cause.
 */
export function mapDatabaseError(error: unknown, what: string): Error {
  if (isQuantixError(error)) return error;
  const driver = (error ?? {}) as DriverError;
  const constraint = driver.constraint ?? null;
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
      const stillReferenced = /referenced from table/.test(driver.detail ?? driver.message ?? '');
      return stillReferenced
        ? inUse(what, driver, error)
        : new QuantixError(
            ErrorCode.NOT_FOUND,
            `${what} refers to something that does not exist (${driver.detail ?? constraint})`,
            {
              details: { constraint },
              cause: error,
            },
          );
    }
    case NOT_NULL_VIOLATION:
    case CHECK_VIOLATION:
    case INVALID_TEXT_REPRESENTATION:
      return new QuantixError(
        ErrorCode.INVALID_INPUT,
        `Invalid ${what}: ${driver.message ?? 'rejected by the database'}`,
        {
          details: { constraint },
          cause: error,
        },
      );
    default:
      return new QuantixError(
        ErrorCode.DATABASE_ERROR,
        `Database error on ${what}: ${driver.message ?? String(error)}`,
        {
          cause: error,
        },
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
