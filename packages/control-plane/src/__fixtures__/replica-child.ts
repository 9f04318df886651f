/**
 * Child process of the replica tests: a replica that registers, claims the nodes named in argv,
 * prints `{"claimed": [...]}` and keeps renewing — until the test SIGKILLs (or SIGSTOPs) it. It
 * takes requests other replicas carry to its nodes and never answers them (a node that hangs),
 * printing `{"taken": "<op>"}` for each, so a test can kill it mid-answer.
 */
import { createLogger, openDatabase } from '@quantix/core';
import { ReplicaListener } from '../replicas/listener.js';
import { ReplicaRegistry } from '../replicas/replica-registry.js';
import { NodeRequestRelay } from '../replicas/request-relay.js';

const [connectionString = '', replicaId = '', leaseSeconds = '2', ...nodeIds] = process.argv.slice(2);
const logger = createLogger({ level: 'silent' });
const database = await openDatabase({ client: 'pg', connectionString }, { migrate: false });
const registry = new ReplicaRegistry({
  knex: database.knex,
  logger,
  replicaId,
  version: 'child',
  leaseSeconds: Number(leaseSeconds),
});
const listener = new ReplicaListener({ database, logger });
new NodeRequestRelay({
  knex: database.knex,
  listener,
  replicaId,
  logger,
  holderOf: (nodeId) => registry.holderOf(nodeId),
  isLive: (id) => registry.isLive(id),
  requestLocal: (_nodeId, request) => {
    process.stdout.write(`${JSON.stringify({ taken: request.op })}\n`);
    return new Promise(() => undefined);
  },
});
await registry.start();
await listener.start();
for (const nodeId of nodeIds) await registry.claim(nodeId);
process.stdout.write(`${JSON.stringify({ claimed: nodeIds })}\n`);
setInterval(() => {}, 60_000);
