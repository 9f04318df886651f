// Child process of bench/replicas and bench/pool-sync: the floor for a reconnect storm, a bare `ws`
// server that answers each connection's first message (the hello) with an empty pool set and does
// nothing else. Prints {"event":"listening","url":…}.
import { WebSocketServer } from 'ws';

// The backlog the control plane listens with: the floor gets the same queue for a storm's SYNs.
const server = new WebSocketServer({ host: '127.0.0.1', port: 0, backlog: 4096 });
server.on('connection', (socket) =>
  socket.once('message', () => socket.send(JSON.stringify({ v: 1, type: 'pools.desired', generation: 1, pools: [] }))),
);
server.on('listening', () =>
  process.stdout.write(`${JSON.stringify({ event: 'listening', url: `http://127.0.0.1:${server.address().port}` })}\n`),
);
// Exits, not killed, on SIGTERM: `node --cpu-prof` writes its profile on exit.
process.once('SIGTERM', () => process.exit(0));
