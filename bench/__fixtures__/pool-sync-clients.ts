// Child process of bench/pool-sync: N real WebSocket node clients.
//   node --import tsx pool-sync-clients.ts <url> <nodes file: [{ id, token }]> <images in the shared pool>
// Each speaks protocol 4 as a node daemon does: it says hello (with the pools it holds from its last
// push, once it has one), answers every pools.desired with pools.state (every pool active), and
// answers requests as a node does (answersTo: a scan of the shared pool finds its images). On
// "reconnect" (a line on stdin) every client drops its socket and dials again at once. Prints {"event":"acked","round"} when every node of the round
// has its pools acknowledged — sent its pools.state, or welcomed with poolsCurrent (the control
// plane stored the hello's states); "exit" on stdin closes every socket and exits.
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import WebSocket from 'ws';
import { answersTo, HeldPools, poolImageFiles } from './protocol-node.js';

const url = process.argv[2] as string;
const nodes = JSON.parse(readFileSync(process.argv[3] as string, 'utf8')) as { id: string; token: string }[];
const images = poolImageFiles(Number(process.argv[4] ?? 0));
let acked = 0;
let round = 0;
const held = new Map(nodes.map((node) => [node.id, new HeldPools()]));

function dial(node: { id: string; token: string }, forRound: number): void {
  const socket = new WebSocket(`${url.replace(/^http/, 'ws')}/api/v1/nodes/connect`, {
    headers: { authorization: `Bearer ${node.token}`, 'x-quantix-node-id': node.id },
  });
  const ack = () => {
    if (forRound === round && ++acked === nodes.length) process.stdout.write(`${JSON.stringify({ event: 'acked', round })}\n`);
  };
  const pools = held.get(node.id) as HeldPools;
  socket.on('open', () => socket.send(pools.hello(node.id)));
  socket.on('message', (data) => {
    const message = JSON.parse(String(data));
    if (message.type === 'welcome') {
      // Our hello's pools were taken as current: stored, and no push follows.
      if (message.poolsCurrent) ack();
    } else if (message.type === 'pools.desired') {
      socket.send(pools.apply(message));
      ack();
    } else if (message.type === 'request') {
      for (const frame of answersTo(message.requestId, message.request, images)) socket.send(frame);
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
