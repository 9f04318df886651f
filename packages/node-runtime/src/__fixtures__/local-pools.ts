/**
 * Test support (not exported from the package): the node-agent options most tests share — local
 * pools, allowed under `root` only.
 */
import { LocalStorageBackend, localPoolType } from '@quantix/storage-local';
import { createPoolRootPolicy } from '@quantix/core';

export function localPools(root: string) {
  return {
    backends: [new LocalStorageBackend()],
    poolTypes: [localPoolType],
    poolRoots: createPoolRootPolicy({ allowedRoots: [root] }),
  };
}
