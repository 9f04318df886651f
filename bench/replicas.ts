/**
 * bench/replicas — control-plane replicas (issue 13): 1 replica beside 3, each a separate process
 * (`quantix serve`, or bench/__fixtures__/replica-serve.ts where the CLI has no --replica-id and
 * --lease-seconds yet) on one PostgreSQL database made for the run, on 127.0.0.1 and ports of
 * their own. Every load generator and node client is a process of its own too.
 *   1. Scaling: GET /images?limit=50 with 10,000 images, req/s from autocannon (32 connections,
 *      round-robin over the replicas) on 3 replicas beside 1 — the ratio 3:1 (target ≥ 1: a
 *      replica added costs no throughput; on 2 cores shared with PostgreSQL and the load
 *      generator it cannot add much). Each side is measured after a few seconds of untimed load on
 *      the replicas new to it. The API's own figures are bench/api.ts's.
 *   2. Pool fan-out: 300 protocol-level nodes; a pool is created through the API on replica A
 *      and assigned to all of them: per node, the time until it is sent the pool and until its
 *      acknowledgement is stored (pool_node_states) — p50/p99, nodes all on A beside nodes
 *      spread over 3 replicas (LISTEN/NOTIFY carries it to B and C). Target p99 < 1 s.
 *   3. Reconnect storm: 2,000 protocol nodes on 3 replicas; one replica is SIGKILLed and its
 *      nodes redial the next replica after a jittered delay (50–500 ms, the daemon's first
 *      redial): time until every node's lease (node_leases) is held by a live replica, beside
 *      the same clients redialling from a SIGKILLed bare `ws` server to another (the floor).
 *      A redialling node takes its lease over at once (the dead replica's leases need not run
 *      out), so the lease is not in that time; the dead replica leaves /replicas when its row
 *      runs out, up to one lease after its last renewal: that time is printed beside it.
 *      Target ≤ 1.3x the floor. Three rounds (a new replica in place of the killed one each time),
 *      ours and the floor interleaved; the medians are compared.
 * QUANTIX_BENCH_QUICK=1: 200 images, 20 fan-out nodes, 50 storm nodes, one round, 2 s of load per figure.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import { tokenDigest } from '@quantix/control-plane';
import { createQuantix } from '@quantix/core';
import { createPostgresTestDatabase } from '@quantix/core/testing';
import { pino } from 'pino';
import { poolImageRows, SHARED_POOL_ID } from './__fixtures__/protocol-node.js';
import { cpuFrom, postgresBackendPids } from './lib/process-stats.js';
import { rawPool } from './lib/raw-pool.js';
import { againstBound, benchResults } from './lib/results.js';
import { median, percentile } from './lib/stats.js';

const quick = process.env.QUANTIX_BENCH_QUICK === '1';
const IMAGES = quick ? 200 : 10_000;
const FANOUT_NODES = quick ? 20 : 300;
/** The issue's bound on the pool fan-out: every node's acknowledgement stored, p99. */
const FANOUT_TARGET_MS = 1_000;
const STORM_NODES = quick ? 50 : 2_000;
/** Kills of a replica (and of a bare server), each side's figure the median. */
const STORM_ROUNDS = quick ? 1 : 3;
const LOAD_SECONDS = quick ? 2 : 10;
/** Untimed load first on each replica new to the figure, so neither side counts a cold process's JIT warm-up. */
const WARMUP_SECONDS = quick ? 1 : 3;
const CONNECTIONS = 32;
const LEASE_SECONDS = quick ? 5 : 15;
const JITTER_MS = 500;
const TOKEN = 'bench-replicas-token';
const REPO_ROOT = join(import.meta.dirname, '..');
const FIXTURES = join(import.meta.dirname, '__fixtures__');

const now = () => performance.timeOrigin + performance.now();
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

// Every child process, killed (SIGKILL) at the end whatever happens: finally, exit, a signal.
const children = new Set<ChildProcess>();
const killAll = () => {
  for (const child of children) child.kill('SIGKILL');
};
/** Drops the bench's database and files; set once they exist. */
let dispose: () => Promise<void> = async () => {};
process.once('exit', killAll);
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    killAll();
    void Promise.race([dispose().catch(() => undefined), sleep(5_000)]).finally(() => process.exit(130));
  });
}

