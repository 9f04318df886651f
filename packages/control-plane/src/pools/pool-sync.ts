import type { EventBus, PoolNodeState, PoolReport, ProtocolPool, Repositories, StoragePool } from '@quantix/core';
import { desiredPoolsFingerprint, ErrorCode, QuantixError } from '@quantix/core';
import { Batcher } from '../hub/batcher.js';

/** A node's desired set. Nodes with the same pools share one (desiredSetsOf): read it, never change it. */
export interface DesiredPools {
  generation: number;
  pools: ProtocolPool[];
  /** desiredPoolsFingerprint(pools): what a node that holds this set says in its hello. */
  fingerprint: string;
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
    return (await this.desiredPoolsForEach([nodeId])).get(nodeId) as DesiredPools;
  }

  /**
   * The desired sets of many nodes from two queries (the generation, then every pool), not two
   * per node: what a pool change costs a replica holding hundreds of nodes.
   */
  async desiredPoolsForEach(nodeIds: readonly string[]): Promise<Map<string, DesiredPools>> {
    return desiredSetsOf(await this.readPools(), nodeIds);
  }

  /**
   * The generation, then every pool. Generation first: if a change lands in between, the pools
   * are newer than the number, and the change's own push (with a higher number) follows; a node
   * never sees an older set as newer. The pools are read again only when the generation moved:
   * every change of a pool bumps it in the same transaction, so pools read after generation g are
   * exactly the pools while it is still g — and a storm's batches (a pool shared by 2,000 nodes,
   * its node list each time) skip the read.
   */
  async readPools(): Promise<PoolsSnapshot> {
    const { pools } = this.options.repositories;
    const generation = await pools.currentGeneration();
    if (this.lastSnapshot?.generation === generation) return this.lastSnapshot;
    const snapshot = { generation, pools: await pools.list() };
    this.lastSnapshot = snapshot;
    return snapshot;
  }

  private lastSnapshot: PoolsSnapshot | undefined;

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
  async recordReport(nodeId: string, report: { generation: number; pools: readonly PoolReport[] }): Promise<void> {
    await this.reports.add({ nodeId, report });
  }

  /** recordReport, and the pools assigned to the node as the report was stored (read with it, not again). */
  recordReportWithPools(
    nodeId: string,
    report: { generation: number; pools: readonly PoolReport[] },
  ): Promise<StoredReport> {
    return this.reports.add({ nodeId, report });
  }

  private readonly reports = new Batcher<WaitingReport, StoredReport>((batch) => this.recordReports(batch));

  /**
   * The reports of many nodes stored together (what recordReport batches), checked against
   * `snapshot` when the caller read the pools just before (a batch of hellos), else against the
   * pools read now. One result per report, an Error for a report refused.
   */
  async recordReports(batch: readonly WaitingReport[], snapshot?: PoolsSnapshot): Promise<(StoredReport | Error)[]> {
    const { pools } = this.options.repositories;
    const read = snapshot ?? (await this.readPools());
    const current = read.generation;
    const { poolsOf } = indexOf(read);
    const assigned = (nodeId: string, poolId: string) =>
      poolsOf.get(nodeId)?.some((pool) => pool.id === poolId) === true;
    const valid = batch.filter((waiting) => waiting.report.generation <= current);
    const inputs = valid.flatMap(({ nodeId, report }) =>
      report.pools
        .filter((item) => assigned(nodeId, item.poolId))
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
    await pools.setNodeStates(inputs);
    // After the upsert: a pool unassigned since the list above loses the state just written too.
    await pools.deleteUnassignedNodeStates([...new Set(valid.map((waiting) => waiting.nodeId))]);
    return batch.map(({ nodeId, report }) => {
      if (report.generation > current) {
        return new QuantixError(
          ErrorCode.PROTOCOL_INVALID_MESSAGE,
          `Node ${nodeId} reported pool generation ${report.generation}, newer than the current ${current}; refused`,
          { details: { nodeId, generation: report.generation, current } },
        );
      }
      for (const item of report.pools) {
        if (!assigned(nodeId, item.poolId)) continue;
        this.options.events?.emit('pool.state', {
          poolId: item.poolId,
          nodeId,
          status: item.status,
          reason: item.reason,
        });
      }
      this.options.events?.emit('pool.synced', { nodeId, generation: report.generation });
      return { pools: poolsOf.get(nodeId) ?? [] };
    });
  }

  /**
   * The node went away: what it said about its pools may no longer hold, so each of its pool
   * states becomes `unknown` (mount path, capacity and the time of its last check are kept).
   */
  async markNodeUnknown(nodeId: string, reason: string): Promise<number> {
    return (await this.markNodesUnknown([{ nodeId, reason }])).length;
  }

  /** markNodeUnknown for many nodes, in one statement; returns the states it changed. */
  async markNodesUnknown(nodes: readonly { nodeId: string; reason: string }[]): Promise<PoolNodeState[]> {
    const marked = await this.options.repositories.pools.markNodeStatesUnknown(nodes);
    for (const state of marked) {
      this.options.events?.emit('pool.state', {
        poolId: state.poolId,
        nodeId: state.nodeId,
        status: 'unknown',
        reason: state.lastError ?? '',
      });
    }
    return marked;
  }
}

