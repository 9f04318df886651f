import type { Image, PoolNodeState, Repositories } from '@quantix/core';
import type { NodeHub } from '../hub/node-hub.js';
import { pathOnNode } from '../images/available.js';

/**
 * The connected nodes on which a pool is active, in the order their states are stored — the one
 * answer to "which node can work on this pool now". `nodeId` narrows it to the node a node-local
 * pool's rows belong to.
 */
export async function nodesWithActivePool(options: {
  repositories: Repositories;
  hub: Pick<NodeHub, 'isConnected'>;
  poolId: string;
  nodeId?: string | null;
}): Promise<string[]> {
  const states = await options.repositories.pools.listNodeStates({ poolId: options.poolId });
  return states
    .filter((s) => s.status === 'active' && options.hub.isConnected(s.nodeId))
    .filter((s) => !options.nodeId || s.nodeId === options.nodeId)
    .map((s) => s.nodeId);
}

/**
 * Where an image's file is on a node: its pool's mount path there joined with its relPath, when
 * the pool is active on that node (and, for a node-local pool, the image is that node's); else null.
 */
export function imagePathOnNode(
  image: Pick<Image, 'location' | 'nodeId'>,
  nodeId: string,
  state: Pick<PoolNodeState, 'status' | 'mountPath'> | null | undefined,
): string | null {
  if (!image.location || !state || state.status !== 'active' || !state.mountPath) return null;
  if (image.nodeId && image.nodeId !== nodeId) return null;
  return pathOnNode(state.mountPath, image.location.relPath);
}
