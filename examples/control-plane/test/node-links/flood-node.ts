/**
 * A node that floods the control plane, run as its own process (a load generator in the
 * server's or the measuring process would only measure its own event loop):
 *
 *   node --import tsx flood-node.ts <url> <nodeId> <token> <poolId> <count>
 *
 * It says hello, waits for its pool push, then sends `count` small messages as fast as its
 * socket takes them — pool states with 1 KiB reasons, whole scans in one part each, progress of
 * no download, answers to no request, malformed JSON, an unknown type — and last a pool state
 * with mount path /srv/flood-end/<nodeId>, so the test can see when all of it was handled.
 * It prints one JSON line when everything is written, and one when its socket closes.
 */
import WebSocket from 'ws';

const [url, nodeId, token, poolId, countText] = process.argv.slice(2) as [string, string, string, string, string];
const count = Number(countText);
const socket = new WebSocket(`${url.replace(/^http/, 'ws')}/api/v1/nodes/connect`, {
  headers: { authorization: `Bearer ${token}`, 'x-quantix-node-id': nodeId },
});
const print = (line: Record<string, unknown>) => process.stdout.write(`${JSON.stringify({ nodeId, ...line })}\n`);
const file = (n: number) => ({
  relPath: `flood/${nodeId}-${n % 3}.iso`,
  kind: 'iso',
  format: 'iso',
  sizeBytes: 1000 + n,
  modifiedAt: '2026-01-01T00:00:00.000Z',
});
const state = (generation: number, i: number, mountPath = `/srv/flood/${nodeId}`) => ({
  v: 1,
  type: 'pools.state',
  generation,
  pools: [
    {
      poolId,
      status: i % 2 ? 'active' : 'unavailable',
      mountPath,
      capacityBytes: 1000,
      availableBytes: 500,
      reason: i % 2 ? null : 'r'.repeat(1000),
    },
  ],
});

socket.on('open', () => {
  socket.send(JSON.stringify({ v: 1, type: 'hello', nodeId, hostname: nodeId, agentVersion: 'flood' }));
});
socket.on('message', (data) => {
  const message = JSON.parse(data.toString()) as { type: string; generation?: number };
  if (message.type !== 'pools.desired' || message.generation === undefined) return;
  const generation = message.generation;
  socket.removeAllListeners('message'); // error replies are not read: they are the hub's to bound
  const started = Date.now();
  for (let i = 0; i < count - 1; i++) {
    switch (i % 6) {
      case 0:
        socket.send(JSON.stringify(state(generation, i)));
        break;
      case 1:
        socket.send(
          JSON.stringify({
            v: 1,
            type: 'scan.result',
            poolId,
            content: 'iso',
            files: [file(i), file(i + 1), file(i + 2)],
            scanId: `flood-${i}`,
            part: 0,
            final: true,
          }),
        );
        break;
      case 2:
        socket.send(
          JSON.stringify({
            v: 1,
            type: 'image.progress',
            imageId: `no-such-image-${i}`,
            bytesDone: i,
            bytesTotal: count,
            bytesPerSecond: 1,
            etaSeconds: 1,
          }),
        );
        break;
      case 3:
        socket.send(JSON.stringify({ v: 1, type: 'response', requestId: `nobody-${i}`, result: { i } }));
        break;
      case 4:
        socket.send('{"v":1,"type":"pools.state","generation":');
        break;
      default:
        socket.send(JSON.stringify({ v: 1, type: 'not-a-type', i }));
    }
  }
  socket.send(JSON.stringify(state(generation, 1, `/srv/flood-end/${nodeId}`)));
  const flushed = setInterval(() => {
    if (socket.bufferedAmount > 0) return;
    clearInterval(flushed);
    print({ event: 'written', messages: count, ms: Date.now() - started });
  }, 20);
});
socket.on('close', (code) => {
  print({ event: 'closed', code });
  process.exit(0);
});
socket.on('error', (error) => print({ event: 'error', message: error.message }));