/** A child process whose stdout is JSON lines; `next` waits for the next line matching `match`. */
function child(args: string[], env: NodeJS.ProcessEnv = process.env) {
  const proc = spawn(process.execPath, args, { env, stdio: ['pipe', 'pipe', 'inherit'] });
  children.add(proc);
  proc.once('exit', () => children.delete(proc));
  const waiting: {
    match: (line: Record<string, unknown>) => boolean;
    resolve: (line: Record<string, unknown>) => void;
  }[] = [];
  const listeners: ((line: Record<string, unknown>) => void)[] = [];
  createInterface({ input: proc.stdout as NodeJS.ReadableStream }).on('line', (text) => {
    if (!text.startsWith('{')) return;
    const line = JSON.parse(text) as Record<string, unknown>;
    for (const listener of listeners) listener(line);
    const i = waiting.findIndex((w) => w.match(line));
    if (i >= 0) waiting.splice(i, 1)[0]?.resolve(line);
  });
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
  return {
    proc,
    exited,
    on: (listener: (line: Record<string, unknown>) => void) => listeners.push(listener),
    next: (what: string, match: (line: Record<string, unknown>) => boolean, timeoutMs = 120_000) =>
      new Promise<Record<string, unknown>>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no ${what} within ${timeoutMs} ms`)), timeoutMs);
        const entry = {
          match,
          resolve: (line: Record<string, unknown>) => {
            clearTimeout(timer);
            resolve(line);
          },
        };
        waiting.push(entry);
        void exited.then((code) => {
          clearTimeout(timer);
          reject(new Error(`the process waited on for ${what} exited (${code})`));
        });
      }),
  };
}

// `quantix serve` itself when its CLI takes a replica id and a lease time; else the launcher.
const bin = join(REPO_ROOT, 'examples/control-plane/bin/quantix.js');
const serveHelp = execFileSync(process.execPath, [bin, 'serve', '--help'], { encoding: 'utf8' });
const cliHasReplicaFlags = serveHelp.includes('--replica-id') && serveHelp.includes('--lease-seconds');

async function startReplica(id: string, databaseUrl: string) {
  const env = {
    ...process.env,
    QUANTIX_DATABASE_URL: databaseUrl,
    QUANTIX_API_TOKEN: TOKEN,
    QUANTIX_LOG_LEVEL: process.env.QUANTIX_LOG_LEVEL ?? 'warn',
  };
  const args = cliHasReplicaFlags
    ? [
        bin,
        'serve',
        ...['--host', '127.0.0.1', '--port', '0', '--data-dir', join(dataRoot, id)],
        ...['--replica-id', id, '--lease-seconds', String(LEASE_SECONDS)],
      ]
    : ['--import', 'tsx', join(FIXTURES, 'replica-serve.ts'), '127.0.0.1', '0', id, String(LEASE_SECONDS)];
  const replica = child(args, env);
  const { url } = await replica.next(`replica ${id} listening`, (l) => l.event === 'listening', 60_000);
  return { id, url: url as string, ...replica };
}

interface Load {
  rps: number;
  p50: number;
  p99: number;
  errors: number;
  non2xx: number;
}
async function load(urls: string[], path: string, seconds = LOAD_SECONDS): Promise<Load> {
  const config = { urls, path: `/api/v1${path}`, token: TOKEN, connections: CONNECTIONS, seconds };
  const generator = child([join(FIXTURES, 'load.mjs'), JSON.stringify(config)]);
  const result = (await generator.next('load result', (l) => 'rps' in l, (seconds + 60) * 1000)) as unknown as Load;
  if (result.errors > 0 || result.non2xx > 0) {
    throw new Error(`GET ${path}: ${result.errors} errors, ${result.non2xx} non-2xx answers`);
  }
  return result;
}

function startNodes(urls: string[], nodes: { id: string; token: string }[]) {
  const file = join(dataRoot, `nodes-${Math.random().toString(36).slice(2)}.json`);
  writeFileSync(file, JSON.stringify({ urls, nodes, jitterMs: JITTER_MS, images: IMAGES }));
  return child(['--import', 'tsx', join(FIXTURES, 'replica-nodes.ts'), file]);
}
async function stopNodes(clients: ReturnType<typeof startNodes>): Promise<void> {
  clients.proc.stdin?.write('exit\n');
  await clients.exited;
}

const testDb = await createPostgresTestDatabase();
const dataRoot = mkdtempSync(join(tmpdir(), 'quantix-bench-replicas-'));
let disposed: Promise<void> | undefined;
dispose = () => {
  disposed ??= (async () => {
    rmSync(dataRoot, { recursive: true, force: true });
    await testDb.dispose();
  })();
  return disposed;
};
const databaseUrl = (testDb.config as { connectionString: string }).connectionString;
const raw = rawPool(databaseUrl, 2);
const quantix = await createQuantix({ database: testDb.config, logger: pino({ level: 'silent' }) });
try {
  // Seed: nodes with tokens, a pool on the first node holding the images.
  const { repositories } = quantix;
  const nodes: { id: string; token: string }[] = [];
  for (let i = 0; i < Math.max(FANOUT_NODES, STORM_NODES); i++) {
    const id = `bench-node-${i}`;
    await repositories.nodes.create({ id, hostname: id });
    const token = `token-${i}-${Math.random().toString(36).slice(2)}`;
    await repositories.nodes.setTokenDigest(id, tokenDigest(token));
    nodes.push({ id, token });
  }
  await repositories.pools.create({
    id: SHARED_POOL_ID,
    name: 'images',
    type: 'nfs',
    shared: true,
    contentTypes: ['images'],
    nodeIds: ['bench-node-0'],
  });
  await repositories.pools.setNodeState({
    poolId: SHARED_POOL_ID,
    nodeId: 'bench-node-0',
    status: 'active',
    mountPath: '/mnt/images',
  });
  await repositories.images.upsertByLocation(
    // The files its nodes' scans find: a scan after a reconnect finds each unchanged.
    poolImageRows(SHARED_POOL_ID, IMAGES),
  );

  const a = await startReplica('bench-a', databaseUrl);
  const api = async (method: string, path: string, body?: unknown) => {
    const response = await fetch(`${a.url}/api/v1${path}`, {
      method,
      headers: {
        authorization: `Bearer ${TOKEN}`,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${await response.text()}`);
    return response.json() as Promise<Record<string, unknown>>;
  };
  // Each load is a full page of 50 images, or the figures measure something else.
  const listPath = '/images?limit=50';
  const page = Object.values(await api('GET', listPath)).filter(Array.isArray);
  if (!page.some((items) => items.length === 50)) throw new Error(`GET ${listPath} does not answer a page of 50`);

  // 1. Read throughput, 1 replica (the only one running), then 3.
  await load([a.url], listPath, WARMUP_SECONDS);
  const list1 = await load([a.url], listPath);
  const b = await startReplica('bench-b', databaseUrl);
  const c = await startReplica('bench-c', databaseUrl);
  const all = [a.url, b.url, c.url];
  await load([b.url, c.url], listPath, WARMUP_SECONDS);
  const list3 = await load(all, listPath);

  // 2. Fan-out: every node on A (B and C idle), then the nodes spread over A, B and C.
  const fanoutNodes = nodes.slice(0, FANOUT_NODES);
  const fanout = async (urls: string[], poolId: string) => {
    const clients = startNodes(urls, fanoutNodes);
    const received = new Map<string, number>();
    clients.on((line) => {
      if (line.event === 'pool' && line.pool === poolId) received.set(line.node as string, line.at as number);
    });
    await clients.next('every fan-out node connected', (l) => l.event === 'ready');
    const stored = new Map<string, number>();
    const start = now();
    await api('POST', '/pools', {
      id: poolId,
      name: poolId,
      type: 'nfs',
      shared: true,
      config: { server: '127.0.0.1', export: `/export/${poolId}` },
      nodeIds: fanoutNodes.map((n) => n.id),
    });
    const deadline = start + 60_000;
    while (stored.size < FANOUT_NODES || received.size < FANOUT_NODES) {
      if (now() > deadline) {
        throw new Error(`fan-out ${poolId}: ${received.size} pushed, ${stored.size} stored of ${FANOUT_NODES} in 60 s`);
      }
      const { rows } = await raw.query(
        `select node_id from pool_node_states where pool_id = $1 and status = 'active'`,
        [poolId],
      );
      const at = now();
      for (const row of rows as { node_id: string }[]) if (!stored.has(row.node_id)) stored.set(row.node_id, at);
      await sleep(5);
    }
    await stopNodes(clients);
    const pushed = [...received.values()].map((t) => t - start);
    const acked = [...stored.values()].map((t) => t - start);
    // Node i is on urls[i % urls.length]: A's own nodes beside those the notification reaches.
    const onA = fanoutNodes.filter((_, i) => i % urls.length === 0).map((n) => (received.get(n.id) as number) - start);
    const elsewhere = fanoutNodes
      .filter((_, i) => i % urls.length !== 0)
      .map((n) => (received.get(n.id) as number) - start);
    return {
      pushedOnAP50: percentile(onA, 50),
      pushedElsewhereP50: percentile(elsewhere, 50), // NaN when every node is on A
      pushedP50: percentile(pushed, 50),
      pushedP99: percentile(pushed, 99),
      storedP50: percentile(acked, 50),
      storedP99: percentile(acked, 99),
    };
  };
  const fanout1 = await fanout([a.url], 'fanout-one');
  const fanout3 = await fanout(all, 'fanout-three');

  // 3. Reconnect storm: kill C, its nodes redial A or B; then the floor, the same clients on bare
  // servers. STORM_ROUNDS rounds, ours and the floor interleaved (a fresh C each round after the
  // first), compared by their medians: one kill is too noisy a sample on 2 shared cores.
  const stormNodes = nodes.slice(0, STORM_NODES);
  const liveLeases = async (excluding: string) =>
    Number(
      (await raw.query('select count(*) from node_leases where replica_id <> $1 and expires_at > now()', [excluding]))
        .rows[0].count,
    );
  const heldRounds: number[] = [];
  const readyRounds: number[] = [];
  const floorRounds: number[] = [];
  // The CPU each process used per round, from the kill until every node is held (or on a live
  // server): what the survivors, PostgreSQL and the clients each spent on a storm.
  const cpuPerRound: Record<'A' | 'B' | 'Postgres' | 'Clients' | 'FloorServers' | 'FloorClients', number[]> = {
    A: [],
    B: [],
    Postgres: [],
    Clients: [],
    FloorServers: [],
    FloorClients: [],
  };
  const pid = (process: { proc: { pid?: number | undefined } }) => process.proc.pid as number;
  let goneMs = Number.NaN;
  for (let round = 0; round < STORM_ROUNDS; round++) {
    const victim = round === 0 ? c : await startReplica(`bench-c${round}`, databaseUrl);
    const storm = startNodes([a.url, b.url, victim.url], stormNodes);
    await storm.next('every storm node connected', (l) => l.event === 'ready', 180_000);
    while ((await liveLeases('')) < STORM_NODES) await sleep(20);
    const stormReady = storm.next('every storm node on a live replica', (l) => l.event === 'ready', 180_000);
    const cpu = {
      A: cpuFrom([pid(a)]),
      B: cpuFrom([pid(b)]),
      Postgres: cpuFrom(await postgresBackendPids(raw)),
      Clients: cpuFrom([pid(storm)]),
    };
    const killedAt = now();
    victim.proc.kill('SIGKILL');
    while ((await liveLeases(victim.id)) < STORM_NODES) {
      if (now() - killedAt > 180_000) throw new Error('the storm nodes were not all held again within 180 s');
      await sleep(10);
    }
    heldRounds.push(now() - killedAt);
    for (const [name, used] of Object.entries(cpu)) cpuPerRound[name as keyof typeof cpu].push(used());
    readyRounds.push(((await stormReady).at as number) - killedAt);
    // Once: the dead replica leaves /replicas when its row's lease runs out.
    if (round === 0) {
      for (;;) {
        const replicas = (await api('GET', '/replicas')).replicas as { id: string }[];
        if (!replicas.some((r) => r.id === victim.id)) break;
        if (now() - killedAt > (LEASE_SECONDS + 30) * 1000) throw new Error('the killed replica stayed in /replicas');
        await sleep(50);
      }
      goneMs = now() - killedAt;
    }
    await stopNodes(storm);

    // The floor: the same clients on 3 bare ws servers, one SIGKILLed.
    const bare = await Promise.all(
      [0, 1, 2].map(async () => {
        const server = child([join(FIXTURES, 'bare-ws-server.mjs')]);
        const { url } = await server.next('bare ws server listening', (l) => l.event === 'listening');
        return { url: url as string, ...server };
      }),
    );
    const floorClients = startNodes(
      bare.map((s) => s.url),
      stormNodes,
    );
    await floorClients.next('every floor node connected', (l) => l.event === 'ready', 180_000);
    const floorReady = floorClients.next('every floor node on a live server', (l) => l.event === 'ready', 180_000);
    const floorCpu = { FloorServers: cpuFrom(bare.slice(0, 2).map(pid)), FloorClients: cpuFrom([pid(floorClients)]) };
    const floorKilledAt = now();
    bare[2]?.proc.kill('SIGKILL');
    floorRounds.push(((await floorReady).at as number) - floorKilledAt);
    for (const [name, used] of Object.entries(floorCpu)) cpuPerRound[name as keyof typeof floorCpu].push(used());
    await stopNodes(floorClients);
    for (const server of bare) server.proc.kill('SIGKILL');
  }
  const heldMs = median(heldRounds);
  const readyMs = median(readyRounds);
  const floorMs = median(floorRounds);

  const ms = (v: number) => `${v.toFixed(0)} ms`;
  const results = benchResults('replicas');
  console.log(`bench/replicas${quick ? ' (quick mode)' : ''}`);
  console.log(
    `replicas: ${cliHasReplicaFlags ? '`quantix serve --replica-id --lease-seconds`' : 'bench/__fixtures__/replica-serve.ts (the CLI has no --replica-id/--lease-seconds)'}, lease ${LEASE_SECONDS} s, 2 cores shared with PostgreSQL, the load generator and other work`,
  );
  console.log(
    results.add({
      name: `GET /images, 3 replicas : 1`,
      unit: 'req/s',
      better: 'higher',
      ours: { label: '3 replicas', value: list3.rps },
      peer: { label: '1 replica', value: list1.rps },
      target: { ratio: 1 },
      details: {
        images: IMAGES,
        connections: CONNECTIONS,
        p50: `${list1.p50} ms (1) / ${list3.p50} ms (3)`,
        p99: `${list1.p99} ms (1) / ${list3.p99} ms (3)`,
      },
    }),
  );
  console.log(
    results.add({
      name: `pool fan-out p99, ${FANOUT_NODES} nodes`,
      unit: 'ms',
      better: 'lower',
      ours: { label: 'spread over 3 replicas', value: fanout3.storedP99 },
      peer: { label: 'all on A', value: fanout1.storedP99 },
      details: {
        pushedP50: `${ms(fanout1.pushedP50)} (1) / ${ms(fanout3.pushedP50)} (3: A's own ${ms(fanout3.pushedOnAP50)}, B's and C's ${ms(fanout3.pushedElsewhereP50)})`,
        pushedP99: `${ms(fanout1.pushedP99)} (1) / ${ms(fanout3.pushedP99)} (3)`,
        storedP50: `${ms(fanout1.storedP50)} (1) / ${ms(fanout3.storedP50)} (3)`,
      },
    }),
  );
  console.log(
    results.add(
      againstBound({
        name: `pool fan-out p99, vs the ${FANOUT_TARGET_MS} ms target`,
        unit: 'ms',
        better: 'lower',
        ours: { label: 'spread over 3 replicas', value: fanout3.storedP99 },
        bound: { label: 'issue target', value: FANOUT_TARGET_MS },
      }),
    ),
  );
  console.log(
    `pool fan-out: ack stored p99 ${ms(fanout3.storedP99)} spread over 3 replicas; pushed p50 ${ms(fanout3.pushedP50)}, A's own nodes ${ms(fanout3.pushedOnAP50)}, B's and C's ${ms(fanout3.pushedElsewhereP50)}`,
  );
  console.log(
    results.add({
      name: `reconnect storm, ${STORM_NODES} nodes, 3 replicas`,
      unit: 'ms',
      better: 'lower',
      ours: { label: 'every node held again', value: heldMs },
      peer: { label: 'bare ws servers', value: floorMs },
      target: { ratio: 1.3 },
      details: {
        killedNodes: Math.round(STORM_NODES / 3),
        jitterMs: JITTER_MS,
        rounds: STORM_ROUNDS,
        ours: heldRounds.map(Math.round).join(' '),
        floor: floorRounds.map(Math.round).join(' '),
        sentPoolsMs: Math.round(readyMs),
        ...Object.fromEntries(Object.entries(cpuPerRound).map(([name, rounds]) => [`cpuMs${name}`, rounds.join(' ')])),
      },
    }),
  );
  console.log(
    `reconnect storm (median of ${STORM_ROUNDS}; ours ${heldRounds.map(ms).join(', ')}, floor ${floorRounds.map(ms).join(', ')}): one replica SIGKILLed, its ~${Math.round(STORM_NODES / 3)} nodes redial after 50–${JITTER_MS} ms; every node sent its pools ${ms(readyMs)}; the dead replica left /replicas after ${ms(goneMs)} (its row's lease, ${LEASE_SECONDS} s from its last renewal)`,
  );
  const perRound = (name: keyof typeof cpuPerRound) => cpuPerRound[name].map((v) => v.toFixed(0)).join(', ');
  console.log(
    `reconnect storm, CPU per round in ms (from the kill until every node is held): replicas A ${perRound('A')}, ` +
      `B ${perRound('B')}, PostgreSQL ${perRound('Postgres')}, the clients ${perRound('Clients')}; ` +
      `the floor's 2 bare servers ${perRound('FloorServers')}, its clients ${perRound('FloorClients')}`,
  );
  await results.save();
} finally {
  killAll();
  await raw.end();
  await quantix.close();
  await dispose();
}
