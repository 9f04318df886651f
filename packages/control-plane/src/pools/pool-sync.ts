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
   *
   * Reports arriving while earlier ones are being stored are stored together, in a handful of
   * statements for the whole batch: after a pool change hundreds of nodes acknowledge at once,
   * and a transaction per message would make the last wait for all the others.
   */
  recordReport(nodeId: string, report: { generation: number; pools: readonly PoolReport[] }): Promise<PoolNodeState[]> {
    return new Promise((resolve, reject) => {
      this.waitingReports.push({ nodeId, report, resolve, reject });
      this.flushingReports ??= this.flushReports();
    });
  }

  private readonly waitingReports: WaitingReport[] = [];
  private flushingReports: Promise<void> | undefined;

  private async flushReports(): Promise<void> {
    try {
      while (this.waitingReports.length > 0) {
        const batch = this.waitingReports.splice(0);
        try {
          await this.storeReports(batch);
        } catch {
          // One bad report (a pool deleted meanwhile, say) must not fail the others: one by one.
          for (const waiting of batch) await this.storeReports([waiting]).catch(waiting.reject);
        }
      }
    } finally {
      this.flushingReports = undefined;
    }
  }

  private async storeReports(batch: readonly WaitingReport[]): Promise<void> {
    const { pools } = this.options.repositories;
    const current = await pools.currentGeneration();
    const valid: WaitingReport[] = [];
    for (const waiting of batch) {
      if (waiting.report.generation <= current) {
        valid.push(waiting);
        continue;
      }
      waiting.reject(
        new QuantixError(
          ErrorCode.PROTOCOL_INVALID_MESSAGE,
          `Node ${waiting.nodeId} reported pool generation ${waiting.report.generation}, newer than the current ${current}; refused`,
          { details: { nodeId: waiting.nodeId, generation: waiting.report.generation, current } },
        ),
      );
    }
    if (valid.length === 0) return;
    const assigned = new Set<string>();
    for (const pool of await pools.list()) for (const nodeId of pool.nodeIds) assigned.add(`${pool.id}\0${nodeId}`);
    const inputs = valid.flatMap(({ nodeId, report }) =>
      report.pools
        .filter((item) => assigned.has(`${item.poolId}\0${nodeId}`))
        .map((item) => ({
          poolId: item.poolId,
          nodeId,
          status: item.status,
          mountPath: item.mountPath,
          capacityBytes: item.capacityBytes,
          availableBytes: item.availableBytes,
          lastError: item.status === 'active' ? null : item.reason,
          syncedGeneration: report.generation,
        })),
    );
    const stored = await pools.setNodeStates(inputs);
    await pools.deleteUnassignedNodeStates([...new Set(valid.map((waiting) => waiting.nodeId))]);
    const storedFor = (nodeId: string) => stored.filter((state) => state.nodeId === nodeId);
    for (const { nodeId, report, resolve } of valid) {
      for (const item of report.pools) {
        if (!assigned.has(`${item.poolId}\0${nodeId}`)) continue;
        this.options.events?.emit('pool.state', {
          poolId: item.poolId,
          nodeId,
          status: item.status,
          reason: item.reason,
        });
      }
      this.options.events?.emit('pool.synced', { nodeId, generation: report.generation });
      resolve(storedFor(nodeId));
    }
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

interface WaitingReport {
  nodeId: string;
  report: { generation: number; pools: readonly PoolReport[] };
  resolve(states: PoolNodeState[]): void;
  reject(error: unknown): void;
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
