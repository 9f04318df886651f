/**
 * Child process of the host-name test: one node connection to the URLs in argv, printing a JSON
 * line with the address of each connection it makes. Run in a mount namespace whose /etc/hosts
 * gives one name several addresses, so the name is resolved as on any machine (getaddrinfo).
 */
import { createLogger } from '@quantix/core';
import { ControlPlaneConnection } from '../connection.js';

const [nodeId = 'n1', ...urls] = process.argv.slice(2);
const connection = new ControlPlaneConnection({
  urls,
  nodeId,
  token: 'test-token',
  hostname: nodeId,
  agentVersion: 'test',
  logger: createLogger({ level: 'silent' }),
  initialBackoffMs: 50,
  maxBackoffMs: 200,
  handler: {
    handle(message) {
      if (message.type === 'welcome') {
        process.stdout.write(`${JSON.stringify({ connected: connection.endpoint?.address })}\n`);
      }
    },
  },
});
connection.start();
process.on('SIGTERM', () => void connection.close().then(() => process.exit(0)));
