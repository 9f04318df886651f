import { isAbsolute, resolve } from 'node:path';
import { parseOrThrow, type StoragePool } from '@quantix/core';
import { z } from 'zod';

/** Directory levels below the root that a listing descends by default. */
export const DEFAULT_MAX_DEPTH = 8;
/** The deepest a listing may be configured to go; deeper trees are a configuration mistake. */
export const MAX_MAX_DEPTH = 64;

export const absolutePathSchema = z
  .string()
  .min(1, 'must not be empty')
  .refine((p) => isAbsolute(p), 'must be an absolute path')
  .refine((p) => !p.includes('\0'), 'must not contain NUL')
  // One spelling per directory: no trailing slash, no `..`, no `//`.
  .transform((p) => resolve(p));

/** Settings every directory-backed pool has, whatever puts the directory there. */
export const directorySettingsSchema = z.object({
  /** Directory levels below the root that listings descend (0: the root only). */
  maxDepth: z.number().int().min(0).max(MAX_MAX_DEPTH).default(DEFAULT_MAX_DEPTH),
  /** A read-only pool (an ISO library on a read-only export) is not probed for writing on activate. */
  readOnly: z.boolean().default(false),
});

export type DirectorySettings = z.output<typeof directorySettingsSchema>;

export const localPoolConfigSchema = directorySettingsSchema.extend({
  /** Absolute path of the pool directory on the node. */
  path: absolutePathSchema,
  /** Create the directory (and its parents) on activate when it is missing. */
  create: z.boolean().default(false),
});

export type LocalPoolConfig = z.output<typeof localPoolConfigSchema>;
export type LocalPoolConfigInput = z.input<typeof localPoolConfigSchema>;

/** The pool's config as a local pool reads it; INVALID_INPUT naming each problem otherwise. */
export function parseLocalPoolConfig(pool: Pick<StoragePool, 'id' | 'config'>): LocalPoolConfig {
  return parseOrThrow(localPoolConfigSchema, pool.config, `config of local pool '${pool.id}'`);
}
