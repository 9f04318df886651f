import { z } from 'zod';
import { ErrorCode, QuantixError } from '../errors.js';
import { byteCountSchema, idSchema, labelsSchema, nameSchema, parseOrThrow } from './validation.js';

export const POOL_CONTENT_TYPES = ['iso', 'images'] as const;
export type PoolContentType = (typeof POOL_CONTENT_TYPES)[number];

/**
 * A storage pool definition, the same for every node. `type` names the StorageBackend
 * ('local', 'nfs', …) and `config` is that backend's own settings (path; server, export, …).
 */
export interface StoragePool {
  id: string;
  name: string;
  description: string;
  type: string;
  config: Record<string, unknown>;
  contentTypes: PoolContentType[];
  /** True when every assigned node sees the same files (NFS); false for node-local directories. */
  shared: boolean;
  /** Nodes this pool is assigned to; the control plane pushes it to exactly these. */
  nodeIds: string[];
  labels: Record<string, string>;
  version: number;
  createdAt: Date;
  updatedAt: Date;
}

/**
 * `unknown`: the node is not connected, so what it last said may no longer hold (set by the
 * control plane when the node goes away; the node's next report replaces it).
 */
export const POOL_NODE_STATUSES = ['pending', 'active', 'inactive', 'unavailable', 'error', 'unknown'] as const;
export type PoolNodeStatus = (typeof POOL_NODE_STATUSES)[number];

/** What one node reports about one pool; kept apart from the definition. */
export interface PoolNodeState {
  poolId: string;
  nodeId: string;
  status: PoolNodeStatus;
  /** Where the pool's root is on that node (a directory, or the NFS mount point found there). */
  mountPath: string | null;
  capacityBytes: number | null;
  availableBytes: number | null;
  lastError: string | null;
  /** The pool-set generation the node had applied when it reported this. */
  syncedGeneration: number;
  checkedAt: Date;
  updatedAt: Date;
}

const poolTypeSchema = z
  .string()
  .min(1)
  .max(64)
  .regex(/^[a-z][a-z0-9-]*$/, 'must be a lower-case backend name such as local or nfs');

const contentTypesSchema = z
  .array(z.enum(POOL_CONTENT_TYPES))
  .min(1, `must name what the pool holds: ${POOL_CONTENT_TYPES.join(', ')}, or both`);

const newPoolSchema = z
  .object({
    id: idSchema.optional(),
    name: nameSchema,
    description: z.string().max(10_000).default(''),
    type: poolTypeSchema,
    config: z.record(z.string(), z.unknown()).default({}),
    contentTypes: contentTypesSchema.default(['iso', 'images']),
    shared: z.boolean().default(false),
    nodeIds: z.array(idSchema).default([]),
    labels: labelsSchema.default({}),
  })
  .strict();

export type NewStoragePool = z.input<typeof newPoolSchema>;
export type ValidNewStoragePool = z.output<typeof newPoolSchema>;

const poolPatchSchema = z
  .object({
    name: nameSchema,
    description: z.string().max(10_000),
    config: z.record(z.string(), z.unknown()),
    contentTypes: contentTypesSchema,
    shared: z.boolean(),
    nodeIds: z.array(idSchema),
    labels: labelsSchema,
  })
  .partial()
  .strict();

export type StoragePoolPatch = z.input<typeof poolPatchSchema>;
export type ValidStoragePoolPatch = z.output<typeof poolPatchSchema>;

/**
 * A pool that is not shared is one directory on one node: its files differ from node to
 * node, so one definition cannot stand for several nodes (define one pool per node instead,
 * as libvirt does). Shared pools (NFS) may be assigned to any number of nodes.
 */
export function assertPoolAssignment(pool: { shared: boolean; nodeIds: readonly string[] }): void {
  if (!pool.shared && pool.nodeIds.length > 1) {
    throw new QuantixError(
      ErrorCode.INVALID_INPUT,
      `Invalid storage pool: a pool that is not shared can be assigned to one node only (got ${pool.nodeIds.length}); define one pool per node, or mark it shared`,
      { details: { issues: [{ path: 'nodeIds', message: 'more than one node for a pool that is not shared' }] } },
    );
  }
}

export function validateNewPool(input: NewStoragePool): ValidNewStoragePool {
  const parsed = parseOrThrow(newPoolSchema, input, 'storage pool');
  const pool = { ...parsed, nodeIds: [...new Set(parsed.nodeIds)], contentTypes: [...new Set(parsed.contentTypes)] };
  assertPoolAssignment(pool);
  return pool;
}

export function validatePoolPatch(patch: StoragePoolPatch): ValidStoragePoolPatch {
  const valid = parseOrThrow(poolPatchSchema, patch, 'storage pool update');
  if (valid.nodeIds) valid.nodeIds = [...new Set(valid.nodeIds)];
  if (valid.contentTypes) valid.contentTypes = [...new Set(valid.contentTypes)];
  return valid;
}

const poolNodeStateSchema = z
  .object({
    poolId: idSchema,
    nodeId: idSchema,
    status: z.enum(POOL_NODE_STATUSES),
    mountPath: z.string().min(1).nullable().default(null),
    capacityBytes: byteCountSchema.nullable().default(null),
    availableBytes: byteCountSchema.nullable().default(null),
    lastError: z.string().nullable().default(null),
    syncedGeneration: z.number().int().nonnegative().default(0),
    checkedAt: z.date().optional(),
  })
  .strict();

export type PoolNodeStateInput = z.input<typeof poolNodeStateSchema>;
export type ValidPoolNodeStateInput = z.output<typeof poolNodeStateSchema>;

export function validatePoolNodeState(input: PoolNodeStateInput): ValidPoolNodeStateInput {
  return parseOrThrow(poolNodeStateSchema, input, 'pool node state');
}
