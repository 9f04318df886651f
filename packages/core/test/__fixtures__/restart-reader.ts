// Child process for the restart test: opens the same database in a new process and prints
// everything it finds, in the writer's shape.
import { createQuantix, type DatabaseConfig } from '../../src/index.js';

const config = JSON.parse(process.argv[2] ?? '{}') as DatabaseConfig;
const ids = JSON.parse(process.argv[3] ?? '{}') as { node: string; pool: string; vm: string };

const quantix = await createQuantix({ database: config });
const { images, pools, nodes, vms } = quantix.repositories;
const result = {
  node: await nodes.get(ids.node),
  pool: await pools.get(ids.pool),
  state: await pools.getNodeState(ids.pool, ids.node),
  images: await images.list(),
  vm: await vms.get(ids.vm),
};
process.stdout.write(`${JSON.stringify(result)}\n`);
await quantix.close();
