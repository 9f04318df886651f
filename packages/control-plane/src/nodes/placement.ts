import { ErrorCode, type Image, type PoolNodeState, QuantixError, type Repositories } from '@quantix/core';
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
 * The first connected node with pool `poolId` active (nodesWithActivePool), or the error saying
 * why there is none (poolNotActiveAnywhere, ending with `consequence`).
 */
export async function requireNodeWithActivePool(options: {
  repositories: Repositories;
  hub: Pick<NodeHub, 'isConnected'>;
  poolId: string;
  nodeId?: string | null;
  consequence: string;
  details?: Record<string, unknown>;
}): Promise<string> {
  const [nodeId] = await nodesWithActivePool(options);
  if (nodeId) return nodeId;
  const { repositories, hub, poolId, consequence, details } = options;
  throw await poolNotActiveAnywhere({ repositories, hub, pool: poolId, nodeId: options.nodeId, consequence, details });
}

/**
 * Why no connected node has a pool active (nodesWithActivePool found none), ending with
 * `consequence` — what cannot be done for it: NODE_NOT_CONNECTED when no node holding the pool is
 * connected, else POOL_NOT_ACTIVE_ON_NODE with what each connected node said of it (its state and
 * reason: unmounted, a root refused, …). `nodeId` as for nodesWithActivePool.
 */
export async function poolNotActiveAnywhere(options: {
  repositories: Repositories;
  hub: Pick<NodeHub, 'isConnected'>;
  pool: { id: string; name: string } | string;
  nodeId?: string | null;
  consequence: string;
  details?: Record<string, unknown>;
}): Promise<QuantixError> {
  const { repositories, hub, consequence } = options;
  const pool =
    typeof options.pool === 'string'
      ? ((await repositories.pools.get(options.pool)) ?? { id: options.pool, name: options.pool })
      : options.pool;
  const states = (await repositories.pools.listNodeStates({ poolId: pool.id })).filter(
    (state) => hub.isConnected(state.nodeId) && (!options.nodeId || state.nodeId === options.nodeId),
  );
  const details = { poolId: pool.id, ...options.details };
  if (states.length === 0) {
    return new QuantixError(ErrorCode.NODE_NOT_CONNECTED, `No connected node holds pool ${pool.name}; ${consequence}`, {
      details,
    });
  }
  // Nodes named as people see them (tables and the CLI take hostnames); the ids are in details.
  const hostnames = await Promise.all(
    states.map(async (state) => (await repositories.nodes.get(state.nodeId))?.hostname ?? state.nodeId),
  );
  const said = states.map(
    (state, index) => `on ${hostnames[index]}: ${state.status}${state.lastError ? `, ${state.lastError}` : ''}`,
  );
  return new QuantixError(
    ErrorCode.POOL_NOT_ACTIVE_ON_NODE,
    `Pool ${pool.name} is not active on any connected node (${said.join('; ')}); ${consequence}`,
    { details: { ...details, states: states.map(({ nodeId, status }) => ({ nodeId, status })) } },
  );
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
