import type { EventBus, PoolNodeState, PoolReport, ProtocolPool, Repositories, StoragePool } from '@quantix/core';
import { ErrorCode, QuantixError } from '@quantix/core';

export interface DesiredPools {
  generation: number;
  pools: ProtocolPool[];
}

/**
 * The control plane's side of pool sync. A node's desired set is computed from the database
 * on every (re)connect and after every pool change, so a node that restarts loses nothing: it
 * is told again. What the node reports is stored as per-node state.
 */
export class PoolSyncService {
  constructor(private readonly options: { repositories: Repositories; events?: EventBus }) {}

  /** The full set of pools assigned to `nodeId`, with the generation it corresponds to. */
  async desiredPoolsFor(nodeId: string): Promise<DesiredPools> {
    const { pools } = this.options.repositories;
    // Generation first: if a change lands in between, the set is newer than the number, and the
    // change's own push (with a higher number) follows. A node never sees an older set as newer.
    const generation = await pools.currentGeneration();
    const assigned = await pools.list({ nodeId });
    return { generation, pools: assigned.map(desiredPool) };
  }

  /**
   * The desired sets of many nodes from two queries (the generation, then every pool), not two
   * per node: what a pool change costs a replica holding hundreds of nodes.
   */
  async desiredPoolsForEach(nodeIds: readonly string[]): Promise<Map<string, DesiredPools>> {
    const { pools } = this.options.repositories;
    const generation = await pools.currentGeneration(); // first, as in desiredPoolsFor
    const all = await pools.list();
    const sets = new Map<string, DesiredPools>(nodeIds.map((nodeId) => [nodeId, { generation, pools: [] }]));
    for (const pool of all) {
      for (const nodeId of pool.nodeIds) sets.get(nodeId)?.pools.push(desiredPool(pool));
    }
    return sets;
  }

  /**
   * Stores a node's acknowledgement of generation `generation` — every pool of a push, or only
   * the pools whose state changed since. Reports about pools that are not (or no longer)
   * assigned to the node are ignored, and state left from pools unassigned since is removed.
   * A generation newer than the current one was never pushed: PROTOCOL_INVALID_MESSAGE, and
   * nothing is stored.
   */
  async recordReport(
    nodeId: string,
    report: { generation: number; pools: readonly PoolReport[] },
  ): Promise<PoolNodeState[]> {
    const { pools } = this.options.repositories;
    const current = await pools.currentGeneration();
    if (report.generation > current) {
      throw new QuantixError(
        ErrorCode.PROTOCOL_INVALID_MESSAGE,
        `Node ${nodeId} reported pool generation ${report.generation}, newer than the current ${current}; refused`,
        { details: { nodeId, generation: report.generation, current } },
      );
    }
    const assigned = new Set((await pools.list({ nodeId })).map((p) => p.id));
    const stored: PoolNodeState[] = [];
    for (const item of report.pools) {
      if (!assigned.has(item.poolId)) continue;
      const state = await pools.setNodeState({
        poolId: item.poolId,
        nodeId,
        status: item.status,
        mountPath: item.mountPath,
        capacityBytes: item.capacityBytes,
        availableBytes: item.availableBytes,
        lastError: item.status === 'active' ? null : item.reason,
        syncedGeneration: report.generation,
      });
      stored.push(state);
      this.options.events?.emit('pool.state', {
        poolId: item.poolId,
        nodeId,
        status: item.status,
        reason: item.reason,
      });
    }
    for (const state of await pools.listNodeStates({ nodeId })) {
      if (!assigned.has(state.poolId)) await pools.deleteNodeState(state.poolId, nodeId);
    }
    this.options.events?.emit('pool.synced', { nodeId, generation: report.generation });
    return stored;
  }

  /**
   * The node went away: what it said about its pools may no longer hold, so each of its pool
   * states becomes `unknown` (mount path, capacity and the time of its last check are kept).
   */
  async markNodeUnknown(nodeId: string, reason: string): Promise<number> {
    const { pools } = this.options.repositories;
    let marked = 0;
    for (const state of await pools.listNodeStates({ nodeId })) {
      if (state.status === 'unknown') continue;
      await pools.setNodeState({
        poolId: state.poolId,
        nodeId,
        status: 'unknown',
        mountPath: state.mountPath,
        capacityBytes: state.capacityBytes,
        availableBytes: state.availableBytes,
        lastError: reason,
        syncedGeneration: state.syncedGeneration,
        checkedAt: state.checkedAt,
      });
      marked++;
      this.options.events?.emit('pool.state', { poolId: state.poolId, nodeId, status: 'unknown', reason });
    }
    return marked;
  }
}

/** A pool as a node is told it. */
function desiredPool(pool: StoragePool): DesiredPools['pools'][number] {
  return {
    id: pool.id,
    name: pool.name,
    type: pool.type,
    config: pool.config,
    contentTypes: pool.contentTypes,
    shared: pool.shared,
  };
}
