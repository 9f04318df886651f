import { defineErrorCodes, errorCodeInfo, type QuantixErrorCode } from './error-registry.js';

/**
 * The codes of the core, the node protocol and the control plane: what more than one package
 * throws or reasons about. A plugin's own codes are defined in that plugin (defineErrorCodes),
 * in the same registry. Codes are stable: callers (the HTTP layer, the CLI, tests) branch on
 * them, never on message text. Statuses: 4xx for the request or the state of things, 5xx only
 * for the control plane's own failures (a bug, its database, a node that failed or did not answer).
 */
export const ErrorCode = defineErrorCodes('@quantix/core', {
  INVALID_INPUT: {
    status: 400,
    retryable: false,
    description: 'A record or argument failed validation; `details.issues` lists what and where.',
  },
  PATH_ESCAPES_POOL: {
    status: 400,
    retryable: false,
    description: 'A relPath is absolute, contains `..`, or otherwise leaves its pool.',
  },
  ILLEGAL_PHASE_TRANSITION: {
    status: 409,
    retryable: false,
    description: 'An image phase change that the transition table does not allow.',
  },
  NOT_FOUND: { status: 404, retryable: false, description: 'The record, file or domain asked for does not exist.' },
  ALREADY_EXISTS: {
    status: 409,
    retryable: false,
    description: 'A unique key is already taken (duplicate name, location, catalog entry in a pool).',
  },
  VERSION_CONFLICT: {
    status: 409,
    retryable: true,
    description: 'Optimistic concurrency: the record changed since the caller read it; read it again and retry.',
  },
  IN_USE: {
    status: 409,
    retryable: false,
    description: 'Something still uses the record being deleted (a pool that holds images, an image a VM boots from).',
  },
  UNSUPPORTED_OPERATION: {
    status: 409,
    retryable: false,
    description: "A backend or node does not implement an optional operation (libvirt's VIR_ERR_NO_SUPPORT).",
  },
  PLUGIN_API_VERSION: {
    status: 500,
    retryable: false,
    description: 'Plugin kernel: a plugin targets a plugin API version range this core does not satisfy.',
  },
  PLUGIN_MISSING_DEPENDENCY: {
    status: 500,
    retryable: false,
    description: 'Plugin kernel: a plugin requires another plugin that was not given.',
  },
  PLUGIN_MISSING_SERVICE: {
    status: 500,
    retryable: false,
    description:
      'Plugin kernel: a service a plugin needs (or a caller gets) is provided by no plugin; a node (database: false) provides no database.',
  },
  PLUGIN_CONFLICT: {
    status: 500,
    retryable: false,
    description: 'Plugin kernel: two plugins provide the same single-valued token, or share a name.',
  },
  PLUGIN_INVALID: {
    status: 500,
    retryable: false,
    description: "Plugin kernel: a plugin's register() threw, or its metadata is malformed.",
  },
  INSTANCE_CLOSED: {
    status: 503,
    retryable: true,
    description: 'The instance (or runner) was closed and cannot be used any more.',
  },
  DATABASE_UNAVAILABLE: {
    status: 503,
    retryable: true,
    description: 'The database could not be opened, reached or migrated.',
  },
  DATABASE_ERROR: {
    status: 500,
    retryable: false,
    description: 'A database error that maps to no domain error; `cause` holds the driver error.',
  },
  COMMAND_FAILED: {
    status: 502,
    retryable: false,
    description: 'A command (local or remote) failed or produced too much output; on a node, a failure with no code.',
  },
  COMMAND_TIMEOUT: { status: 504, retryable: true, description: 'A command, or a request to a node, took too long.' },
  PROTOCOL_VERSION: {
    status: 400,
    retryable: false,
    description: 'Control plane ⇄ node: the peer speaks another protocol version.',
  },
  PROTOCOL_INVALID_MESSAGE: {
    status: 400,
    retryable: false,
    description: 'Control plane ⇄ node: a frame that is not JSON or does not match its schema.',
  },
  // VM creation checks, in the order they run (control plane, before any hypervisor call).
  IMAGE_NOT_FOUND: { status: 404, retryable: false, description: 'The boot image does not exist.' },
  IMAGE_NOT_READY: {
    status: 409,
    retryable: true,
    description: 'The boot image exists but is not ready (pending, downloading, error, missing, …).',
  },
  IMAGE_NO_LOCATION: {
    status: 409,
    retryable: false,
    description: 'The boot image has no pool location, so no node can reach its file.',
  },
  POOL_NOT_ACTIVE_ON_NODE: {
    status: 409,
    retryable: true,
    description: "The image's pool is not active on the target node (not assigned, unmounted, unreachable).",
  },
  IMAGE_FILE_MISSING: {
    status: 409,
    retryable: false,
    description: "The image's file is not where its row says it is, on the target node.",
  },
  NETWORK_NOT_FOUND: {
    status: 404,
    retryable: false,
    description: 'The target node has no libvirt network or host bridge of that name for a NIC to plug into.',
  },
  NETWORK_NOT_ACTIVE: {
    status: 409,
    retryable: true,
    description: 'The libvirt network or host bridge exists on the target node but is not started (or is down).',
  },
  VM_DID_NOT_STOP: {
    status: 409,
    retryable: true,
    description:
      'The guest did not power off within the stop timeout after an ACPI shutdown (it may ignore ACPI); stop it with force to power it off.',
  },
  CONSOLE_UNAVAILABLE: {
    status: 409,
    retryable: true,
    description:
      'The VM has no console of the kind asked for, is not running, or its node did not open it in time; start the VM and retry.',
  },
  NODE_NOT_CONNECTED: {
    status: 409,
    retryable: true,
    description: 'The target node is not connected, so it cannot be asked to do anything.',
  },
  POOL_UNAVAILABLE: {
    status: 503,
    retryable: true,
    description:
      'A pool cannot be used on this node: its directory is missing or not writable, its export is not mounted, or its server does not answer.',
  },
  POOL_MOUNT_FAILED: {
    status: 502,
    retryable: true,
    description: "Mounting or unmounting a network pool failed; the message carries the command's own error.",
  },
  // Downloads and uploads: thrown on a node, carried over the node protocol, recorded on the image row.
  DOWNLOAD_FAILED: {
    status: 502,
    retryable: true,
    description:
      'A download failed: network error, HTTP error status, or the file could not be written. `details.retryable` says whether trying again can help.',
  },
  POOL_NO_SPACE: {
    status: 507,
    retryable: false,
    description:
      'The pool has no room for the file: its size is more than the file system the pool is on has free, as the node holding it read it just then. Nothing was written or kept. Free space in the pool, or choose another pool.',
  },
  DOWNLOAD_CANCELLED: {
    status: 409,
    retryable: true,
    description: 'A download was cancelled; its partial file is kept so a retry resumes it.',
  },
  DOWNLOAD_INTERRUPTED: {
    status: 503,
    retryable: true,
    description: 'A download was interrupted (a restart, a node that did not come back); the message says why.',
  },
  CHECKSUM_MISMATCH: {
    status: 422,
    retryable: true,
    description:
      'The downloaded or uploaded bytes do not have the expected checksum; the file was deleted, so a retry starts afresh.',
  },
  UPLOAD_TOO_LARGE: {
    status: 413,
    retryable: false,
    description: 'An upload sent more bytes than its size limit; nothing was kept.',
  },
  UPLOAD_INCOMPLETE: {
    status: 400,
    retryable: true,
    description: "An upload's stream ended early, failed or was aborted before it was complete; nothing was kept.",
  },
  UPLOAD_ON_OTHER_REPLICA: {
    status: 409,
    retryable: false,
    description:
      'A resumable upload is staged on another control-plane replica (named in `details`); resume it there, or share the staging directory between replicas.',
  },
  UPLOAD_FAILED: {
    status: 502,
    retryable: false,
    description: 'The node could not store an upload; the staged bytes are gone, so it must be uploaded again.',
  },
  IMAGE_NO_CHECKSUM: {
    status: 409,
    retryable: false,
    description:
      'The image has no recorded checksum (a file a scan found, or one whose size changed), so a copy of it could not be verified nor later builds compared with it; verifying it (POST /images/{id}/verify, `quantix images verify`) records one.',
  },
  IMAGE_FILE_MISMATCH: {
    status: 409,
    retryable: false,
    description:
      "The image's file, read whole by a verify, does not have the image's recorded checksum (changed by hand, or damaged): the image is in error and no VM is made from it until a verify finds the recorded bytes again, accepts the file's, or a retry downloads it again.",
  },
  IMAGE_FILE_CHANGED: {
    status: 409,
    retryable: false,
    description:
      "The image's file on its node is no longer the size its row records (changed since it was verified); rescan the pool or download it again.",
  },
  RANGE_NOT_SATISFIABLE: {
    status: 416,
    retryable: false,
    description:
      'A Range header that asks for no byte of the file (it starts at or past the end); Content-Range gives the size.',
  },
  DELETE_FAILED: {
    status: 502,
    retryable: true,
    description: "An image's file could not be removed from its pool; the image stays, in error, until a retry.",
  },
  // The control plane's doors (authentication, limits, the machine it runs on).
  UNAUTHORIZED: {
    status: 401,
    retryable: false,
    description: 'No credentials, or wrong ones: the API token, a node token, an upload token.',
  },
  PAYLOAD_TOO_LARGE: {
    status: 413,
    retryable: false,
    description: 'A request (body, message, header) is larger than its limit; nothing was kept.',
  },
  UNSUPPORTED_MEDIA_TYPE: {
    status: 415,
    retryable: false,
    description: 'A body of a media type the route does not take.',
  },
  POOL_ROOT_NOT_ALLOWED: {
    status: 400,
    retryable: false,
    description:
      "A pool root that may not be used: relative, not normalized, a system directory, or outside the operator's allowed pool roots.",
  },
  POOL_ROOT_OVERLAPS: {
    status: 409,
    retryable: false,
    description:
      "A pool root that is another pool's root, lies inside it or contains it, on a node both pools are assigned to: a file there would be both pools' (`details.overlaps` names the other pool).",
  },
  DATA_DIR_LOCKED: {
    status: 409,
    retryable: true,
    description: 'The data directory is in use by another process (`details.pid`).',
  },
  DATA_DIR_INSECURE: {
    status: 500,
    retryable: false,
    description: 'The data directory can be written by other users (group- or world-writable).',
  },
  INSUFFICIENT_CAPACITY: {
    status: 422,
    retryable: false,
    description: 'The node cannot give what was asked (memory, CPUs, disk); `details` has asked and available.',
  },
  NODE_BUSY: {
    status: 503,
    retryable: true,
    description: 'A node sends more than the control plane takes from it at once; it should slow down.',
  },
  INTERNAL_ERROR: {
    status: 500,
    retryable: false,
    description: 'Something failed that has no code of its own (a bug, an unexpected library error).',
  },
});

