// What the storm benches' protocol-level nodes say, as the node daemon (protocol 4) says it: a
// hello with the pools held from the last push, and every pushed pool reported active.
// The function of @quantix/core, from its own module: the whole package (knex, pg, PGlite) is not
// loaded into a process of 2,000 clients for it.
import { desiredPoolsFingerprint } from '../../packages/core/src/protocol/fingerprint.js';

type Report = { poolId: string; status: 'active'; mountPath: string; capacityBytes: null; availableBytes: null; reason: null };

/** The pools of one node: what its last push was, and what it reported of it. */
export class HeldPools {
  private held: { generation: number; fingerprint: string; reports: Report[] } | undefined;

  /** The hello to send on (re)connect. */
  hello(nodeId: string): string {
    return JSON.stringify({
      v: 4,
      type: 'hello',
      nodeId,
      hostname: nodeId,
      agentVersion: 'bench',
      capabilities: {},
      protocol: { min: 1, max: 4 },
      ...(this.held ? { pools: this.held } : {}),
    });
  }

  /** Takes a pools.desired push; returns the pools.state to answer it with. */
  apply(push: { generation: number; pools: { id: string }[] }): string {
    const reports: Report[] = push.pools.map((p) => ({
      poolId: p.id,
      status: 'active',
      mountPath: `/mnt/${p.id}`,
      capacityBytes: null,
      availableBytes: null,
      reason: null,
    }));
    this.held = { generation: push.generation, fingerprint: desiredPoolsFingerprint(push.pools), reports };
    return JSON.stringify({ v: 4, type: 'pools.state', generation: push.generation, pools: reports });
  }
}

/**
 * The frames a node whose pools are empty answers a request with, in order: a pool scan finds no
 * file (its scan.result, then the response, as the node daemon sends them); anything else gets an
 * empty result.
 */
export function answersTo(requestId: string, request: { op: string; poolId?: string; content?: string }): string[] {
  if (request.op === 'pool.scan') {
    const { poolId, content } = request;
    return [
      JSON.stringify({ v: 4, type: 'scan.result', poolId, content, files: [] }),
      JSON.stringify({ v: 4, type: 'response', requestId, result: { poolId, content, files: 0, skipped: [] } }),
    ];
  }
  return [JSON.stringify({ v: 4, type: 'response', requestId, result: {} })];
}
