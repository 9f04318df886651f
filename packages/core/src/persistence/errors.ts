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
// Two transactions touched the same rows: retrying the transaction succeeds.
const SERIALIZATION_FAILURE = '40001';
const DEADLOCK_DETECTED = '40P01';

// Connection trouble: the server is gone, restarting, unreachable or not answering in time.
const UNAVAILABLE_SQLSTATES = new Set(['57P01', '57P02', '57P03', '53300', '57014']);
const UNAVAILABLE_ERRNOS = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'ENETUNREACH']);
// pg and knex report some of it without a code, in these words: their own, in English, never
// the server's (whose text follows its lc_messages and is never matched here).
// `timeout expired` is pg's connect timeout on a client knex opens itself (connectionTimeoutMillis).
const UNAVAILABLE_MESSAGES =
  /Connection terminated|Query read timeout|timeout exceeded when trying to connect|timeout expired$|Client has encountered a connection error|Client was closed and is not queryable|Knex: Timeout acquiring a connection/i;

interface DriverError {
  code?: string;
  name?: string;
  constraint?: string;
  /** The table the violated constraint belongs to (for a foreign key: the referencing table). */
  table?: string;
  /** The column of a not-null violation. */
  column?: string;
  message?: string;
}

/** What the statement that failed was doing: a foreign key refuses a delete and a write differently. */
export interface DatabaseErrorContext {
  /** A delete (a foreign key violation then means the row is still referenced). Default 'write'. */
  operation?: 'write' | 'delete';
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
 * Turns a driver error into a domain error by its SQLSTATE and constraint name — never by the
 * server's message, which follows the server's lc_messages: a unique violation is
 * ALREADY_EXISTS, a foreign key violation IN_USE on a delete and NOT_FOUND on a write, a check
 * violation INVALID_INPUT, a serialization failure or deadlock VERSION_CONFLICT (retry), lost
 * connections and timeouts DATABASE_UNAVAILABLE. QuantixErrors pass through; anything else is
 * DATABASE_ERROR. Messages never carry the driver's text: knex prefixes it with the statement
 * and its bindings, which are for the log (the `cause`), not for whoever made the request.
 */
export function mapDatabaseError(error: unknown, what: string, context: DatabaseErrorContext = {}): Error {
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
    case FOREIGN_KEY_VIOLATION:
      // The server reports both sides of a foreign key with the same code, constraint and table;
      // only its (translated) text says which. The statement's kind does: a delete can only be
      // refused because rows still refer to it, a write only because it points at nothing.
      return context.operation === 'delete'
        ? inUse(what, driver, error)
        : new QuantixError(
            ErrorCode.NOT_FOUND,
            `${what} refers to ${describeReference(constraint)} that does not exist`,
            {
              details: { constraint },
              cause: error,
            },
          );
    case SERIALIZATION_FAILURE:
    case DEADLOCK_DETECTED:
      return new QuantixError(
        ErrorCode.VERSION_CONFLICT,
        `${what} was changed by a concurrent transaction; read it again and retry`,
        { details: { sqlState, constraint, retryable: true }, cause: error },
      );
    case NOT_NULL_VIOLATION:
    case CHECK_VIOLATION:
    case INVALID_TEXT_REPRESENTATION:
    case CHARACTER_NOT_IN_REPERTOIRE:
    case UNTRANSLATABLE_CHARACTER:
    case NUMERIC_OUT_OF_RANGE:
    case STRING_TOO_LONG:
      return new QuantixError(
        ErrorCode.INVALID_INPUT,
        `Invalid ${what}: the database refused a value (${constraint ? describeConstraint(constraint) : driver.column ? `${driver.column} is required` : `SQLSTATE ${driver.code}`})`,
        { details: { constraint, sqlState, column: driver.column ?? null }, cause: error },
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
  // A foreign key belongs to the referencing table: the error's `table` names who still refers.
  const referencing = (driver.constraint && FOREIGN_KEYS[driver.constraint]?.table) ?? driver.table ?? null;
  return new QuantixError(
    ErrorCode.IN_USE,
    `${what} is still in use: ${referencing ?? 'other records'} refer to it; remove those first`,
    { details: { constraint: driver.constraint ?? null, referencedFrom: referencing }, cause },
  );
}

/** Our foreign keys (named in migration 0008 and the migrations after it): the referencing table, and what it points at. */
const FOREIGN_KEYS: Record<string, { table: string; refersTo: string }> = {
  pool_node_states_pool_fk: { table: 'pool_node_states', refersTo: 'a pool' },
  pool_node_states_node_fk: { table: 'pool_node_states', refersTo: 'a node' },
  images_pool_fk: { table: 'images', refersTo: 'a pool' },
  images_node_fk: { table: 'images', refersTo: 'a node' },
  vms_node_fk: { table: 'vms', refersTo: 'a node' },
  vms_boot_image_fk: { table: 'vms', refersTo: 'a boot image' },
  vm_macs_vm_fk: { table: 'vm_macs', refersTo: 'a VM' },
  node_leases_node_fk: { table: 'node_leases', refersTo: 'a node' },
  node_leases_replica_fk: { table: 'node_leases', refersTo: 'a control-plane replica' },
  golden_images_pool_fk: { table: 'golden_images', refersTo: 'a pool' },
  golden_image_revisions_golden_fk: { table: 'golden_image_revisions', refersTo: 'a golden image' },
  golden_image_revisions_image_fk: { table: 'golden_image_revisions', refersTo: 'an image' },
};

function describeReference(constraint: string | null): string {
  return (constraint && FOREIGN_KEYS[constraint]?.refersTo) ?? 'something';
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
  vm_macs_pkey: 'a NIC with this MAC address',
  replicas_pkey: 'a replica with this id',
  node_leases_pkey: 'a lease on this node',
  node_requests_pkey: 'a node request with this id',
  idempotency_keys_pkey: 'a write with this idempotency key',
};

function describeConstraint(constraint: string | null): string {
  if (!constraint) return 'duplicate key';
  return CONSTRAINT_NAMES[constraint] ?? constraint;
}
