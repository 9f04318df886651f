/**
 * Child process of the replica-lease test: a replica that registers, claims the nodes named in
 * argv, prints `{"claimed": [...]}` and keeps renewing — until the test SIGKILLs it.
 */
import { createLogger, openDatabase } from '@quantix/core';
import { ReplicaRegistry } from '../replicas/replica-registry.js';

const [connectionString = '', replicaId = '', leaseSeconds = '2', ...nodeIds] = process.argv.slice(2);
const database = await openDatabase({ client: 'pg', connectionString }, { migrate: false });
const registry = new ReplicaRegistry({
  knex: database.knex,
  logger: createLogger({ level: 'silent' }),
  replicaId,
  version: 'child',
  leaseSeconds: Number(leaseSeconds),
});
await registry.start();
for (const nodeId of nodeIds) await registry.claim(nodeId);
process.stdout.write(`${JSON.stringify({ claimed: nodeIds })}\n`);
setInterval(() => {}, 60_000);
