/**
 * bench/pool-sync — the node hub under a reconnect storm, and the VM-creation view at scale.
 *   500 real WebSocket node clients (in a separate process) reconnect at once: time until the
 *   control plane has stored every node's acknowledgement of its pools (target < 5 s on 2 cores),
 *   beside the same 500 clients doing one message round trip with a bare `ws` server (the floor).
 *   GET /images/available with 10,000 images: p50 latency (target < 20 ms) beside the raw SQL
 *   query of the same rows through `pg` and beside GET /healthz (the HTTP floor).
 * QUANTIX_BENCH_QUICK=1: 50 nodes and 1,000 images.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import { tokenDigest } from '@quantix/control-plane';
import { createQuantix } from '@quantix/core';
import { createPostgresTestDatabase } from '@quantix/core/testing';
import { startControlPlane } from '@quantix/example-control-plane';
import pg from 'pg';
import { pino } from 'pino';
import { WebSocketServer } from 'ws';

const quick = process.env.QUANTIX_BENCH_QUICK === '1';
const NODES = quick ? 50 : 500;
const IMAGES = quick ? 1_000 : 10_000;
const TOKEN = 'bench-token';

function startClients(
  url: string,
  nodes: { id: string; token: string }[],
): { child: ChildProcess; next: (event: string) => Promise<void> } {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', join(import.meta.dirname, '__fixtures__/pool-sync-clients.ts'), url, JSON.stringify(nodes)],
    {
      stdio: ['pipe', 'pipe', 'inherit'],
    },
  );
  const waiting: ((event: string) => void)[] = [];
  createInterface({ input: child.stdout as NodeJS.ReadableStream }).on('line', (line) => {
    const event = (JSON.parse(line) as { event: string }).event;
    waiting.shift()?.(event);
  });
  return {
    child,
    next: (expected) =>
      new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no ${expected} within 120 s`)), 120_000);
        waiting.push((event) => {
          clearTimeout(timer);
          if (event === expected) resolve();
          else reject(new Error(`expected ${expected}, got ${event}`));
        });
      }),
  };
}

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number;
}

const testDb = await createPostgresTestDatabase();
const quantix = await createQuantix({ database: testDb.config, logger: pino({ level: 'silent' }) });
const cp = await startControlPlane({ quantix, apiToken: TOKEN });
const raw = new pg.Pool({ connectionString: (testDb.config as { connectionString: string }).connectionString, max: 4 });
try {
  const { repositories } = quantix;
  const nodes: { id: string; token: string }[] = [];
  for (let i = 0; i < NODES; i++) {
    const id = `bench-node-${i}`;
    await repositories.nodes.create({ id, hostname: id });
    const token = `token-${i}-${Math.random().toString(36).slice(2)}`;
    await repositories.nodes.setTokenDigest(id, tokenDigest(token));
    nodes.push({ id, token });
  }
  await repositories.pools.create({
    id: 'shared',
    name: 'shared images',
    type: 'nfs',
    shared: true,
    contentTypes: ['images'],
    nodeIds: nodes.map((n) => n.id),
  });

  // Quantix: connect everyone, then a reconnect storm.
  const clients = startClients(cp.url, nodes);
  await clients.next('acked');
  const countAcked = async (since: Date) =>
    Number((await raw.query('select count(*) from pool_node_states where updated_at >= $1', [since])).rows[0].count);
  const stormStart = new Date();
  const start = performance.now();
  clients.child.stdin?.write('reconnect\n');
  await clients.next('acked');
  while ((await countAcked(stormStart)) < NODES) await new Promise((r) => setTimeout(r, 10));
  const stormMs = performance.now() - start;
  clients.child.stdin?.write('exit\n');
  await once(clients.child, 'exit');

  // The floor: a bare ws server that answers each client's first message, same clients, same storm.
  const bare = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  bare.on('connection', (socket) =>
    socket.on('message', () => socket.send(JSON.stringify({ v: 1, type: 'pools.desired', generation: 1, pools: [] }))),
  );
  await once(bare, 'listening');
  const bareUrl = `http://127.0.0.1:${(bare.address() as { port: number }).port}`;
  const floorClients = startClients(bareUrl, nodes);
  await floorClients.next('acked');
  const floorStart = performance.now();
  floorClients.child.stdin?.write('reconnect\n');
  await floorClients.next('acked');
  const floorMs = performance.now() - floorStart;
  floorClients.child.stdin?.write('exit\n');
  await once(floorClients.child, 'exit');
  bare.close();

  // The available view with many images on one node.
  await repositories.pools.setNodeState({
    poolId: 'shared',
    nodeId: 'bench-node-0',
    status: 'active',
    mountPath: '/mnt/shared',
  });
  await repositories.images.upsertByLocation(
    Array.from({ length: IMAGES }, (_, i) => ({
      poolId: 'shared',
      relPath: `cloud/${i}.qcow2`,
      kind: 'cloud' as const,
      format: 'qcow2' as const,
      sizeBytes: 1e9 + i,
    })),
  );
  const get = (path: string) =>
    fetch(`${cp.url}/api/v1${path}`, { headers: { authorization: `Bearer ${TOKEN}` } }).then((r) => r.arrayBuffer());
  const time = async (rounds: number, op: () => Promise<unknown>) => {
    for (let i = 0; i < 5; i++) await op();
    const samples: number[] = [];
    for (let i = 0; i < rounds; i++) {
      const t = performance.now();
      await op();
      samples.push(performance.now() - t);
    }
    return percentile(samples, 50);
  };
  const rounds = quick ? 20 : 50;
  // A page of the view (what the wizard shows), ranked among all the node's images.
  const available = await time(rounds, () => get('/images/available?nodeId=bench-node-0&limit=50'));
  const sql = await time(rounds, () =>
    raw.query(`select * from images where pool_id = any($1) and phase <> 'deleting' order by name, id limit 50`, [
      ['shared'],
    ]),
  );
  const health = await time(rounds, () => get('/healthz'));

  console.log(`bench/pool-sync${quick ? ' (quick mode)' : ''}`);
  console.log(
    `reconnect storm, ${NODES} nodes: every acknowledgement stored in ${stormMs.toFixed(0)} ms; bare ws round trips ${floorMs.toFixed(0)} ms; ratio ${(stormMs / floorMs).toFixed(2)}x (target < 5000 ms: ${stormMs < 5000 ? 'ok' : 'OVER TARGET'})`,
  );
  console.log(
    `images/available, a page of 50 among ${IMAGES} images: p50 ${available.toFixed(1)} ms; raw SQL of a page of rows ${sql.toFixed(1)} ms (${(available / sql).toFixed(2)}x); /healthz ${health.toFixed(1)} ms (target p50 < 20 ms: ${available < 20 ? 'ok' : 'OVER TARGET'})`,
  );
} finally {
  await raw.end();
  await cp.close();
  await quantix.close();
  await testDb.dispose();
}
