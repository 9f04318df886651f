import {
  checkPoolRootShape,
  type PoolTypeDefinition,
  parseOrThrow,
  poolRootPathSchema,
  type StoragePool,
} from '@quantix/core';
import { z } from 'zod';

/** Directory levels below the root that a listing descends by default. */
export const DEFAULT_MAX_DEPTH = 8;
/** The deepest a listing may be configured to go; deeper trees are a configuration mistake. */
export const MAX_MAX_DEPTH = 64;

/**
 * A directory on the node named in a pool config. Any non-empty string is read; whether it is an
 * absolute, normalized path inside the allowed pool roots is judged by core's pool-root policy
 * (POOL_ROOT_NOT_ALLOWED), on the control plane when the pool is defined and on the node before
 * it is used. Without a policy, the backend still refuses a relative or unnormalized path.
 */
export const directoryPathSchema = poolRootPathSchema;

/** Settings every directory-backed pool has, whatever puts the directory there. */
export const directorySettingsSchema = z.object({
  /** Directory levels below the root that listings descend (0: the root only). */
  maxDepth: z.number().int().min(0).max(MAX_MAX_DEPTH).default(DEFAULT_MAX_DEPTH),
  /** A read-only pool (an ISO library on a read-only export) is not probed for writing on activate. */
  readOnly: z.boolean().default(false),
});

export type DirectorySettings = z.output<typeof directorySettingsSchema>;

/** A local pool's config. Strict: a misspelled key (`pth`, `craete`) is refused, never ignored. */
export const localPoolConfigSchema = directorySettingsSchema
  .extend({
    /** Absolute path of the pool directory on the node. */
    path: directoryPathSchema,
    /** Create the directory (and its parents) on activate when it is missing. */
    create: z.boolean().default(false),
  })
  .strict();

export type LocalPoolConfig = z.output<typeof localPoolConfigSchema>;
export type LocalPoolConfigInput = z.input<typeof localPoolConfigSchema>;

/** The pool's config as a local pool reads it; INVALID_INPUT naming each problem otherwise. */
export function parseLocalPoolConfig(pool: Pick<StoragePool, 'id' | 'config'>): LocalPoolConfig {
  const config = parseOrThrow(localPoolConfigSchema, pool.config, `config of local pool '${pool.id}'`);
  checkPoolRootShape(config.path, 'config.path');
  return config;
}

/** The 'local' pool type for the control plane and nodes: its config schema and its one root, `path`. */
export const localPoolType: PoolTypeDefinition<LocalPoolConfig> = Object.freeze({
  type: 'local',
  configSchema: localPoolConfigSchema,
  roots: (config: LocalPoolConfig) => [config.path],
});