/** A code of the core (the union of ErrorCode's values). Plugins' codes are QuantixErrorCode. */
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

export interface QuantixErrorOptions {
  details?: Record<string, unknown>;
  cause?: unknown;
}

export class QuantixError extends Error {
  override readonly name = 'QuantixError';
  /** A registered code: the core's ErrorCode or one a plugin defined with defineErrorCodes. */
  readonly code: QuantixErrorCode;
  readonly details: Record<string, unknown>;

  constructor(code: QuantixErrorCode, message: string, options: QuantixErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.details = options.details ?? {};
  }

  toJSON(): { code: QuantixErrorCode; message: string; details: Record<string, unknown> } {
    return { code: this.code, message: this.message, details: this.details };
  }
}

/** Type guard that also works across two copies of this package (bundled ESM and CJS). */
export function isQuantixError(error: unknown, code?: string): error is QuantixError {
  if (typeof error !== 'object' || error === null) return false;
  const candidate = error as { name?: unknown; code?: unknown };
  if (candidate.name !== 'QuantixError' || typeof candidate.code !== 'string') return false;
  return code === undefined || candidate.code === code;
}

/**
 * Whether trying again later can help: the error's own `details.retryable` when it says (a 404 is
 * final, a reset connection is not, though both are DOWNLOAD_FAILED), else its code's flag in the
 * registry; false for anything else.
 */
export function isRetryableError(error: unknown): boolean {
  if (!isQuantixError(error)) return false;
  const own = error.details.retryable;
  if (typeof own === 'boolean') return own;
  return errorCodeInfo(error.code)?.retryable ?? false;
}
