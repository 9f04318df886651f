// Child process of bench/pool-sync: N real WebSocket node clients.
//   node --import tsx pool-sync-clients.ts <url> <nodes file: [{ id, token }]>
// Each speaks protocol 4 as a node daemon does: it says hello (with the pools it holds from its last
// push, once it has one), answers every pools.desired with pools.state (every pool active), and
// answers requests with an empty result. On "reconnect" (a line on stdin) every client drops its
// socket and dials again at once. Prints {"event":"acked","round"} when every node of the round
// has its pools acknowledged — sent its pools.state, or welcomed with poolsCurrent (the control
// plane stored the hello's states); "exit" on stdin closes every socket and exits.
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
// The function of @quantix/core, from its own module: the whole package (knex, pg, PGlite) is not loaded for it.
import { desiredPoolsFingerprint } from '../../packages/core/src/protocol/fingerprint.js';
import WebSocket from 'ws';

const url = process.argv[2] as string;
const nodes = JSON.parse(readFileSync(process.argv[3] as string, 'utf8')) as { id: string; token: string }[];
let acked = 0;
let round = 0;
type Report = { poolId: string; status: 'active'; mountPath: string; capacityBytes: null; availableBytes: null; reason: null };
/** The last push each node applied: its generation, fingerprint and the states reported. */
const held = new Map<string, { generation: number; fingerprint: string; reports: Report[] }>();

function dial(node: { id: string; token: string }, forRound: number): void {
  const socket = new WebSocket(`${url.replace(/^http/, 'ws')}/api/v1/nodes/connect`, {
    headers: { authorization: `Bearer ${node.token}`, 'x-quantix-node-id': node.id },
  });
  const ack = () => {
    if (forRound === round && ++acked === nodes.length) process.stdout.write(`${JSON.stringify({ event: 'acked', round })}\n`);
  };
  socket.on('open', () => {
    const pools = held.get(node.id);
    socket.send(
      JSON.stringify({
        v: 4,
        type: 'hello',
        nodeId: node.id,
        hostname: node.id,
        agentVersion: 'bench',
        capabilities: {},
        protocol: { min: 1, max: 4 },
        ...(pools ? { pools } : {}),
      }),
    );
  });
  socket.on('message', (data) => {
    const message = JSON.parse(String(data));
    if (message.type === 'welcome') {
      // Our hello's pools were taken as current: stored, and no push follows.
      if (message.poolsCurrent) ack();
    } else if (message.type === 'pools.desired') {
      const reports: Report[] = message.pools.map((p: { id: string }) => ({
        poolId: p.id,
        status: 'active',
        mountPath: `/mnt/${p.id}`,
        capacityBytes: null,
        availableBytes: null,
        reason: null,
      }));
      held.set(node.id, { generation: message.generation, fingerprint: desiredPoolsFingerprint(message.pools), reports });
      socket.send(JSON.stringify({ v: 4, type: 'pools.state', generation: message.generation, pools: reports }));
      ack();
    } else if (message.type === 'request') {
      socket.send(JSON.stringify({ v: 4, type: 'response', requestId: message.requestId, result: {} }));
    }
  });
  socket.on('error', () => undefined);
  sockets.set(node.id, socket);
}

const sockets = new Map<string, WebSocket>();
for (const node of nodes) dial(node, 0);

createInterface({ input: process.stdin }).on('line', (line) => {
  if (line.trim() === 'reconnect') {
    round++;
    acked = 0;
    for (const socket of sockets.values()) socket.terminate();
    for (const node of nodes) dial(node, round);
  } else if (line.trim() === 'exit') {
    for (const socket of sockets.values()) socket.terminate();
    process.exit(0);
  }
});
