/**
 * bench/api — API throughput and latency of the image listings (issue 14, items 1 and 2), on
 * PostgreSQL seeded with 10,000 images across the pools of one node.
 *   Ours: `quantix serve` (the CLI that ships, built dist) in a process of its own.
 *   Peer: a bare fastify + `pg` server in a process of its own (bench/__fixtures__/api-bare-server.mjs)
 *   running the same page SQL — the statement our repository sends, captured here — and answering
 *   its rows as JSON.
 *   Load: autocannon in a third process (bench/__fixtures__/load.mjs), 32 connections, 4 runs of 5 s
 *   per side and route, alternating; the best of each side counts.
 *   1. GET /images?limit=50 and GET /images/available?nodeId=…&limit=50: req/s (target ≥ 0.7x the
 *      peer), p50/p99 in the details.
 *   2. One request at a time to /images/available: p50 (target < 5 ms) beside the raw SQL p50.
 * The text search figure (trigram index) is in bench/repository.
 * QUANTIX_BENCH_QUICK=1: 1,000 images, 2 s of load per figure. QUANTIX_BENCH_CPU_PROF=<dir>: a CPU
 * profile of `quantix serve` (`node --cpu-prof`) is written there as it stops.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import { createQuantix } from '@quantix/core';
import { createPostgresTestDatabase } from '@quantix/core/testing';
import { pino } from 'pino';
import { rawPool } from './lib/raw-pool.js';
import { againstBound, benchResults } from './lib/results.js';
import { percentile } from './lib/stats.js';

const quick = process.env.QUANTIX_BENCH_QUICK === '1';
const IMAGES = quick ? 1_000 : 10_000;
const POOLS = ['pool-a', 'pool-b', 'pool-c', 'pool-d'];
const NODE = 'bench-node';
const LOAD_SECONDS = quick ? 2 : 5;
/** Load runs per side and route. */
const ROUNDS = quick ? 1 : 4;
const CONNECTIONS = 32;
const SINGLE_ROUNDS = quick ? 100 : 1_000;
/** The bound on one `/images/available` request with 10,000 images, p50. */
const SINGLE_TARGET_MS = 5;
const TOKEN = 'bench-api-token';
const REPO_ROOT = join(import.meta.dirname, '..');
const FIXTURES = join(import.meta.dirname, '__fixtures__');

const results = benchResults('api');

// Every child process is killed at the end, whatever happens.
const children = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of children) child.kill('SIGKILL');
});

