/**
 * Every failure Quantix reports carries one of these codes. Codes are stable: callers
 * (the HTTP layer, the CLI, tests) branch on them, never on message text.
 */
export const ErrorCode = {
  /** A record or argument failed validation; `details.issues` lists what and where. */
  INVALID_INPUT: 'INVALID_INPUT',
  /** A relPath is absolute, contains `..`, or otherwise leaves its pool. */
  PATH_ESCAPES_POOL: 'PATH_ESCAPES_POOL',
  /** An image phase change that the transition table does not allow. */
  ILLEGAL_PHASE_TRANSITION: 'ILLEGAL_PHASE_TRANSITION',
  NOT_FOUND: 'NOT_FOUND',
  /** A unique key is already taken (duplicate name, location, catalog entry in a pool). */
  ALREADY_EXISTS: 'ALREADY_EXISTS',
  /** Optimistic concurrency: the record changed since the caller read it. */
  VERSION_CONFLICT: 'VERSION_CONFLICT',
  /** A row still references the record being deleted (e.g. a pool that holds images). */
  IN_USE: 'IN_USE',
  /** A backend does not implement an optional operation (libvirt's VIR_ERR_NO_SUPPORT). */
  UNSUPPORTED_OPERATION: 'UNSUPPORTED_OPERATION',
  /** Plugin kernel: a plugin targets an apiVersion this core does not speak. */
  PLUGIN_API_VERSION: 'PLUGIN_API_VERSION',
  /** Plugin kernel: a plugin requires another plugin that was not given. */
  PLUGIN_MISSING_DEPENDENCY: 'PLUGIN_MISSING_DEPENDENCY',
  /** Plugin kernel: two plugins provide the same single-valued token, or share a name. */
  PLUGIN_CONFLICT: 'PLUGIN_CONFLICT',
  /** Plugin kernel: a plugin's register() threw, or its metadata is malformed. */
  PLUGIN_INVALID: 'PLUGIN_INVALID',
  /** A service token was asked for that no plugin provides. */
  SERVICE_NOT_FOUND: 'SERVICE_NOT_FOUND',
  /** The instance was closed and cannot be used any more. */
  INSTANCE_CLOSED: 'INSTANCE_CLOSED',
  /** The database could not be opened, reached or migrated. */
  DATABASE_UNAVAILABLE: 'DATABASE_UNAVAILABLE',
  /** A database error that maps to no domain error; `cause` holds the driver error. */
  DATABASE_ERROR: 'DATABASE_ERROR',
  /** A command (local or remote) failed, timed out or produced too much output. */
  COMMAND_FAILED: 'COMMAND_FAILED',
  COMMAND_TIMEOUT: 'COMMAND_TIMEOUT',
  /** Control plane ⇄ node: the peer speaks another protocol version. */
  PROTOCOL_VERSION: 'PROTOCOL_VERSION',
  /** Control plane ⇄ node: a frame that is not JSON or does not match its schema. */
  PROTOCOL_INVALID_MESSAGE: 'PROTOCOL_INVALID_MESSAGE',
  // VM creation checks, in the order they run (control plane, before any hypervisor call).
  /** The boot image does not exist. */
  IMAGE_NOT_FOUND: 'IMAGE_NOT_FOUND',
  /** The boot image exists but is not ready (pending, downloading, error, missing, …). */
  IMAGE_NOT_READY: 'IMAGE_NOT_READY',
  /** The boot image has no pool location, so no node can reach its file. */
  IMAGE_NO_LOCATION: 'IMAGE_NO_LOCATION',
  /** The image's pool is not active on the target node (not assigned, unmounted, unreachable). */
  POOL_NOT_ACTIVE_ON_NODE: 'POOL_NOT_ACTIVE_ON_NODE',
  /** The image's file is not where its row says it is, on the target node. */
  IMAGE_FILE_MISSING: 'IMAGE_FILE_MISSING',
  /** The target node is not connected, so it cannot be asked to do anything. */
  NODE_NOT_CONNECTED: 'NODE_NOT_CONNECTED',
  /**
   * A pool cannot be used on this node: its directory is missing or not writable, its export is
   * not mounted, or its server does not answer. The message says which.
   */
  POOL_UNAVAILABLE: 'POOL_UNAVAILABLE',
  /** Mounting or unmounting a network pool failed; the message carries the command's own error. */
  POOL_MOUNT_FAILED: 'POOL_MOUNT_FAILED',
} as const;

export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

export interface QuantixErrorOptions {
  details?: Record<string, unknown>;
  cause?: unknown;
}

export class QuantixError extends Error {
  override readonly name = 'QuantixError';
  readonly code: ErrorCode;
  readonly details: Record<string, unknown>;

  constructor(code: ErrorCode, message: string, options: QuantixErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.details = options.details ?? {};
  }

  toJSON(): { code: ErrorCode; message: string; details: Record<string, unknown> } {
    return { code: this.code, message: this.message, details: this.details };
  }
}

/** Type guard that also works across two copies of this package (bundled ESM and CJS). */
export function isQuantixError(error: unknown, code?: ErrorCode): error is QuantixError {
  if (typeof error !== 'object' || error === null) return false;
  const candidate = error as { name?: unknown; code?: unknown };
  if (candidate.name !== 'QuantixError' || typeof candidate.code !== 'string') return false;
  return code === undefined || candidate.code === code;
}
