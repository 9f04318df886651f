/**
 * Pool sync's guards against a node that lies or goes away, on both real databases: a report
 * for a generation never pushed is refused, and a disconnected node's pool states become
 * `unknown` (the 0007 migration lets the database hold that status).
 */

import type { PoolReport, Repositories } from '@quantix/core';
import { createEventBus, type Database, ErrorCode, type QuantixEvents } from '@quantix/core';
import { errorCodeOf, type OpenTestDatabase, openTestDatabase, TEST_DATABASE_CLIENTS } from '@quantix/core/testing';
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { PoolSyncService } from './pool-sync.js';

const report = (poolId: string, status: PoolReport['status'], reason: string | null = null): PoolReport => ({
  poolId,
  status,
  mountPath: `/srv/${poolId}`,
  capacityBytes: 1000,
  availableBytes: 500,
  reason,
});

describe.each(TEST_DATABASE_CLIENTS)('pool sync guards on %s', (client) => {
  let testDb: OpenTestDatabase;
  let _db: Database;
  let repos: Repositories;

  beforeAll(async () => {
    testDb = await openTestDatabase(client);
    ({ database: _db, repositories: repos } = testDb);
  });
  afterAll(() => testDb?.close());
  beforeEach(async () => {
    await testDb.reset();
    await repos.nodes.create({ id: 'n1', hostname: 'hv1' });
    await repos.pools.create({ id: 'a', name: 'A', type: 'local', config: { path: '/srv/a' }, nodeIds: ['n1'] });
    await repos.pools.create({ id: 'b', name: 'B', type: 'local', config: { path: '/srv/b' }, nodeIds: ['n1'] });
  });

  it('refuses a report of a generation newer than the current one, and stores nothing from it', async () => {
    const sync = new PoolSyncService({ repositories: repos });
    const current = await repos.pools.currentGeneration();
    const refused = await errorCodeOf(
      sync.recordReport('n1', { generation: current + 1, pools: [report('a', 'active')] }),
    );
    expect(refused).toBe(ErrorCode.PROTOCOL_INVALID_MESSAGE);
    expect(await repos.pools.listNodeStates({ nodeId: 'n1' })).toEqual([]);
    await sync.recordReport('n1', { generation: current, pools: [report('a', 'active')] });
    expect((await repos.pools.getNodeState('a', 'n1'))?.status).toBe('active');
  });

  it('reads the pools again only when their generation moved, and then sees every change', async () => {
    const sync = new PoolSyncService({ repositories: repos });
    // A spy that counts the real reads (the repository still runs): a storm's batches skip them.
    const list = vi.spyOn(repos.pools, 'list');
    const first = await sync.readPools();
    expect(first.pools.map((p) => p.id)).toEqual(['a', 'b']);
    expect(await sync.readPools()).toBe(first);
    expect(list).toHaveBeenCalledTimes(1);

    // Changed behind the service's back (as another replica would): the generation says so.
    await repos.pools.update('b', { nodeIds: [] });
    await repos.pools.create({ id: 'c', name: 'C', type: 'local', config: { path: '/srv/c' }, nodeIds: ['n1'] });
    const second = await sync.readPools();
    expect(second.generation).toBe(first.generation + 2);
    expect(second.pools.map((p) => [p.id, p.nodeIds])).toEqual([
      ['a', ['n1']],
      ['b', []],
      ['c', ['n1']],
    ]);
    expect((await sync.desiredPoolsForEach(['n1'])).get('n1')?.pools.map((p) => p.id)).toEqual(['a', 'c']);
    await repos.pools.delete('a');
    expect((await sync.readPools()).pools.map((p) => p.id)).toEqual(['b', 'c']);
    expect(list).toHaveBeenCalledTimes(3);
    list.mockRestore();
  });

  it('takes a report of only the pools that changed, leaving the others as they were', async () => {
    const sync = new PoolSyncService({ repositories: repos });
    const generation = await repos.pools.currentGeneration();
    await sync.recordReport('n1', { generation, pools: [report('a', 'active'), report('b', 'unavailable', 'gone')] });
    await sync.recordReport('n1', { generation, pools: [report('b', 'active')] });
    const states = await repos.pools.listNodeStates({ nodeId: 'n1' });
    expect(states.map((s) => [s.poolId, s.status])).toEqual([
      ['a', 'active'],
      ['b', 'active'],
    ]);
  });

  it('marks every pool state of a node that went away unknown, keeping what it last said', async () => {
    const events = createEventBus();
    const seen: QuantixEvents['pool.state'][] = [];
    events.on('pool.state', (e) => seen.push(e));
    const sync = new PoolSyncService({ repositories: repos, events });
    const generation = await repos.pools.currentGeneration();
    await sync.recordReport('n1', { generation, pools: [report('a', 'active'), report('b', 'error', 'broken')] });
    const before = await repos.pools.getNodeState('a', 'n1');
    seen.length = 0;

    expect(await sync.markNodeUnknown('n1', 'node n1 disconnected')).toBe(2);
    const after = await repos.pools.listNodeStates({ nodeId: 'n1' });
    expect(after.map((s) => [s.poolId, s.status, s.lastError])).toEqual([
      ['a', 'unknown', 'node n1 disconnected'],
      ['b', 'unknown', 'node n1 disconnected'],
    ]);
    expect(after[0]).toMatchObject({ mountPath: '/srv/a', capacityBytes: 1000, syncedGeneration: generation });
    expect(after[0]?.checkedAt.getTime()).toBe(before?.checkedAt.getTime());
    expect(seen.map((e) => [e.poolId, e.status])).toEqual([
      ['a', 'unknown'],
      ['b', 'unknown'],
    ]);
    // Already unknown: nothing to write again.
    expect(await sync.markNodeUnknown('n1', 'again')).toBe(0);
    // The node's next report replaces it.
    await sync.recordReport('n1', { generation, pools: [report('a', 'active')] });
    expect((await repos.pools.getNodeState('a', 'n1'))?.status).toBe('active');
  });
});
