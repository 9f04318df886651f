import type { NewNode, Node, Repositories } from '@quantix/core';
import type { NodeHub } from '../hub/node-hub.js';
import type { ReplicaRegistry } from '../replicas/replica-registry.js';
import { newToken, tokenDigest } from '../tokens.js';

/**
 * Nodes as an operator manages them: registered with a token shown once (only its digest is
 * kept), given a new token, removed — a removed node's connection is closed at once
 * (NODE_CLOSE_CODES.removed), here or, by another replica holding it, at its next lease renewal.
 */
export class NodeService {
  constructor(
    private readonly options: {
      repositories: Repositories;
      hub: Pick<NodeHub, 'letRemovedGo'>;
      replicas: Pick<ReplicaRegistry, 'forgetRemoved'>;
    },
  ) {}

  /** Records a new node; the token it connects with is in the answer, and nowhere else. */
  async register(input: NewNode): Promise<{ node: Node; token: string }> {
    const { nodes } = this.options.repositories;
    const node = await nodes.create(input);
    return { node, token: await this.issueToken(node.id) };
  }

  /** A new token for the node (NOT_FOUND when there is none); the one before opens nothing from now on. */
  async issueToken(nodeId: string): Promise<string> {
    const token = newToken();
    await this.options.repositories.nodes.setTokenDigest(nodeId, tokenDigest(token));
    return token;
  }

  /** Deletes the node (IN_USE while VMs are recorded on it, NOT_FOUND when there is none) and closes its connection. */
  async remove(nodeId: string): Promise<void> {
    await this.options.repositories.nodes.delete(nodeId);
    this.options.replicas.forgetRemoved([nodeId]);
    this.options.hub.letRemovedGo([nodeId]);
  }
}