/** Starts `node args…` and resolves with the first JSON line of its stdout that `match`es. */
function child(args: string[], env: NodeJS.ProcessEnv, match: (line: Record<string, unknown>) => boolean) {
  const proc = spawn(process.execPath, args, { env, stdio: ['ignore', 'pipe', 'inherit'] });
  children.add(proc);
  proc.once('exit', () => children.delete(proc));
  return new Promise<Record<string, unknown>>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no answer from ${args.join(' ')}`)), 120_000);
    proc.once('exit', (code) => reject(new Error(`${args.join(' ')} exited (${code})`)));
    createInterface({ input: proc.stdout as NodeJS.ReadableStream }).on('line', (text) => {
      if (!text.startsWith('{')) return;
      const line = JSON.parse(text) as Record<string, unknown>;
      if (match(line)) {
        clearTimeout(timer);
        resolve(line);
      }
    });
  });
}

interface Load {
  rps: number;
  p50: number;
  p99: number;
  errors: number;
  non2xx: number;
}
async function load(url: string, path: string): Promise<Load> {
  const config = { urls: [url], path, token: TOKEN, connections: CONNECTIONS, seconds: LOAD_SECONDS };
  const result = (await child(
    [join(FIXTURES, 'load.mjs'), JSON.stringify(config)],
    process.env,
    (l) => 'rps' in l,
  )) as unknown as Load;
  if (result.errors > 0 || result.non2xx > 0) {
    throw new Error(`GET ${url}${path}: ${result.errors} errors, ${result.non2xx} non-2xx answers`);
  }
  return result;
}

const testDb = await createPostgresTestDatabase();
const dataDir = mkdtempSync(join(tmpdir(), 'quantix-bench-api-'));
const databaseUrl = (testDb.config as { connectionString: string }).connectionString;
const raw = rawPool(databaseUrl, 2);
const quantix = await createQuantix({ database: testDb.config, logger: pino({ level: 'silent' }) });
try {
  const { repositories } = quantix;
  await repositories.nodes.create({ id: NODE, hostname: NODE });
  for (const id of POOLS) {
    await repositories.pools.create({ id, name: id, type: 'local', contentTypes: ['images', 'iso'], nodeIds: [NODE] });
    await repositories.pools.setNodeState({ poolId: id, nodeId: NODE, status: 'active', mountPath: `/srv/${id}` });
  }
  const distributions = ['ubuntu', 'debian', 'fedora', 'alpine', 'rocky'];
  await repositories.images.upsertByLocation(
    Array.from({ length: IMAGES }, (_, i) => ({
      poolId: POOLS[i % POOLS.length] as string,
      relPath: `${i % 3 === 0 ? 'iso' : 'cloud'}/${distributions[i % distributions.length]}-${i}.${i % 3 === 0 ? 'iso' : 'qcow2'}`,
      kind: i % 3 === 0 ? ('iso' as const) : ('cloud' as const),
      ...(i % 3 === 0 ? {} : { format: 'qcow2' as const }),
      sizeBytes: 1e9 + i,
    })),
  );
  // Some rows in every other state the view ranks.
  await raw.query(`update images set phase = 'downloading' where id in (select id from images order by id limit 20)`);
  await raw.query(
    `update images set phase = 'error', error = '{"code":"DOWNLOAD_FAILED","message":"bench","retryable":true}' where id in (select id from images order by id desc limit 20)`,
  );
  await raw.query('vacuum analyze images');

  const bin = join(REPO_ROOT, 'examples/control-plane/bin/quantix.js');
  const serveEnv = {
    ...process.env,
    QUANTIX_DATABASE_URL: databaseUrl,
    QUANTIX_API_TOKEN: TOKEN,
    QUANTIX_LOG_LEVEL: process.env.QUANTIX_LOG_LEVEL ?? 'warn',
  };
  const profile = process.env.QUANTIX_BENCH_CPU_PROF;
  const ours = (await child(
    [
      ...(profile ? ['--cpu-prof', '--cpu-prof-dir', profile] : []),
      bin,
      'serve',
      '--host',
      '127.0.0.1',
      '--port',
      '0',
      '--data-dir',
      dataDir,
      '--replica-id',
      'bench-api',
    ],
    serveEnv,
    (l) => l.event === 'listening',
  )) as { url: string };
  // `quantix serve` marks the pool states of a node it does not hold `unknown`; the node reports
  // them mounted again, as a connected daemon would, so the view has ready rows.
  for (const id of POOLS) {
    await repositories.pools.setNodeState({ poolId: id, nodeId: NODE, status: 'active', mountPath: `/srv/${id}` });
  }
  const listPath = '/api/v1/images?limit=50';
  const availablePath = `/api/v1/images/available?nodeId=${NODE}&limit=50`;
  // The statements our repository sends for those two pages (the view's with the catalog the
  // server offers), captured as they go to PostgreSQL: the peer runs exactly these.
  const catalog = (await (
    await fetch(`${ours.url}/api/v1/catalog`, { headers: { authorization: `Bearer ${TOKEN}` } })
  ).json()) as { entries: { id: string }[] };
  const captured: { sql: string; bindings: unknown[] }[] = [];
  const capture = (query: { sql: string; bindings: unknown[] }) => captured.push(query);
  quantix.database.knex.on('query', capture);
  await repositories.images.page({ limit: 50, offset: 0 });
  const listSql = captured.at(-1);
  await repositories.images.listRankedForNode({
    nodeId: NODE,
    catalogIds: catalog.entries.map((entry) => entry.id),
    limit: 50,
    offset: 0,
  });
  const availableSql = captured.at(-1);
  quantix.database.knex.off('query', capture);
  if (!listSql || !availableSql) throw new Error('the page statements were not captured');
  const peerRoutes = {
    '/api/v1/images': { sql: listSql.sql, params: listSql.bindings },
    '/api/v1/images/available': { sql: availableSql.sql, params: availableSql.bindings },
  };
  const peer = (await child(
    [join(FIXTURES, 'api-bare-server.mjs'), JSON.stringify({ databaseUrl, token: TOKEN, routes: peerRoutes })],
    process.env,
    (l) => l.event === 'listening',
  )) as { url: string };

  const get = async (url: string) => {
    const response = await fetch(url, { headers: { authorization: `Bearer ${TOKEN}` } });
    if (!response.ok) throw new Error(`GET ${url}: ${response.status} ${await response.text()}`);
    return (await response.json()) as { images: unknown[] };
  };
  // Both sides answer full pages of 50, or the figures compare different work.
  for (const base of [ours.url, peer.url]) {
    for (const path of [listPath, availablePath]) {
      const { images } = await get(`${base}${path}`);
      if (images.length !== 50) throw new Error(`GET ${base}${path} answers ${images.length} images, not 50`);
    }
  }

  console.log(
    `bench/api on PostgreSQL, ${IMAGES} images in ${POOLS.length} pools of one node, ${CONNECTIONS} connections, ` +
      `best of ${ROUNDS} × ${LOAD_SECONDS} s per side${quick ? ' (quick mode)' : ''}`,
  );
  for (const [name, path] of [
    ['GET /images?limit=50', listPath],
    ['GET /images/available?limit=50', availablePath],
  ] as const) {
    // Short runs of each side, alternating and each round starting with the other side, so drift
    // on a busy machine hits both alike; the best run of each side counts.
    const runs: [Load[], Load[]] = [[], []];
    for (let round = 0; round < ROUNDS; round++) {
      const order = round % 2 === 0 ? ([1, 0] as const) : ([0, 1] as const);
      for (const side of order) runs[side].push(await load(side === 0 ? ours.url : peer.url, path));
    }
    const best = (side: Load[]) => side.reduce((a, b) => (b.rps > a.rps ? b : a));
    const [o, p] = [best(runs[0]), best(runs[1])];
    console.log(
      results.add({
        name,
        unit: 'req/s',
        better: 'higher',
        ours: { label: 'quantix serve', value: o.rps },
        peer: { label: 'bare fastify+pg', value: p.rps },
        target: { ratio: 0.7 },
        details: {
          oursP50ms: o.p50,
          oursP99ms: o.p99,
          peerP50ms: p.p50,
          peerP99ms: p.p99,
          oursRuns: runs[0].map((r) => Math.round(r.rps)).join('/'),
          peerRuns: runs[1].map((r) => Math.round(r.rps)).join('/'),
          images: IMAGES,
        },
      }),
    );
  }

  // One request at a time: the view's latency beside its SQL alone, interleaved.
  const single: number[] = [];
  const sql: number[] = [];
  for (let i = 0; i < SINGLE_ROUNDS + 50; i++) {
    let start = performance.now();
    await get(`${ours.url}${availablePath}`);
    const took = performance.now() - start;
    start = performance.now();
    await raw.query({ name: 'bench_available', text: availableSql.sql, values: availableSql.bindings });
    const sqlTook = performance.now() - start;
    if (i >= 50) {
      single.push(took);
      sql.push(sqlTook);
    }
  }
  const singleP50 = percentile(single, 50);
  const sqlP50 = percentile(sql, 50);
  console.log(
    results.add({
      name: 'GET /images/available, one at a time',
      unit: 'ms',
      better: 'lower',
      ours: { label: 'quantix serve p50', value: singleP50 },
      peer: { label: 'raw SQL p50', value: sqlP50 },
      details: { oursP99ms: percentile(single, 99), sqlP99ms: percentile(sql, 99), images: IMAGES },
    }),
  );
  console.log(
    results.add(
      againstBound({
        name: `GET /images/available, one at a time, vs the ${SINGLE_TARGET_MS} ms target`,
        unit: 'ms',
        better: 'lower',
        ours: { label: 'quantix serve p50', value: singleP50 },
        bound: { label: 'issue target', value: SINGLE_TARGET_MS },
      }),
    ),
  );
  await results.save();
} finally {
  // The servers go before their database does.
  await Promise.all([...children].map((proc) => new Promise((resolve) => proc.once('exit', resolve).kill('SIGTERM'))));
  await raw.end();
  await quantix.close();
  await testDb.dispose();
  rmSync(dataDir, { recursive: true, force: true });
}