/** What storing a report gives back: the node's pools as they were read then (listNodeStates reads the states). */
export interface StoredReport {
  pools: readonly StoragePool[];
}

/** The pools as one moment saw them: the generation, read first, and every pool. */
export interface PoolsSnapshot {
  generation: number;
  pools: readonly StoragePool[];
}

export interface WaitingReport {
  nodeId: string;
  report: { generation: number; pools: readonly PoolReport[] };
}

/**
 * What the batches reading one snapshot share, worked out once: each node's pools, and each
 * node's desired set — one object per distinct set, hashed once. A snapshot lasts until the
 * generation moves, so a reconnect storm's batches of hellos and reports only look nodes up
 * (they each walked every pool's node list, 2,000 ids for a pool shared by 2,000 nodes).
 */
interface SnapshotIndex {
  readonly poolsOf: ReadonlyMap<string, readonly StoragePool[]>;
  readonly setOf: Map<string, DesiredPools>;
  /** Distinct sets, by their pool ids. */
  readonly sets: Map<string, DesiredPools>;
}

const indexes = new WeakMap<PoolsSnapshot, SnapshotIndex>();

function indexOf(snapshot: PoolsSnapshot): SnapshotIndex {
  let index = indexes.get(snapshot);
  if (!index) {
    const poolsOf = new Map<string, StoragePool[]>();
    for (const pool of snapshot.pools) {
      for (const nodeId of pool.nodeIds) {
        const list = poolsOf.get(nodeId);
        if (list) list.push(pool);
        else poolsOf.set(nodeId, [pool]);
      }
    }
    index = { poolsOf, setOf: new Map(), sets: new Map() };
    indexes.set(snapshot, index);
  }
  return index;
}

/** Each node's desired set in `snapshot` (the pools in snapshot order); nodes with the same pools share one. */
export function desiredSetsOf(snapshot: PoolsSnapshot, nodeIds: readonly string[]): Map<string, DesiredPools> {
  const index = indexOf(snapshot);
  const result = new Map<string, DesiredPools>();
  for (const nodeId of nodeIds) {
    let set = index.setOf.get(nodeId);
    if (!set) {
      const pools = index.poolsOf.get(nodeId) ?? [];
      const key = pools.map((pool) => pool.id).join('\0');
      set = index.sets.get(key);
      if (!set) {
        const definitions = pools.map(desiredPool);
        set = {
          generation: snapshot.generation,
          pools: definitions,
          fingerprint: desiredPoolsFingerprint(definitions),
        };
        index.sets.set(key, set);
      }
      index.setOf.set(nodeId, set);
    }
    result.set(nodeId, set);
  }
  return result;
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
