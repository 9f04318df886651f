import type { StoragePool } from '@quantix/core';

/**
 * A complete StoragePool record for tests and benchmarks of storage backends, which take pools
 * as the control plane stores them: `testPool('local', { path: '/srv/isos' })`.
 */
export function testPool(
  type: string,
  config: Record<string, unknown>,
  overrides: Partial<Omit<StoragePool, 'type' | 'config'>> = {},
): StoragePool {
  const now = new Date();
  const id = overrides.id ?? `${type}-pool`;
  return {
    id,
    name: id,
    description: '',
    type,
    config,
    contentTypes: ['iso', 'images'],
    shared: type !== 'local',
    nodeIds: [],
    labels: {},
    version: 1,
    createdAt: now,
    updatedAt: now,
    ...overrides,
  };
}
