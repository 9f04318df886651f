import {
  checkPoolRootOnDisk,
  type PoolContentType,
  type PoolFile,
  type PoolListing,
  type PoolRootPolicy,
  type PoolStatus,
  type StorageBackend,
  type StoragePool,
} from '@quantix/core';
import { type DirectorySettings, parseLocalPoolConfig } from './config.js';
import {
  allocatePoolFile,
  assertWritable,
  directoryStatus,
  ensureDirectory,
  listPoolFiles,
  removePoolFile,
} from './directory.js';
import { DirectoryReads } from './directory-reads.js';
import { resolveInPool } from './paths.js';

/** Where a pool's files are on this node, and how to treat them. */
export interface PoolDirectory extends DirectorySettings {
  root: string;
}

export interface LocalStorageBackendOptions {
  /** Bound on statfs in status(), so a directory on a hung mount cannot hang the caller. Default 10 s. */
  statfsTimeoutMs?: number;
  /**
   * Where pool directories may be on this node. When given, a pool whose directory is outside it
   * (as written, or through a symbolic link) is refused with POOL_ROOT_NOT_ALLOWED by activate,
   * status and list, before anything is created, probed or read. A node daemon always gives one.
   */
  rootPolicy?: PoolRootPolicy;
}

export const DEFAULT_STATFS_TIMEOUT_MS = 10_000;

/**
 * Directory pools (type 'local'): `config.path` on the node is the pool. Other directory-backed
 * backends (NFS) extend this class and override only how the directory is found and made
 * available (`poolDirectory`, `activate`, `status`, …), as Proxmox's NFSPlugin builds on its
 * directory plugin; listing, resolving, allocating and removing stay here.
 */
export class LocalStorageBackend implements StorageBackend {
  readonly type: string = 'local';
  protected readonly statfsTimeoutMs: number;
  protected readonly rootPolicy: PoolRootPolicy | null;
  /** Each pool's last listing, so that a warm scan reads again only the directories that changed. */
  private readonly directoryReads = new DirectoryReads();

  constructor(options: LocalStorageBackendOptions = {}) {
    this.statfsTimeoutMs = options.statfsTimeoutMs ?? DEFAULT_STATFS_TIMEOUT_MS;
    this.rootPolicy = options.rootPolicy ?? null;
  }

  /** Refuses a pool directory outside the root policy (when there is one), following symbolic links. */
  protected async checkRoot(root: string): Promise<void> {
    if (this.rootPolicy) await checkPoolRootOnDisk(root, this.rootPolicy);
  }

  /** The pool's directory on this node. A subclass throws POOL_UNAVAILABLE when it has none yet. */
  protected async poolDirectory(pool: StoragePool): Promise<PoolDirectory> {
    const { path, maxDepth, readOnly } = parseLocalPoolConfig(pool);
    return { root: path, maxDepth, readOnly };
  }

  async status({ pool }: { pool: StoragePool }): Promise<PoolStatus> {
    const { path } = parseLocalPoolConfig(pool);
    await this.checkRoot(path);
    return directoryStatus(path, { timeoutMs: this.statfsTimeoutMs });
  }

  /** Creates the directory when `create` is set, and proves it writable unless `readOnly`. */
  async activate({ pool }: { pool: StoragePool }): Promise<PoolStatus> {
    const config = parseLocalPoolConfig(pool);
    await this.checkRoot(config.path);
    await ensureDirectory(config.path, { create: config.create });
    if (!config.readOnly) await assertWritable(config.path);
    return this.status({ pool });
  }

  /** A directory pool has nothing to undo; its files are never touched. */
  async deactivate(_options: { pool: StoragePool }): Promise<void> {}

  async list({
    pool,
    content,
    signal,
  }: {
    pool: StoragePool;
    content: PoolContentType;
    signal?: AbortSignal;
  }): Promise<PoolListing> {
    const { root, maxDepth } = await this.poolDirectory(pool);
    await this.checkRoot(root);
    return listPoolFiles(root, { content, maxDepth, signal, reads: this.directoryReads });
  }

  async resolve({ pool, relPath }: { pool: StoragePool; relPath: string }): Promise<string> {
    const { root } = await this.poolDirectory(pool);
    return resolveInPool(root, relPath);
  }

  async allocate({
    pool,
    relPath,
    sizeBytes,
  }: {
    pool: StoragePool;
    relPath: string;
    sizeBytes?: number;
  }): Promise<PoolFile> {
    const { root } = await this.poolDirectory(pool);
    return allocatePoolFile(root, relPath, sizeBytes);
  }

  async remove({ pool, relPath }: { pool: StoragePool; relPath: string }): Promise<void> {
    const { root } = await this.poolDirectory(pool);
    await removePoolFile(root, relPath);
  }
}
