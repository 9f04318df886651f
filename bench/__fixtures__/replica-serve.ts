// Child process of bench/replicas when `quantix serve` has no --replica-id/--lease-seconds: one
// control-plane replica as `quantix serve` starts it (the same plugins, PostgreSQL from
// QUANTIX_DATABASE_URL, the API token from QUANTIX_API_TOKEN), with the replica id and lease time
// startControlPlane accepts. Prints the line `quantix serve` prints, {"event":"listening","url":…},
// and closes on SIGTERM/SIGINT.
//   node --import tsx replica-serve.ts <host> <port> <replicaId> <leaseSeconds>
import { createLogger, createQuantix } from '@quantix/core';
import { startControlPlane } from '@quantix/example-control-plane';
import { controlPlanePlugins } from '../../examples/control-plane/src/cli/up.js';

const [host, port, id, leaseSeconds] = process.argv.slice(2) as [string, string, string, string];
const connectionString = process.env.QUANTIX_DATABASE_URL as string;
const logger = createLogger({ name: 'quantix', level: process.env.QUANTIX_LOG_LEVEL ?? 'warn' });
const quantix = await createQuantix({ database: { client: 'pg', connectionString }, plugins: controlPlanePlugins(), logger });
const cp = await startControlPlane({
  quantix,
  apiToken: process.env.QUANTIX_API_TOKEN as string,
  host,
  port: Number(port),
  replica: { id, leaseSeconds: Number(leaseSeconds) },
});
process.stdout.write(`${JSON.stringify({ event: 'listening', url: cp.url })}\n`);
const stop = async () => {
  await cp.close();
  await quantix.close();
  process.exit(0);
};
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
