/**
 * Many protocol-level nodes in one process of their own (a load in the test's process would
 * only measure its own event loop):
 *
 *   node --import tsx protocol-nodes.ts <nodes.json>
 *
 * nodes.json: { "urls": [every replica's URL], "nodes": [{ "id", "token" }] }. Each node is the
 * daemon's real connection class (dials in a random order each round, jittered backoff) with a
 * handler that acknowledges every pool push with each pool active, answers a scan with no
 * files and any other request with UNSUPPORTED_OPERATION. Prints a JSON line for each
 * connection made ({ event: 'connected', nodeId, url }) and each push acknowledged.
 */
import { readFileSync } from 'node:fs';
import { createLogger, PROTOCOL_VERSION } from '@quantix/core';
import { ControlPlaneConnection } from '@quantix/example-node-daemon';

const config = JSON.parse(readFileSync(process.argv[2] as string, 'utf8')) as {
  urls: string[];
  nodes: { id: string; token: string }[];
};
const logger = createLogger({ name: 'protocol-nodes', level: 'silent' });
const print = (line: Record<string, unknown>) => process.stdout.write(`${JSON.stringify(line)}\n`);

const connections = config.nodes.map(({ id, token }) => {
  const connection: ControlPlaneConnection = new ControlPlaneConnection({
    urls: config.urls,
    nodeId: id,
    token,
    hostname: id,
    agentVersion: 'protocol-node',
    logger,
    handler: {
      handle(message, send) {
        if (message.type === 'welcome') {
          print({ event: 'connected', nodeId: id, url: connection.endpoint?.url.href ?? null });
        } else if (message.type === 'pools.desired') {
          send({
            v: PROTOCOL_VERSION,
            type: 'pools.state',
            generation: message.generation,
            pools: message.pools.map((pool) => ({
              poolId: pool.id,
              status: 'active',
              mountPath: `/srv/protocol-nodes/${id}/${pool.id}`,
              capacityBytes: 1_000_000,
              availableBytes: 500_000,
              reason: null,
            })),
          });
          print({ event: 'acknowledged', nodeId: id, generation: message.generation });
        } else if (message.type === 'request') {
          const { request, requestId } = message;
          if (request.op === 'pool.scan') {
            send({
              v: PROTOCOL_VERSION,
              type: 'scan.result',
              poolId: request.poolId,
              content: request.content,
              files: [],
            });
            send({
              v: PROTOCOL_VERSION,
              type: 'response',
              requestId,
              result: { poolId: request.poolId, content: request.content, files: 0, skipped: [] },
            });
          } else {
            send({
              v: PROTOCOL_VERSION,
              type: 'response',
              requestId,
              error: { code: 'UNSUPPORTED_OPERATION', message: `a protocol-level node does not ${request.op}` },
            });
          }
        }
      },
    },
  });
  connection.start();
  return connection;
});

process.once('SIGTERM', () => {
  void Promise.all(connections.map((c) => c.close())).then(() => process.exit(0));
});
