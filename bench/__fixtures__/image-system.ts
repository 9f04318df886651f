// Child process of bench/export: the all-in-one system of bench/lib/images.ts (control plane and
// its node in one process, embedded PGlite, a local pool), in a process of its own, as `quantix up`
// runs. Prints {"event":"listening","url","apiToken"} and closes on SIGTERM/SIGINT.
//   node --import tsx image-system.ts <dataDir> <file server port> <file name> <catalog id>
import { startImageSystem } from '../lib/images.js';

const [dataDir, port, file, catalogId] = process.argv.slice(2) as [string, string, string, string];
const system = await startImageSystem({ dataDir, port: Number(port), file, catalogId });
process.stdout.write(`${JSON.stringify({ event: 'listening', url: system.url, apiToken: system.apiToken })}\n`);
const stop = async () => {
  await system.close();
  process.exit(0);
};
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
