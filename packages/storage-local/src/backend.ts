import type { PoolContentType, PoolFile, PoolListing, PoolStatus, StorageBackend, StoragePool } from '@quantix/core';
import { type DirectorySettings, parseLocalPoolConfig } from './config.js';
import {
  allocatePoolFile,
  assertWritable,
  directoryStatus,
  ensureDirectory,
  listPoolFiles,
  removePoolFile,
} from './directory.js';
import { resolveInPool } from './paths.js';

/** Where a pool's files are on this node, and how to treat them. */
export interface PoolDirectory extends DirectorySettings {
  root: string;
}

export interface LocalStorageBackendOptions {
  /** Bound on statfs in status(), so a directory on a hung mount cannot hang the caller. Default 10 s. */
  statfsTimeoutMs?: number;
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

  constructor(options: LocalStorageBackendOptions = {}) {
    this.statfsTimeoutMs = options.statfsTimeoutMs ?? DEFAULT_STATFS_TIMEOUT_MS;
  }

  /** The pool's directory on this node. A subclass throws POOL_UNAVAILABLE when it has none yet. */
  protected async poolDirectory(pool: StoragePool): Promise<PoolDirectory> {
    const { path, maxDepth, readOnly } = parseLocalPoolConfig(pool);
    return { root: path, maxDepth, readOnly };
  }

  async status({ pool }: { pool: StoragePool }): Promise<PoolStatus> {
    const { path } = parseLocalPoolConfig(pool);
    return directoryStatus(path, { timeoutMs: this.statfsTimeoutMs });
  }

  /** Creates the directory when `create` is set, and proves it writable unless `readOnly`. */
  async activate({ pool }: { pool: StoragePool }): Promise<PoolStatus> {
    const config = parseLocalPoolConfig(pool);
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
    return listPoolFiles(root, { content, maxDepth, signal });
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
