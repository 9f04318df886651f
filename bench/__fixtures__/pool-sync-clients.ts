// Child process of bench/pool-sync: N real WebSocket node clients.
//   node --import tsx pool-sync-clients.ts <url> <nodes file: [{ id, token }]>
// Each says hello, answers every pools.desired with pools.state (every pool active), and answers
// requests with an empty result. On "reconnect" (a line on stdin) every client drops its socket
// and dials again at once. Prints {"event":"acked","round"} when every node of the round was sent
// its pools; "exit" on stdin closes every socket and exits.
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import WebSocket from 'ws';

const url = process.argv[2] as string;
const nodes = JSON.parse(readFileSync(process.argv[3] as string, 'utf8')) as { id: string; token: string }[];
let acked = 0;
let round = 0;

function dial(node: { id: string; token: string }, forRound: number): void {
  const socket = new WebSocket(`${url.replace(/^http/, 'ws')}/api/v1/nodes/connect`, {
    headers: { authorization: `Bearer ${node.token}`, 'x-quantix-node-id': node.id },
  });
  socket.on('open', () =>
    socket.send(
      JSON.stringify({ v: 1, type: 'hello', nodeId: node.id, hostname: node.id, agentVersion: 'bench', capabilities: {} }),
    ),
  );
  socket.on('message', (data) => {
    const message = JSON.parse(String(data));
    if (message.type === 'pools.desired') {
      socket.send(
        JSON.stringify({
          v: 1,
          type: 'pools.state',
          generation: message.generation,
          pools: message.pools.map((p: { id: string }) => ({
            poolId: p.id,
            status: 'active',
            mountPath: `/mnt/${p.id}`,
            capacityBytes: null,
            availableBytes: null,
            reason: null,
          })),
        }),
      );
      if (forRound === round && ++acked === nodes.length) process.stdout.write(`${JSON.stringify({ event: 'acked', round })}\n`);
    } else if (message.type === 'request') {
      socket.send(JSON.stringify({ v: 1, type: 'response', requestId: message.requestId, result: {} }));
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
