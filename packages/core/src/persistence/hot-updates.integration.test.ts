/**
 * What a reconnect storm rewrites — each node's row and its pool states — is updated in place on
 * PostgreSQL: migration 0018 leaves room on their pages, so a new row version fits beside the old
 * one and the update is HOT (no index entry written, nothing left for vacuum), even when thousands
 * of rows fill the tables, once the versions the last rewrite left dead are cleared (by vacuum, or
 * by pruning, which a transaction open anywhere in the cluster holds off). PostgreSQL
 * only: HOT is a property of its heap, counted per transaction by pg_stat_xact_user_tables.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type OpenTestDatabase, openTestDatabase } from '../testing/databases.js';
import { createRepositories } from './repositories/index.js';

const NODES = 1_000;

describe('row rewrites of a reconnect storm on PostgreSQL', () => {
  let db: OpenTestDatabase;
  const nodeIds = Array.from({ length: NODES }, (_, i) => `node-${String(i).padStart(4, '0')}`);
  const states = (status: 'active' | 'unknown') =>
    nodeIds.map((nodeId) => ({ poolId: 'shared', nodeId, status, mountPath: '/mnt/shared', syncedGeneration: 1 }));
  const connected = nodeIds.map((id) => ({
    id,
    connectionState: 'connected' as const,
    agentVersion: '1.0.0',
    capabilities: { kvm: true },
  }));

  beforeAll(async () => {
    db = await openTestDatabase('pg');
    const repos = db.repositories;
    for (let i = 0; i < NODES; i += 100) {
      await Promise.all(nodeIds.slice(i, i + 100).map((id) => repos.nodes.create({ id, hostname: id })));
    }
    await repos.pools.create({ id: 'shared', name: 'shared', type: 'nfs', shared: true, nodeIds });
    // Nodes that were connected before: a storm rewrites rows of the same size.
    await repos.nodes.setConnectionStates(connected);
    await repos.pools.setNodeStates(states('active'));
    // The row versions those rewrites left dead are cleared, as vacuum (or pruning on a later read)
    // clears them between storms. Pruning during the storm itself cannot be relied on here: a
    // snapshot's xmin is the oldest transaction running anywhere in the cluster, so a write still
    // open in another test file's database keeps this one's dead rows on their pages (then ~240
    // of the 1,000 node rows were HOT; 2 of 3 runs of this folder failed so). VACUUM weighs this
    // database's sessions alone.
    await db.database.knex.raw('vacuum nodes, pool_node_states');
  });
  afterAll(() => db?.close());

  it('are HOT updates: nearly every pool state and node row of a thousand, written again, stays on its page', async () => {
    const counted = await db.database.knex.transaction(async (trx) => {
      // The backend's counts not yet flushed (earlier transactions' too): the storm's are the difference.
      const counts = async () => {
        const result = await trx.raw(
          `select relname, n_tup_upd::int as updated, n_tup_hot_upd::int as hot
             from pg_stat_xact_user_tables where relname in ('pool_node_states', 'nodes') order by relname`,
        );
        return (result as { rows: { relname: string; updated: number; hot: number }[] }).rows;
      };
      const before = await counts();
      const repos = createRepositories(trx);
      await repos.pools.setNodeStates(states('unknown'));
      await repos.nodes.setConnectionStates(connected);
      return (await counts()).map((row, i) => ({
        relname: row.relname,
        updated: row.updated - (before[i]?.updated ?? 0),
        hot: row.hot - (before[i]?.hot ?? 0),
      }));
    });
    // At the default fillfactor (pages full) 0 of the states and about a tenth of the node rows.
    expect(counted.map((row) => [row.relname, row.updated])).toEqual([
      ['nodes', NODES],
      ['pool_node_states', NODES],
    ]);
    for (const row of counted) expect(row.hot, row.relname).toBeGreaterThanOrEqual(0.9 * NODES);
    expect((await db.repositories.pools.listNodeStates({ poolId: 'shared' })).map((s) => s.status)).toEqual(
      nodeIds.map(() => 'unknown'),
    );
  });
});
