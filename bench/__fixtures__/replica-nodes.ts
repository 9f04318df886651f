// Child process of bench/replicas: N protocol-level node clients on raw WebSockets.
//   node --import tsx replica-nodes.ts <config file: { urls, nodes: [{ id, token }], jitterMs }>
// Node i dials urls[i % urls.length] first and speaks protocol 4 as the node daemon does: says hello
// (with the pools it holds from its last push, once it has one), answers every pools.desired with
// pools.state (every pool active) and every request as a node does (a scan finds the pool's
// images); a welcome that takes its pools as current (poolsCurrent) leaves it holding them. When its socket closes it redials
// after a random delay between 50 ms and jitterMs (the node daemon's first redial: full jitter),
// as the node daemon does: the next URL of its round, each round a random order of the list, so a
// dead replica's nodes spread over those left.
// Prints JSON lines: {"event":"ready","at"} each time every node has its pool set on a live
// socket; {"event":"pool","node","pool","at"} the first time a node is sent a pool named fanout-*.
// `at` is wall-clock milliseconds (performance.timeOrigin + now, comparable across processes).
// "exit" on stdin closes every socket and exits.
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import { dialOrder } from '@quantix/example-node-daemon';
import WebSocket from 'ws';
import { answersTo, HeldPools, poolImageFiles } from './protocol-node.js';

const { urls, nodes, jitterMs, images } = JSON.parse(readFileSync(process.argv[2] as string, 'utf8')) as {
  urls: string[];
  nodes: { id: string; token: string }[];
  jitterMs: number;
  /** Disk images in the pool its nodes share (poolImageFiles): what a scan of it finds. */
  images?: number;
};
const poolFiles = poolImageFiles(images ?? 0);
const now = () => performance.timeOrigin + performance.now();
const print = (line: Record<string, unknown>) => process.stdout.write(`${JSON.stringify(line)}\n`);
const ready = new Set<string>();
const seen = new Set<string>();
const sockets = new Map<string, WebSocket>();
const held = new Map(nodes.map((node) => [node.id, new HeldPools()]));
let exiting = false;

/** Dials `url`; `untried` is the rest of the node's round (dialOrder, the daemon's own), taken from when the socket closes. */
function dial(node: { id: string; token: string }, url: string, untried: string[]): void {
  const socket = new WebSocket(`${url.replace(/^http/, 'ws')}/api/v1/nodes/connect`, {
    headers: { authorization: `Bearer ${node.token}`, 'x-quantix-node-id': node.id },
  });
  sockets.set(node.id, socket);
  const isReady = () => {
    if (ready.has(node.id)) return;
    ready.add(node.id);
    if (ready.size === nodes.length) print({ event: 'ready', at: now() });
  };
  const heldPools = held.get(node.id) as HeldPools;
  socket.on('open', () => socket.send(heldPools.hello(node.id)));
  socket.on('message', (data) => {
    const message = JSON.parse(String(data));
    if (message.type === 'welcome') {
      if (message.poolsCurrent) isReady();
    } else if (message.type === 'pools.desired') {
      const pools = message.pools as { id: string }[];
      socket.send(heldPools.apply(message));
      for (const pool of pools) {
        const key = `${node.id}\u0000${pool.id}`;
        if (pool.id.startsWith('fanout') && !seen.has(key)) {
          seen.add(key);
          print({ event: 'pool', node: node.id, pool: pool.id, at: now() });
        }
      }
      isReady();
    } else if (message.type === 'request') {
      for (const frame of answersTo(message.requestId, message.request, poolFiles)) socket.send(frame);
    }
  });
  socket.on('error', () => undefined);
  socket.on('close', () => {
    if (exiting || sockets.get(node.id) !== socket) return;
    ready.delete(node.id);
    const round = untried.length > 0 ? untried : dialOrder(urls);
    const next = round.shift() as string;
    setTimeout(() => dial(node, next, round), 50 + Math.random() * Math.max(0, jitterMs - 50));
  });
}

// Node i starts at urls[i % urls.length] (an even spread, as the daemon's random first round
// gives on average); the rest of its first round in random order.
nodes.forEach((node, i) => {
  const first = urls[i % urls.length] as string;
  const rest = dialOrder(urls.filter((url) => url !== first));
  dial(node, first, rest);
});

createInterface({ input: process.stdin }).on('line', (line) => {
  if (line.trim() === 'exit') {
    exiting = true;
    for (const socket of sockets.values()) socket.terminate();
    process.exit(0);
  }
});
