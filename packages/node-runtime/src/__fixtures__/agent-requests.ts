import { type NodeMessage, type PoolReport, PROTOCOL_VERSION } from '@quantix/core';
import type { NodeAgent } from '../agent/node-agent.js';

/**
 * Sends requests to an agent as the control plane would (a `request` frame) and returns each
 * one's response with every message the agent sent meanwhile (its progress). `sent` is where
 * the agent's `send` puts messages.
 */
export function agentRequester(agent: () => NodeAgent, sent: NodeMessage[]) {
  let nextId = 0;
  return async (body: Record<string, unknown>) => {
    const requestId = `r${++nextId}`;
    const from = sent.length;
    await agent().handle(JSON.stringify({ v: PROTOCOL_VERSION, type: 'request', requestId, request: body }));
    const emitted = sent.slice(from);
    const response = emitted.find((m) => m.type === 'response' && m.requestId === requestId);
    if (response?.type !== 'response') throw new Error(`no response to ${requestId}`);
    return { response, emitted };
  };
}

/** Each pool's state as the agent's last `pools.state` among `sent` said it, by pool id. */
export function lastPoolStates(sent: readonly NodeMessage[]): Record<string, PoolReport> {
  const last = [...sent].reverse().find((m) => m.type === 'pools.state');
  return Object.fromEntries((last?.type === 'pools.state' ? last.pools : []).map((p) => [p.poolId, p]));
}

/** The response an agent answers a scan of `poolId` with (a scan of an active pool streams its items first). */
export async function scanAnswer(node: NodeAgent, sent: NodeMessage[], poolId: string) {
  return (await agentRequester(() => node, sent)({ op: 'pool.scan', poolId, content: 'iso' })).response;
}
