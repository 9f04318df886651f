import { desiredPoolsFingerprint, type StoragePool } from '@quantix/core';
import { describe, expect, it } from 'vitest';
import { desiredSetsOf, type PoolsSnapshot } from './pool-sync.js';

const pool = (id: string, nodeIds: string[]): StoragePool => ({
  id,
  name: `pool ${id}`,
  description: '',
  type: 'local',
  config: { path: `/srv/${id}` },
  contentTypes: ['images'],
  shared: false,
  nodeIds,
  labels: {},
  version: 1,
  createdAt: new Date(0),
  updatedAt: new Date(0),
});

describe('desiredSetsOf', () => {
  const snapshot: PoolsSnapshot = {
    generation: 7,
    pools: [pool('a', ['n1', 'n2', 'n3']), pool('b', ['n2']), pool('c', ['n1', 'n2'])],
  };

  it("gives each node its pools in the snapshot's order, and an empty set to a node with none", () => {
    const sets = desiredSetsOf(snapshot, ['n1', 'n2', 'n3', 'n4']);
    expect([...sets].map(([nodeId, set]) => [nodeId, set.pools.map((p) => p.id)])).toEqual([
      ['n1', ['a', 'c']],
      ['n2', ['a', 'b', 'c']],
      ['n3', ['a']],
      ['n4', []],
    ]);
    const n2 = sets.get('n2');
    expect(n2?.generation).toBe(7);
    expect(n2?.fingerprint).toBe(desiredPoolsFingerprint(n2?.pools ?? []));
    expect(n2?.pools[1]).toEqual({
      id: 'b',
      name: 'pool b',
      type: 'local',
      config: { path: '/srv/b' },
      contentTypes: ['images'],
      shared: false,
    });
  });

  it('makes one set for the nodes that have the same pools, the same in later batches of the snapshot', () => {
    const first = desiredSetsOf(snapshot, ['n1']);
    const later = desiredSetsOf({ ...snapshot, pools: [...snapshot.pools, pool('d', ['n5'])] }, ['n1']);
    const again = desiredSetsOf(snapshot, ['n1', 'n3']);
    expect(again.get('n1')).toBe(first.get('n1'));
    // Another snapshot (another generation's read) is worked out on its own.
    expect(later.get('n1')).not.toBe(first.get('n1'));
    expect(later.get('n1')).toEqual(first.get('n1'));
    const twins = desiredSetsOf({ generation: 8, pools: [pool('x', ['m1', 'm2'])] }, ['m1', 'm2']);
    expect(twins.get('m1')).toBe(twins.get('m2'));
  });
});
