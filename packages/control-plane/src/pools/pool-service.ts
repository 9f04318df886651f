import { isDeepStrictEqual } from 'node:util';
import {
  checkPoolDefinition,
  ErrorCode,
  findOverlappingPool,
  type NewStoragePool,
  newId,
  type PoolNodeState,
  type PoolRootPolicy,
  type PoolTypeDefinition,
  poolRootOverlaps,
  poolRootsOf,
  QuantixError,
  type Repositories,
  type StoragePool,
  type StoragePoolPatch,
  validateNewPool,
  validatePoolPatch,
} from '@quantix/core';
import type { PoolFanout } from '../replicas/pool-fanout.js';
import { NAMED_IN_REFUSALS, someNamed } from '../words.js';

/** A pool with what each node said about it. */
export type PoolWithStates = StoragePool & { nodeStates: PoolNodeState[] };

/**
 * Pool definitions: every change checked (a known type, a config its schema accepts, roots the
 * policy allows — the node checks again), stored, and pushed to every connected node at once,
 * whichever replica holds it.
 */
export class PoolService {
  constructor(
    private readonly options: {
      repositories: Repositories;
      /** Tells every node of every replica that a pool changed (PoolFanout). */
      fanout: Pick<PoolFanout, 'changed'>;
      /** The pool types the control plane knows (the storage plugins' PoolTypeToken). */
      poolTypes: readonly PoolTypeDefinition[];
      /** Where pool roots may be. */
      poolRoots: PoolRootPolicy;
    },
  ) {}

  async list(): Promise<PoolWithStates[]> {
    const { pools } = this.options.repositories;
    const [all, states] = await Promise.all([pools.list(), pools.listNodeStates({})]);
    return all.map((pool) => ({ ...pool, nodeStates: states.filter((s) => s.poolId === pool.id) }));
  }

  async get(poolId: string): Promise<PoolWithStates> {
    const { pools } = this.options.repositories;
    return { ...(await pools.require(poolId)), nodeStates: await pools.listNodeStates({ poolId }) };
  }

  async create(input: NewStoragePool): Promise<PoolWithStates> {
    // The id first: an NFS pool's default mount point is named after it.
    const id = input.id ?? newId();
    const valid = validateNewPool({ ...input, id }); // the common fields first (name, id, …), then the config
    const { roots } = this.check({ id, type: input.type, config: input.config ?? {} });
    await this.checkApart({ ...valid, id, roots });
    const pool = await this.options.repositories.pools.create({ ...input, id });
    await this.options.fanout.changed(pool.id);
    return this.get(pool.id);
  }

  async update(
    poolId: string,
    patch: StoragePoolPatch,
    options: { expectedVersion?: number } = {},
  ): Promise<PoolWithStates> {
    if (patch.config !== undefined || patch.nodeIds !== undefined) {
      const valid = validatePoolPatch(patch);
      const current = await this.options.repositories.pools.require(poolId);
      const next = { ...current, ...valid };
      // A new config is checked against the policy; the current one stays where it was allowed.
      const roots =
        valid.config !== undefined
          ? this.check({ id: current.id, type: current.type, config: valid.config }).roots
          : (poolRootsOf(this.options.poolTypes, current)?.roots ?? []);
      await this.checkApart({ ...next, roots });
      const moved = valid.config !== undefined && !isDeepStrictEqual(valid.config, current.config);
      // Moved, it changes place on every node it is on; else only the nodes it would leave.
      await this.refuseWhileVmsUseIt(current, {
        nodeIds: moved ? current.nodeIds : current.nodeIds.filter((nodeId) => !next.nodeIds.includes(nodeId)),
        why: moved ? 'its place cannot change under them' : 'it cannot leave their node(s)',
      });
    }
    await this.options.repositories.pools.update(poolId, patch, options);
    await this.options.fanout.changed(poolId);
    return this.get(poolId);
  }

  /** Deletes a pool's definition (its files stay): IN_USE, naming some, while images are recorded in it. */
  async delete(poolId: string): Promise<void> {
    const { repositories } = this.options;
    const pool = await repositories.pools.require(poolId);
    // Named here; the database's foreign key still refuses an image recorded meanwhile.
    const count = await repositories.images.count({ poolId });
    if (count > 0) {
      const named = await repositories.images.list({ poolId, limit: NAMED_IN_REFUSALS });
      throw new QuantixError(
        ErrorCode.IN_USE,
        `Pool ${pool.name} holds ${count} image(s): ${someNamed(
          named.map((image) => image.name),
          count,
        )}; delete them first (a delete with keepFile forgets an image and leaves its file)`,
        { details: { poolId, images: count } },
      );
    }
    await repositories.pools.delete(poolId);
    await this.options.fanout.changed(poolId);
  }

  /**
   * IN_USE, naming some, while VMs on `nodeIds` have a disk or a CD-ROM in the pool: unassigned
   * from their node (or moved), the pool would be let go there and their files be out of Quantix's
   * reach — a VM could not be deleted with its disks, nor its ISO be found again.
   */
  private async refuseWhileVmsUseIt(pool: StoragePool, change: { nodeIds: readonly string[]; why: string }) {
    if (change.nodeIds.length === 0) return;
    const vms = (await this.options.repositories.vms.list({ nodeId: change.nodeIds })).filter((vm) =>
      [...vm.disks, ...vm.cdroms].some((file) => file.poolId === pool.id),
    );
    if (vms.length === 0) return;
    throw new QuantixError(
      ErrorCode.IN_USE,
      `Pool ${pool.name} holds disks or ISOs of ${vms.length} VM(s): ${someNamed(vms.map((vm) => vm.name))}; ${change.why} — delete those VMs (or eject their ISO) first`,
      { details: { poolId: pool.id, vms: vms.map((vm) => ({ id: vm.id, name: vm.name })) } },
    );
  }

  /** INVALID_INPUT naming the field, or POOL_ROOT_NOT_ALLOWED; nodes check again before use. */
  private check(pool: { id: string; type: string; config: unknown }): { roots: readonly string[] } {
    return checkPoolDefinition({ types: this.options.poolTypes, policy: this.options.poolRoots, pool });
  }

  /**
   * POOL_ROOT_OVERLAPS when the pool would share a directory with another pool on a node both are
   * assigned to (a pool assigned nowhere shares nothing yet). By spelling: a node compares the
   * real paths again (a symbolic link to another pool) and refuses the newer pool there.
   */
  private async checkApart(pool: { id: string; name: string; nodeIds: readonly string[]; roots: readonly string[] }) {
    if (pool.nodeIds.length === 0 || pool.roots.length === 0) return;
    for (const other of await this.options.repositories.pools.list()) {
      const shared = other.nodeIds.find((nodeId) => pool.nodeIds.includes(nodeId));
      if (shared === undefined || other.id === pool.id) continue;
      const otherRoots = poolRootsOf(this.options.poolTypes, other);
      const overlap = otherRoots && findOverlappingPool(pool, [otherRoots]);
      if (overlap) {
        const hostname = (await this.options.repositories.nodes.get(shared))?.hostname;
        throw poolRootOverlaps(pool, overlap, { id: shared, hostname });
      }
    }
  }
}
