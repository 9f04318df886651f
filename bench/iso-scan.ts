/**
 * bench/iso-scan — the ISO scan that runs, beside its natural peer, in one run.
 *   1,000 small real ISOs (made once with xorriso and genisoimage under 20 labels real media carry,
 *   then copied) in a local pool. The control plane (createControlPlane on PostgreSQL) asks a
 *   NodeAgent over a real WebSocket for `pool.scan`; the node lists the pool, reads and identifies
 *   every ISO, sends scan.result, and the hub ingests it into the database — the path of
 *   `quantix serve` with a node daemon, timed from the request to the answer (which the node sends
 *   after its scan.result, so the rows are written by then):
 *   - cold: no rows yet and osinfo-db not loaded; every file is read, identified and inserted —
 *     beside `find -name '*.iso'` and one `isoinfo -d` per file, which only reads the volume ids,
 *     and, for the database part, one raw multi-row SQL insert of as many rows;
 *   - warm: nothing changed; the node reads no file again (same size and mtime) and the ingest
 *     writes no row — beside `find -printf '%s %T@ %P'` (the listing with sizes and dates).
 *     Target ≤ 1.3× the listing, for 1,000 and for 20,000 ISOs (the 20,000 are hard links of the
 *     stock ISOs in a pool of their own, scanned once before the warm rounds).
 *   - cold, disk images: the same many qcow2 files (qemu-img made, then copied) in a pool of
 *     disk images: the node reads each one's header (is it an image that names other files?) —
 *     beside `find` and `head -c 65536` of every file, one process, the same bytes read.
 * QUANTIX_BENCH_QUICK=1 runs 100 ISOs only (CI runs it so the bench never rots).
 */
import { execFile } from 'node:child_process';
import { copyFile, link, mkdir, mkdtemp, rm } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { promisify } from 'node:util';
import { createControlPlane, webSocketChannel } from '@quantix/control-plane';
import { createPoolRootPolicy, createQuantix, type NodeMessage, PROTOCOL_LIMITS } from '@quantix/core';
import { createPostgresTestDatabase } from '@quantix/core/testing';
import { clearOsinfoDatabaseCache, createIsoInspector, loadOsinfoDatabase } from '@quantix/images-iso';
import { NodeAgent } from '@quantix/node-runtime';
import { LocalStorageBackend, localPoolType, storageLocalPlugin } from '@quantix/storage-local';
import { pino } from 'pino';
import { WebSocket, WebSocketServer } from 'ws';
import { benchResults } from './lib/results.js';
import { median } from './lib/stats.js';

const run = promisify(execFile);
const quick = process.env.QUANTIX_BENCH_QUICK === '1';
const ISOS = quick ? 100 : 1_000;
/** The large warm case of the full run: as many ISOs as a big shared library holds. */
const LARGE_ISOS = quick ? null : 20_000;
const PER_DIRECTORY = 100;
// Rounds of each warm case: a listing of 20,000 files varies by a third from run to run here.
const WARM_ROUNDS = 11;
const results = benchResults('iso-scan');

/** Volume ids of real media (publisher where identification needs it, UDF like Windows media). */
const LABELS: { volumeId: string; publisher?: string; udf?: boolean }[] = [
  { volumeId: 'Ubuntu-Server 24.04.1 LTS amd64' },
  { volumeId: 'Ubuntu 22.04.1 LTS amd64' },
  { volumeId: 'Ubuntu-Server 22.04.3 LTS amd64' },
  { volumeId: 'Debian 12.7.0 amd64 n' },
  { volumeId: 'Debian 11.2.0 amd64 n' },
  { volumeId: 'Debian 13.0.0 amd64 n' },
  { volumeId: 'Rocky-9-4-x86_64-dvd' },
  { volumeId: 'Rocky-8-10-x86_64-dvd' },
  { volumeId: 'AlmaLinux-9-4-x86_64-dvd' },
  { volumeId: 'Fedora-S-dvd-x86_64-41' },
  { volumeId: 'Fedora-S-dvd-x86_64-37' },
  { volumeId: 'CentOS-Stream-9-BaseOS-x86_64' },
  { volumeId: 'RHEL-9-4-0-BaseOS-x86_64' },
  { volumeId: 'openSUSE-Leap-15.6-DVD-x86_64' },
  { volumeId: '14_1_RELEASE_AMD64_CD' },
  { volumeId: 'CCCOMA_X64FRE_EN-US_DV9', publisher: 'MICROSOFT CORPORATION', udf: true },
  { volumeId: 'SSS_X64FREE_EN-US_DV9', publisher: 'MICROSOFT CORPORATION', udf: true },
  { volumeId: 'virtio-win-0.1.262' },
  { volumeId: 'cidata' },
  { volumeId: 'MY_BACKUP_DISC' },
];

