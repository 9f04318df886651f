import { ErrorCode, type NewNode, type Node, QuantixError, type Repositories } from '@quantix/core';
import type { NodeHub } from '../hub/node-hub.js';
import type { ReplicaListener } from '../replicas/listener.js';
import type { ReplicaRegistry } from '../replicas/replica-registry.js';
import { newToken, tokenDigest } from '../tokens.js';
import { someNamed } from '../words.js';

/** Where a replica that gave a node a new token tells the others (payload: the node's id). */
const TOKEN_REPLACED_CHANNEL = 'quantix_node_token_replaced';

/**
 * Nodes as an operator manages them: registered with a token shown once (only its digest is
 * kept), given a new token, removed.
 * - A new token cuts the connection opened with the one before (NODE_CLOSE_CODES.tokenReplaced):
 *   on this replica at once, on the one holding the node when told (a PostgreSQL notification).
 *   A replica that was not listening when told compares its links' tokens with the nodes' as it
 *   listens again, and closes those opened with a token replaced meanwhile.
 * - A removed node's connection is closed (NODE_CLOSE_CODES.removed): here at once, by another
 *   replica holding it at its next lease renewal, which finds the lease gone with the node.
 * - A node whose daemon runs in this process (`quantix up`'s local node) is given its token by
 *   `issueInProcessToken` as it starts; a new token or its removal is refused after (IN_USE):
 *   either would leave it refused until the process starts again.
 */
export class NodeService {
  /** Nodes whose daemon runs in this process (issueInProcessToken). */
  private readonly inProcess = new Set<string>();

  constructor(
    private readonly options: {
      repositories: Repositories;
      hub: Pick<NodeHub, 'letRemovedGo' | 'letReplacedTokenGo' | 'letStaleTokensGo'>;
      replicas: Pick<ReplicaRegistry, 'forgetRemoved'>;
      /** Where the replicas tell each other of new tokens (subscribed here: construct before it starts). */
      listener?: ReplicaListener;
    },
  ) {
    // Told of each new token; after listening again, what was said meanwhile is read instead.
    options.listener?.on(
      TOKEN_REPLACED_CHANNEL,
      (nodeId) => options.hub.letReplacedTokenGo([nodeId]),
      async () => {
        await options.hub.letStaleTokensGo();
      },
    );
  }

  /** Records a new node; the token it connects with is in the answer, and nowhere else. */
  async register(input: NewNode): Promise<{ node: Node; token: string }> {
    const node = await this.options.repositories.nodes.create(input);
    return { node, token: await this.storeNewToken(node.id) };
  }

  /**
   * A new token for the node (NOT_FOUND when there is none): the one before opens nothing from
   * now on, and a connection opened with it is closed.
   */
  async issueToken(nodeId: string): Promise<string> {
    this.refuseInProcess(nodeId, 'a new token');
    return this.replaceToken(nodeId);
  }

  /**
   * The token of a node whose daemon runs in this process, issued as it starts (a new one at
   * every start, which nothing else ever sees): from now on `issueToken` and `remove` refuse the
   * node with IN_USE.
   */
  async issueInProcessToken(nodeId: string): Promise<string> {
    const token = await this.replaceToken(nodeId);
    this.inProcess.add(nodeId);
    return token;
  }

  private async replaceToken(nodeId: string): Promise<string> {
    const token = await this.storeNewToken(nodeId);
    this.options.hub.letReplacedTokenGo([nodeId]);
    await this.options.listener?.notify(TOKEN_REPLACED_CHANNEL, nodeId);
    return token;
  }

  /** Deletes the node (IN_USE while VMs are recorded on it, NOT_FOUND when there is none) and closes its connection. */
  async remove(nodeId: string): Promise<void> {
    this.refuseInProcess(nodeId, 'removing it');
    const { repositories } = this.options;
    const node = await repositories.nodes.require(nodeId);
    // Named here; the database's foreign key still refuses a VM recorded meanwhile.
    const vms = await repositories.vms.list({ nodeId });
    if (vms.length > 0) {
      throw new QuantixError(
        ErrorCode.IN_USE,
        `Node ${node.hostname} has ${vms.length} VM(s): ${someNamed(vms.map((vm) => vm.name))}; delete them first`,
        { details: { nodeId, vms: vms.map((vm) => ({ id: vm.id, name: vm.name })) } },
      );
    }
    await repositories.nodes.delete(nodeId);
    this.options.replicas.forgetRemoved([nodeId]);
    this.options.hub.letRemovedGo([nodeId]);
  }

  /** IN_USE for a node this process runs: `what` it cannot have done to it, and why. */
  private refuseInProcess(nodeId: string, what: string): void {
    if (!this.inProcess.has(nodeId)) return;
    throw new QuantixError(
      ErrorCode.IN_USE,
      `Node ${nodeId} runs inside this control plane (\`quantix up\`), which gives it a new token at every start: ${what} would leave it refused until a restart`,
      { details: { nodeId, inProcess: true } },
    );
  }

  private async storeNewToken(nodeId: string): Promise<string> {
    const token = newToken();
    await this.options.repositories.nodes.setTokenDigest(nodeId, tokenDigest(token));
    return token;
  }
}
