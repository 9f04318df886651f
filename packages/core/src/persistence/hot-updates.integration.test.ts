/**
 * What a reconnect storm rewrites — each node's row and its pool states — is updated in place on
 * PostgreSQL: migration 0018 leaves room on their pages, so a new row version fits beside the old
 * one and the update is HOT (no index entry written, nothing left for vacuum), even when thousands
 * of rows fill the tables, once the versions the last rewrite left dead are cleared (by vacuum, or
 * by pruning, which a transaction open anywhere in the cluster holds off). Image rows get a
 * little room too (migration 0019), for a re-scan's rewrites. PostgreSQL only: HOT is a property
 * of its heap, counted per transaction by pg_stat_xact_user_tables.
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
    // One by one: the rows' placement on their pages, and so how many find room, is the same every
    // run (inserts in parallel placed them differently each time: 858–951 of 1,000 HOT seen).
    for (const id of nodeIds) await repos.nodes.create({ id, hostname: id });
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
    // With the room: every state and 950 of the node rows, in each of five runs (stop 48). At the
    // default fillfactor (pages full): 21 of the node rows (this setup), none of the states.
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

describe('image rows a re-scan rewrites, on PostgreSQL', () => {
  const IMAGES = 1_000;
  let db: OpenTestDatabase;
  /** Every file of the pool, with sizes `grown` bytes larger than first found. */
  const files = (grown: number) =>
    Array.from({ length: IMAGES }, (_, i) => ({
      poolId: 'pool',
      relPath: `iso/${Math.floor(i / 100)}/disc-${i}.iso`,
      kind: 'iso' as const,
      sizeBytes: 1_000_000 + i + grown,
      fileModifiedAt: new Date(1_700_000_000_000 + i * 1000),
    }));

  beforeAll(async () => {
    db = await openTestDatabase('pg');
    await db.repositories.pools.create({ id: 'pool', name: 'pool', type: 'local' });
    await db.repositories.images.upsertByLocation(files(0));
  });
  afterAll(() => db?.close());

  it('stay on their page in part when every file changed (HOT updates), and searches still find them', async () => {
    const counted = await db.database.knex.transaction(async (trx) => {
      const hot = async () => {
        const result = await trx.raw(
          `select coalesce(sum(n_tup_hot_upd), 0)::int as hot from pg_stat_xact_user_tables where relname = 'images'`,
        );
        return (result as { rows: { hot: number }[] }).rows[0]?.hot ?? 0;
      };
      const start = await hot();
      const written = await createRepositories(trx).images.upsertByLocation(files(1));
      return { updated: written.updated, hot: (await hot()) - start };
    });
    expect(counted.updated).toBe(IMAGES);
    // Migration 0019's room (fillfactor 90) holds about one new version a page: 112 of the 1,000
    // when measured. At the default 100, none: every new version went to a page at the end.
    expect(counted.hot).toBeGreaterThanOrEqual(0.05 * IMAGES);
    // What that buys besides no index entries: rows early in the table keep their places, so the
    // first page of each posting tree of the search index outlives the vacuum, and GIN sizes a
    // trigram every image holds as common, not as rare (bench/README, "The search index's state").
    await db.database.knex.raw('vacuum images');
    expect((await db.repositories.images.page({ text: 'disc-99', limit: 50 })).total).toBe(11);
  });
});