function ms(value: number): string {
  return `${value.toFixed(1)} ms`;
}

/** The peer of a warm scan: the listing with sizes and dates, as one process. */
async function listWithFind(root: string): Promise<void> {
  await run('find', [root, '-name', '*.iso', '-type', 'f', '-printf', '%s %T@ %P\n'], {
    maxBuffer: 64 * 1024 * 1024,
  });
}

await run('bash', [
  join(import.meta.dirname, '..', 'scripts', 'ensure-packages.sh'),
  'xorriso',
  'genisoimage',
  'osinfo-db',
]);
const base = await mkdtemp(join(tmpdir(), 'quantix-bench-iso-'));
const testDb = await createPostgresTestDatabase();
const quantix = await createQuantix({
  database: testDb.config,
  plugins: [storageLocalPlugin],
  logger: pino({ level: 'silent' }),
});
const cp = createControlPlane({ quantix });
const server = new WebSocketServer({ host: '127.0.0.1', port: 0, maxPayload: PROTOCOL_LIMITS.maxNodeMessageBytes });
let socket: WebSocket | undefined;
let agent: NodeAgent | undefined;
try {
  // Stock ISOs: one per label, small (no padding), as xorriso and genisoimage make them.
  const stock = join(base, 'stock');
  const source = join(base, 'source');
  await mkdir(stock);
  await mkdir(source);
  await run('sh', ['-c', 'echo quantix > "$1/README.TXT"', 'sh', source]);
  const stockFiles: string[] = [];
  for (const [index, label] of LABELS.entries()) {
    const out = join(stock, `${index}.iso`);
    const ids = ['-V', label.volumeId, ...(label.publisher ? ['-publisher', label.publisher] : [])];
    if (label.udf) await run('genisoimage', ['-quiet', ...ids, '-udf', '-J', '-o', out, source]);
    else
      await run('xorriso', [
        '-as',
        'mkisofs',
        '-quiet',
        ...ids,
        '-sysid',
        'LINUX',
        '-J',
        '-R',
        '-no-pad',
        '-o',
        out,
        source,
      ]);
    stockFiles.push(out);
  }
  const root = join(base, 'pool');
  await mkdir(root);
  const imagesRoot = join(base, 'images');
  await mkdir(imagesRoot);

  // The control plane and one node, over a real WebSocket, as `quantix serve` and a node daemon.
  await cp.start();
  const repos = quantix.repositories;
  const node = await repos.nodes.create({ hostname: 'bench-node', address: '127.0.0.1' });
  const pool = await repos.pools.create({
    name: 'bench',
    type: 'local',
    config: { path: root },
    contentTypes: ['iso'],
    shared: true,
    nodeIds: [node.id],
  });
  const imagesPool = await repos.pools.create({
    name: 'bench-images',
    type: 'local',
    config: { path: imagesRoot },
    contentTypes: ['images'],
    shared: true,
    nodeIds: [node.id],
  });
  // The large pool of the full run, empty until its warm case: the node has it from its first push.
  const largeRoot = join(base, 'large');
  await mkdir(largeRoot);
  const large = LARGE_ISOS
    ? await repos.pools.create({
        name: 'bench-large',
        type: 'local',
        config: { path: largeRoot },
        contentTypes: ['iso'],
        shared: true,
        nodeIds: [node.id],
      })
    : null;
  server.on('connection', (ws, request) => cp.hub.attach(node.id, webSocketChannel(ws, { transport: request.socket })));
  if (server.address() === null) await new Promise((resolve) => server.once('listening', resolve));
  // Cold: osinfo-db not loaded in this process and no cache file of it (the worst case).
  clearOsinfoDatabaseCache();
  const fromNode: NodeMessage[] = [];
  const client = new WebSocket(`ws://127.0.0.1:${(server.address() as AddressInfo).port}`);
  socket = client;
  const nodeAgent = new NodeAgent({
    nodeId: node.id,
    backends: [new LocalStorageBackend()],
    poolTypes: [localPoolType],
    poolRoots: createPoolRootPolicy({ allowedRoots: [base] }),
    inspector: createIsoInspector({ osinfo: { cacheDir: join(base, 'cold-cache') } }),
    poolRecheckIntervalMs: 0,
    send: (message) => {
      fromNode.push(message);
      client.send(JSON.stringify(message));
    },
  });
  agent = nodeAgent;
  client.on('message', (data) => void nodeAgent.handle(data.toString()));
  await new Promise((resolve) => client.once('open', resolve));
  client.send(JSON.stringify(nodeAgent.hello({ hostname: 'bench-node', agentVersion: 'bench' })));
  // The scans that follow the pool sync, of the still empty ISO pools (a pool of disk images gets
  // none): the node is then ready.
  const syncScans = large ? 2 : 1;
  while (fromNode.filter((m) => m.type === 'response').length < syncScans) await new Promise((r) => setTimeout(r, 10));

  const files: string[] = [];
  for (let i = 0; i < ISOS; i++) {
    const directory = join(root, `shelf-${Math.floor(i / PER_DIRECTORY)}`);
    if (i % PER_DIRECTORY === 0) await mkdir(directory, { recursive: true });
    const path = join(directory, `disc-${i}.iso`);
    await copyFile(stockFiles[i % stockFiles.length] as string, path);
    files.push(path);
  }
  const scan = () =>
    cp.hub.request(node.id, { op: 'pool.scan', poolId: pool.id, content: 'iso' }, { timeoutMs: 600_000 });

  // osinfo-db on its own: parsed from its XML (a machine's first start), then from its cache file.
  const parsed = await loadOsinfoDatabase({ cacheDir: join(base, 'osinfo-cache') });
  const cached = await loadOsinfoDatabase({ cacheDir: join(base, 'osinfo-cache') });
  clearOsinfoDatabaseCache();

  // The peer, cold: find, then one isoinfo per file for its volume id, as a shell loop would.
  let start = performance.now();
  const { stdout: found } = await run('find', [root, '-name', '*.iso', '-type', 'f']);
  const volumeIds: string[] = [];
  for (const path of found.trim().split('\n')) {
    const { stdout } = await run('isoinfo', ['-d', '-i', path]);
    volumeIds.push(/^Volume id: (.*)$/m.exec(stdout)?.[1] ?? '');
  }
  const peerMs = performance.now() - start;
  if (volumeIds.length !== ISOS) throw new Error(`find found ${volumeIds.length} of ${ISOS}`);

  // The database part's peer: the same number of rows in one raw multi-row insert.
  const knex = quantix.database.knex;
  await knex.raw('create temporary table bench_rows (pool_id text, rel_path text, size_bytes bigint, labels jsonb)');
  start = performance.now();
  await knex('bench_rows').insert(
    files.map((path, i) => ({
      pool_id: pool.id,
      rel_path: path.slice(root.length + 1),
      size_bytes: 40960,
      labels: { i },
    })),
  );
  const insertMs = performance.now() - start;

  // Cold: empty table; the node reads and identifies every file, the hub inserts every row.
  start = performance.now();
  const cold = await scan();
  const coldMs = performance.now() - start;
  const ready = await repos.images.count({ poolId: pool.id, phase: 'ready' });
  if (cold.files !== ISOS || ready !== ISOS)
    throw new Error(`cold scan: ${cold.files} files sent, ${ready} rows ready of ${ISOS}`);

  /**
   * Warm rounds, interleaved with the listing: the median of each, after checking that a warm scan
   * wrote no row (the sum of the rows' versions does not move).
   */
  const warmRounds = async (scanPool: () => Promise<unknown>, poolId: string, poolRoot: string) => {
    const warmTimes: number[] = [];
    const findTimes: number[] = [];
    for (let round = 0; round < WARM_ROUNDS; round++) {
      start = performance.now();
      await listWithFind(poolRoot);
      findTimes.push(performance.now() - start);
      const versions = await knex('images').where({ pool_id: poolId }).sum({ total: 'version' });
      start = performance.now();
      await scanPool();
      warmTimes.push(performance.now() - start);
      const after = await knex('images').where({ pool_id: poolId }).sum({ total: 'version' });
      if (Number(after[0]?.total) !== Number(versions[0]?.total)) throw new Error('a warm scan wrote rows');
    }
    return { warmMs: median(warmTimes), findMs: median(findTimes) };
  };
  const { warmMs, findMs } = await warmRounds(scan, pool.id, root);
  const unknown = (await repos.images.list({ poolId: pool.id })).filter((i) => i.os.family === 'unknown').length;

  console.log(
    `bench/iso-scan: ${ISOS} ISOs (${LABELS.length} labels of real media) in a local pool; control plane on PostgreSQL, ` +
      `one node agent over a WebSocket${quick ? ' (quick mode)' : ''}`,
  );
  console.log(
    results.add({
      name: `cold scan, ${ISOS} ISOs`,
      unit: 'ms',
      better: 'lower',
      ours: { label: 'node reads, identifies; hub inserts', value: coldMs },
      peer: { label: 'find + isoinfo loop', value: peerMs },
      target: { ratio: 1 },
      details: { isos: ISOS, rawInsertMs: Math.round(insertMs), unknownOs: unknown },
    }),
  );
  console.log(
    results.add({
      name: `warm scan, ${ISOS} ISOs`,
      unit: 'ms',
      better: 'lower',
      ours: { label: 'nothing changed, nothing written', value: warmMs },
      peer: { label: 'find -printf', value: findMs },
      target: { ratio: 1.3 },
      details: { isos: ISOS, rounds: WARM_ROUNDS },
    }),
  );
  console.log(
    `  the database part of the cold scan beside a raw multi-row insert of ${ISOS} rows: ${ms(insertMs)} ` +
      `(${(coldMs / insertMs).toFixed(1)}x is the whole cold scan against that insert alone)`,
  );
  console.log(
    `  per ISO: cold ${((coldMs / ISOS) * 1000).toFixed(0)} µs, find+isoinfo ${((peerMs / ISOS) * 1000).toFixed(0)} µs, ` +
      `warm ${((warmMs / ISOS) * 1000).toFixed(0)} µs; ${ready} rows, ${unknown} of unknown OS (the backup disc's copies)`,
  );
  console.log(
    `  osinfo-db load, once per process (in the cold scan above): ${ms(parsed?.loadMs ?? 0)} parsing the XML of ` +
      `${parsed?.rules.length} media entries on a machine's first start, ${ms(cached?.loadMs ?? 0)} from its cache file after`,
  );

  // Cold, disk images: every file's header read (no qemu-img), the rows inserted.
  const stockImage = join(stock, 'disk.qcow2');
  await run('qemu-img', ['create', '-q', '-f', 'qcow2', stockImage, '1G']);
  for (let i = 0; i < ISOS; i++) {
    const directory = join(imagesRoot, `shelf-${Math.floor(i / PER_DIRECTORY)}`);
    if (i % PER_DIRECTORY === 0) await mkdir(directory, { recursive: true });
    await copyFile(stockImage, join(directory, `disk-${i}.qcow2`));
  }
  // Both sides read from the page cache (the copies were just written).
  start = performance.now();
  await run('sh', ['-c', 'find "$1" -name "*.qcow2" -type f -exec head -q -c 65536 {} + | wc -c', 'sh', imagesRoot]);
  const headsMs = performance.now() - start;
  start = performance.now();
  const imagesCold = await cp.hub.request(
    node.id,
    { op: 'pool.scan', poolId: imagesPool.id, content: 'images' },
    { timeoutMs: 600_000 },
  );
  const imagesColdMs = performance.now() - start;
  const imageRows = await repos.images.count({ poolId: imagesPool.id, phase: 'ready' });
  if (imagesCold.files !== ISOS || imageRows !== ISOS)
    throw new Error(`cold image scan: ${imagesCold.files} files sent, ${imageRows} rows ready of ${ISOS}`);
  console.log(
    results.add({
      name: `cold scan, ${ISOS} disk images`,
      unit: 'ms',
      better: 'lower',
      ours: { label: 'node reads each header; hub inserts', value: imagesColdMs },
      peer: { label: 'find + head -c 65536 of each', value: headsMs },
      details: { images: ISOS },
    }),
  );

  if (LARGE_ISOS !== null && large) {
    // Hard links of the stock ISOs: the same bytes, without 20,000 copies to write.
    for (let i = 0; i < LARGE_ISOS; i++) {
      const directory = join(largeRoot, `shelf-${Math.floor(i / PER_DIRECTORY)}`);
      if (i % PER_DIRECTORY === 0) await mkdir(directory, { recursive: true });
      await link(stockFiles[i % stockFiles.length] as string, join(directory, `disc-${i}.iso`));
    }
    const scanLarge = () =>
      cp.hub.request(node.id, { op: 'pool.scan', poolId: large.id, content: 'iso' }, { timeoutMs: 600_000 });
    start = performance.now();
    await scanLarge();
    const firstMs = performance.now() - start;
    const largeRows = await repos.images.count({ poolId: large.id, phase: 'ready' });
    if (largeRows !== LARGE_ISOS) throw new Error(`large pool: ${largeRows} rows ready of ${LARGE_ISOS}`);
    const largeWarm = await warmRounds(scanLarge, large.id, largeRoot);
    console.log(
      results.add({
        name: `warm scan, ${LARGE_ISOS} ISOs`,
        unit: 'ms',
        better: 'lower',
        ours: { label: 'nothing changed, nothing written', value: largeWarm.warmMs },
        peer: { label: 'find -printf', value: largeWarm.findMs },
        target: { ratio: 1.3 },
        details: { isos: LARGE_ISOS, rounds: WARM_ROUNDS, firstScanMs: Math.round(firstMs) },
      }),
    );
  }
  await results.save();
} finally {
  socket?.close();
  await agent?.close();
  await cp.close();
  server.close();
  await quantix.close();
  await testDb.dispose();
  await rm(base, { recursive: true, force: true });
}
