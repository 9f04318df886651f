/**
 * A real NodeAgent joined to a real NodeHub in one process. The only stand-in is the transport:
 * the two ends pass each other the same JSON text a WebSocket would carry, in order, each
 * message handed over on a later turn of the event loop as a socket would. Everything else —
 * the hello, the pool push, the node's reconcile and scan, the hub's queue and the ingest into
 * the database — is the code that runs in the example app.
 */
import {
  createPoolRootPolicy,
  type NodeMessage,
  type PoolContentType,
  type Repositories,
  type StoragePool,
} from '@quantix/core';
import { NodeAgent, type NodeAgentOptions } from '@quantix/node-runtime';
import { LocalStorageBackend, localPoolType } from '@quantix/storage-local';
import type { NodeChannel } from '../hub/channel.js';
import type { NodeHub } from '../hub/node-hub.js';

export interface InProcessLink {
  /** What the agent sends goes here: give it as the agent's `send` option. */
  send(message: NodeMessage): void;
  /** Joins the agent to the hub and says hello. */
  connect(agent: NodeAgent, hub: NodeHub, nodeId: string): void;
  close(): void;
}

export function inProcessLink(): InProcessLink {
  let toHub: ((text: string) => void) | undefined;
  let onClose: (() => void) | undefined;
  let open = true;
  let agent: NodeAgent | undefined;
  const channel: NodeChannel = {
    send(text) {
      if (open) setImmediate(() => void agent?.handle(text));
    },
    close() {
      if (!open) return;
      open = false;
      onClose?.();
    },
    pause() {},
    resume() {},
    bufferedBytes: 0,
    get open() {
      return open;
    },
    onMessage(handler) {
      toHub = handler;
    },
    onClose(handler) {
      onClose = handler;
    },
  };
  return {
    send(message) {
      const text = JSON.stringify(message);
      if (open) setImmediate(() => toHub?.(text));
    },
    connect(node, hub, nodeId) {
      agent = node;
      hub.attach(nodeId, channel);
      const hello = node.hello({ hostname: nodeId, agentVersion: 'test' });
      setImmediate(() => toHub?.(JSON.stringify(hello)));
    },
    close() {
      channel.close(1000, 'test over');
    },
  };
}

/** A node daemon joined to the hub that holds one local pool (of ISOs, unless told), and what it sent. */
export interface PoolNode {
  nodeId: string;
  pool: StoragePool;
  agent: NodeAgent;
  link: InProcessLink;
  /** Everything the node sent, in order. */
  fromNode: NodeMessage[];
  /** The link closed and the agent stopped. */
  close(): Promise<void>;
}

/**
 * A new node (its row) holding a new shared local pool at `root` (a directory under
 * `allowedRoot`; of `contentTypes`, default ISOs), its real NodeAgent joined to the hub: ready
 * once it has answered the scans that follow its pool sync, one per content type. The node looks
 * at its pools only when asked (no re-check timer).
 */
export async function startPoolNode(options: {
  hub: NodeHub;
  repositories: Repositories;
  name: string;
  root: string;
  allowedRoot: string;
  contentTypes?: PoolContentType[];
  agent?: Partial<NodeAgentOptions>;
}): Promise<PoolNode> {
  const contentTypes = options.contentTypes ?? ['iso'];
  const { repositories, name } = options;
  const nodeId = (await repositories.nodes.create({ hostname: name, address: '127.0.0.1' })).id;
  const pool = await repositories.pools.create({
    name,
    type: 'local',
    config: { path: options.root },
    contentTypes,
    shared: true,
    nodeIds: [nodeId],
  });
  const fromNode: NodeMessage[] = [];
  const link = inProcessLink();
  const agent = new NodeAgent({
    nodeId,
    backends: [new LocalStorageBackend()],
    poolTypes: [localPoolType],
    poolRoots: createPoolRootPolicy({ allowedRoots: [options.allowedRoot] }),
    poolRecheckIntervalMs: 0,
    ...options.agent,
    send: (message) => {
      fromNode.push(message);
      link.send(message);
    },
  });
  link.connect(agent, options.hub, nodeId);
  const until = Date.now() + 30_000;
  const scansAnswered = () =>
    fromNode.filter((m) => m.type === 'response' && (m.result as { poolId?: string })?.poolId === pool.id).length;
  while (scansAnswered() < contentTypes.length) {
    if (Date.now() > until) throw new Error(`node ${name} did not answer the scans after its pool sync`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  return {
    nodeId,
    pool,
    agent,
    link,
    fromNode,
    async close() {
      link.close();
      await agent.close();
    },
  };
}
