import type { EventBus, PoolNodeState, PoolReport, ProtocolPool, Repositories, StoragePool } from '@quantix/core';
import { desiredPoolsFingerprint, ErrorCode, QuantixError } from '@quantix/core';
import { Batcher } from '../hub/batcher.js';

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
    const { generation: current, pools: all } = snapshot ?? (await this.readPools());
    const valid = batch.filter((waiting) => waiting.report.generation <= current);
    // Only the nodes of this batch: a pool shared by thousands is not walked whole for each batch.
    const reporting = new Set(valid.map((waiting) => waiting.nodeId));
    const assigned = new Set<string>();
    const poolsOf = new Map<string, StoragePool[]>();
    for (const pool of all) {
      for (const nodeId of pool.nodeIds) {
        if (!reporting.has(nodeId)) continue;
        assigned.add(`${pool.id}\0${nodeId}`);
        const list = poolsOf.get(nodeId);
        if (list) list.push(pool);
        else poolsOf.set(nodeId, [pool]);
      }
    }
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
        if (!assigned.has(`${item.poolId}\0${nodeId}`)) continue;
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
  pools: StoragePool[];
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

/** Each node's desired set in `snapshot`; nodes mostly share their sets, and each distinct set is hashed once. */
export function desiredSetsOf(snapshot: PoolsSnapshot, nodeIds: readonly string[]): Map<string, DesiredPools> {
  const { generation } = snapshot;
  const assigned = new Map<string, ProtocolPool[]>(nodeIds.map((nodeId) => [nodeId, []]));
  for (const pool of snapshot.pools) {
    const definition = desiredPool(pool);
    for (const nodeId of pool.nodeIds) assigned.get(nodeId)?.push(definition);
  }
  const fingerprints = new Map<string, string>();
  const sets = new Map<string, DesiredPools>();
  for (const [nodeId, definitions] of assigned) {
    const key = definitions.map((d) => d.id).join('\0');
    let fingerprint = fingerprints.get(key);
    if (fingerprint === undefined) {
      fingerprint = desiredPoolsFingerprint(definitions);
      fingerprints.set(key, fingerprint);
    }
    sets.set(nodeId, { generation, pools: definitions, fingerprint });
  }
  return sets;
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
