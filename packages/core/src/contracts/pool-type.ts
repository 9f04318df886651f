import type { z } from 'zod';

/**
 * What a storage plugin says about its pool type, apart from any backend: how its config is
 * spelled and where on a node its files live. The control plane validates every pool definition
 * with it (it holds no backend and no node's file system); a node uses it to check a pool's
 * roots before it activates anything. Provided through PoolTypeToken, one per pool type.
 */
export interface PoolTypeDefinition<Config = unknown> {
  /** The pool type ('local', 'nfs', …); matches StoragePool.type and the backend's type. */
  readonly type: string;
  /** Schema of StoragePool.config. Strict: a misspelled or unknown key is refused, never ignored. */
  readonly configSchema: z.ZodType<Config>;
  /**
   * The directories on a node that hold the pool's files (a local pool's path; the mount point an
   * NFS pool is mounted at), each checked against the pool-root policy. Pure: it reads no file
   * system, so the control plane and the node compute the same roots from the same config.
   */
  roots(config: Config, poolId: string): string[];
}
