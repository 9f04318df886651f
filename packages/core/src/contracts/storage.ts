import type { PoolContentType, StoragePool } from '../domain/pool.js';

/**
 * One StorageBackend per pool type ('local', 'nfs', …), after libvirt's virStorageBackend:
 * `status` and `list` are required, every other operation is optional. A backend that lacks
 * an operation simply leaves it out; the core (see `callBackend`) then reports
 * UNSUPPORTED_OPERATION, so backends can ship partially and callers get one error code.
 *
 * Every method takes one options object and returns one result object. Paths inside a pool
 * are relPaths; a backend resolves them inside the pool root and refuses any that escape it
 * (PATH_ESCAPES_POOL).
 */
export interface StorageBackend {
  /** The pool type this backend serves; matches StoragePool.type. */
  readonly type: string;

  /** Current state of the pool on this node: available or not (with why), capacity, root path. */
  status(options: { pool: StoragePool }): Promise<PoolStatus>;

  /** Files of one content type in the pool, recursively up to the backend's depth limit. */
  list(options: { pool: StoragePool; content: PoolContentType; signal?: AbortSignal }): Promise<PoolListing>;

  /** Makes the pool usable on this node: create the directory, mount the export, … */
  activate?(options: { pool: StoragePool }): Promise<PoolStatus>;

  /** Undoes activate where that makes sense (unmount). Never deletes data. */
  deactivate?(options: { pool: StoragePool }): Promise<void>;

  /** Whether the pool's server answers, within a bounded time (NFS: showmount/rpcinfo). */
  checkConnection?(options: { pool: StoragePool; timeoutMs?: number }): Promise<ConnectionCheck>;

  /** Pools of this type that exist on the node without being defined (e.g. NFS mounts). */
  discover?(options: { pools: readonly StoragePool[] }): Promise<DiscoveredPool[]>;

  /** Resolves relPath to an absolute path inside the pool root; refuses escapes. */
  resolve?(options: { pool: StoragePool; relPath: string }): Promise<string>;

  /** Creates an empty file (or reserves space) at relPath; refuses to overwrite. */
  allocate?(options: { pool: StoragePool; relPath: string; sizeBytes?: number }): Promise<PoolFile>;

  /** Removes the file at relPath. */
  remove?(options: { pool: StoragePool; relPath: string }): Promise<void>;
}

export type StorageOperation = Exclude<keyof StorageBackend, 'type'>;

export interface PoolStatus {
  available: boolean;
  /** Why the pool is unavailable, as a person can act on it; null when available. */
  reason: string | null;
  /** Absolute root of the pool on this node, when known. */
  rootPath: string | null;
  capacityBytes: number | null;
  availableBytes: number | null;
  usedBytes: number | null;
}

export interface PoolFile {
  relPath: string;
  sizeBytes: number;
  modifiedAt: Date;
}

export interface PoolListing {
  files: PoolFile[];
  /** Directories skipped because they were deeper than the limit, unreadable, etc. */
  skipped: { relPath: string; reason: string }[];
}

export interface ConnectionCheck {
  reachable: boolean;
  reason: string | null;
  latencyMs: number;
}

export interface DiscoveredPool {
  /** The defined pool this matches, if any. */
  poolId: string | null;
  type: string;
  rootPath: string;
  config: Record<string, unknown>;
}
