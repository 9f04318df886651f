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
  // --- @quantix/images-cloud: downloads of images from HTTP(S) sources ---
  /** The source policy refuses a URL (scheme, host, port or resolved address), before any request is sent. */
  SOURCE_NOT_ALLOWED: 'SOURCE_NOT_ALLOWED',
  /** A download failed: network error, HTTP error status, or the file could not be written. `details.retryable` says whether trying again can help. */
  DOWNLOAD_FAILED: 'DOWNLOAD_FAILED',
  /** A download was cancelled; its partial file is kept so a retry resumes it. */
  DOWNLOAD_CANCELLED: 'DOWNLOAD_CANCELLED',
  /** A download was interrupted by a restart and cannot be resumed; the message says why. */
  DOWNLOAD_INTERRUPTED: 'DOWNLOAD_INTERRUPTED',
  /** The downloaded bytes do not have the expected checksum; the partial file was deleted. */
  CHECKSUM_MISMATCH: 'CHECKSUM_MISMATCH',
  /** No expected checksum could be had: the checksum file is unreachable, malformed, or has no line for the file. */
  CHECKSUM_UNAVAILABLE: 'CHECKSUM_UNAVAILABLE',
  /** A downloaded file is not a usable disk image (qemu-img cannot read it, or it names a backing file). */
  IMAGE_INVALID: 'IMAGE_INVALID',
  // --- @quantix/images-iso: reading ISO images and uploading them into pools ---
  /** The file is zero bytes long: nothing was ever written to it. */
  ISO_EMPTY: 'ISO_EMPTY',
  /**
   * The file ends before the ISO it begins with: its volume descriptors, or the volume size they
   * declare, run past the end of the file (an interrupted copy or download).
   */
  ISO_TRUNCATED: 'ISO_TRUNCATED',
  /** The file is not an ISO 9660 image: no `CD001` volume descriptor at sector 16 (a text file or disk image named `.iso`). */
  ISO_NOT_ISO9660: 'ISO_NOT_ISO9660',
  /** The volume descriptors are damaged: no primary descriptor, no terminator within the limit, an impossible block size. */
  ISO_MALFORMED: 'ISO_MALFORMED',
  /** The file could not be read (permission denied, I/O error); `details.errno` says which. */
  ISO_UNREADABLE: 'ISO_UNREADABLE',
  /** An upload sent more bytes than its size limit; nothing was kept. */
  UPLOAD_TOO_LARGE: 'UPLOAD_TOO_LARGE',
  /** An upload's stream ended early, failed or was aborted before it was complete; nothing was kept. */
  UPLOAD_INCOMPLETE: 'UPLOAD_INCOMPLETE',
  // --- @quantix/node-runtime: SSH command runner and the libvirt hypervisor ---
  /** The SSH connection could not be made or authenticated (refused, unreachable, key rejected); retried with backoff first. */
  SSH_CONNECT_FAILED: 'SSH_CONNECT_FAILED',
  /** The host offered a key and no fingerprint is pinned for it, and trust-on-first-use was not asked for. Nothing ran. */
  SSH_HOST_KEY_UNKNOWN: 'SSH_HOST_KEY_UNKNOWN',
  /** The host's key does not match the pinned fingerprint (a changed key, or another machine). Nothing ran. */
  SSH_HOST_KEY_MISMATCH: 'SSH_HOST_KEY_MISMATCH',
  /** The hypervisor could not be reached (libvirtd down, wrong URI). */
  HYPERVISOR_UNAVAILABLE: 'HYPERVISOR_UNAVAILABLE',
  /** The hypervisor refused an operation for another reason; `details.stderr` has its words. */
  HYPERVISOR_ERROR: 'HYPERVISOR_ERROR',
  /** The operation is not valid in the current state (starting a running domain, stopping a stopped one). */
  INVALID_STATE: 'INVALID_STATE',
  // --- the control plane's doors (authentication, limits, the machine it runs on) ---
  /** No credentials, or wrong ones: the API token, a node token, an upload token. */
  UNAUTHORIZED: 'UNAUTHORIZED',
  /** A request (body, message, header) is larger than its limit; nothing was kept. */
  PAYLOAD_TOO_LARGE: 'PAYLOAD_TOO_LARGE',
  /** A body of a media type the route does not take. */
  UNSUPPORTED_MEDIA_TYPE: 'UNSUPPORTED_MEDIA_TYPE',
  /**
   * A pool root that may not be used: relative, not normalized, a system directory, or outside
   * the operator's allowed pool roots. `details.path` and `details.allowedRoots` say which.
   */
  POOL_ROOT_NOT_ALLOWED: 'POOL_ROOT_NOT_ALLOWED',
  /** The data directory is in use by another process (`details.pid`). */
  DATA_DIR_LOCKED: 'DATA_DIR_LOCKED',
  /** The data directory can be written by other users (group- or world-writable). */
  DATA_DIR_INSECURE: 'DATA_DIR_INSECURE',
  /** The node cannot give what was asked (memory, CPUs, disk); `details` has asked and available. */
  INSUFFICIENT_CAPACITY: 'INSUFFICIENT_CAPACITY',
  /** A node sends more than the control plane takes from it at once; it should slow down. */
  NODE_BUSY: 'NODE_BUSY',
  /** Something failed that has no code of its own (a bug, an unexpected library error); the message says what. */
  INTERNAL_ERROR: 'INTERNAL_ERROR',
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
