/**
 * bench/api-fuzz — the adversarial fuzz of every API route, run large, beside its peer.
 *   A real all-in-one system (embedded database, its node over a real WebSocket, a local pool);
 *   requests generated from each route's schemas in the OpenAPI document, sequentially over one
 *   keep-alive connection pool: how many, how many failed (5xx, leaks, another error shape, a
 *   file outside a pool changed) — and how fast the API takes them beside the same number of
 *   GET /healthz, the cheapest request it answers (the floor).
 *   Then a node with a valid token sends frames generated from the protocol's schema over its
 *   socket (adversarial/socket-fuzz.ts), each followed by a ping: frames per second beside bare
 *   ping round trips on the same socket (the floor), and how many answers a node could fault.
 * QUANTIX_BENCH_QUICK=1: 10 requests per route and 200 frames (CI); full: 500 and 20,000.
 * QUANTIX_FUZZ_SEED picks the seed (default: a new one each full run, printed, so a failure can
 * be replayed).
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { LOCAL_NODE_ID, LOCAL_POOL_ID, startAllInOne } from '../examples/control-plane/src/cli/up.js';
import { API_PREFIX } from '../examples/control-plane/src/control-plane.js';
import { makeCanary } from '../examples/control-plane/test/adversarial/canary.js';
import { type FuzzContext, runFuzz } from '../examples/control-plane/test/adversarial/fuzz.js';
import { rawRequest } from '../examples/control-plane/test/adversarial/http.js';
import { operationsOf } from '../examples/control-plane/test/adversarial/operations.js';
import {
  pingRoundTrips,
  runSocketFuzz,
  socketFuzzFailures,
} from '../examples/control-plane/test/adversarial/socket-fuzz.js';
import { benchResults } from './lib/results.js';

const quick = process.env.QUANTIX_BENCH_QUICK === '1';
const RUNS = quick ? 10 : 500;
const FRAMES = quick ? 200 : 20_000;
// Refused frames are what the fuzz is for: their warnings (with stacks) would bury the figures.
process.env.QUANTIX_LOG_LEVEL ??= 'error';
const SEED = Number(process.env.QUANTIX_FUZZ_SEED ?? (quick ? 20261130 : Date.now() % 2 ** 31));

const root = mkdtempSync(join(tmpdir(), 'quantix-bench-fuzz-'));
const canary = makeCanary(root);
const before = canary.digest();
const system = await startAllInOne({
  dataDir: join(root, 'data'),
  database: { client: 'pglite' },
  host: '127.0.0.1',
  port: 0,
  libvirtUri: null,
  log: () => {},
});
try {
  mkdirSync(join(root, 'data', 'pools', 'fuzz'), { recursive: true });
  const headers = { authorization: `Bearer ${system.apiToken}` };
  const document = await rawRequest(system.url, { method: 'GET', path: `${API_PREFIX}/openapi.json` });
  const operations = operationsOf(document.json, system.controlPlane.routes, API_PREFIX).filter(
    (o) => o.auth === 'api' && !o.websocket,
  );

  const context: FuzzContext = {
    knownIds: [LOCAL_NODE_ID, LOCAL_POOL_ID],
    forbiddenPaths: [canary.dir, join(canary.dir, 'canary.iso'), join(root, 'data')],
    usablePaths: [join(root, 'data', 'pools', 'fuzz')],
    secrets: [
      join(root, 'data', 'db'),
      join(root, 'data', 'uploads'),
      join(root, 'data', 'credentials.json'),
      system.apiToken,
    ],
  };
  const fuzzStart = performance.now();
  const report = await runFuzz({
    baseUrl: system.url,
    headers,
    operations,
    context,
    runs: RUNS,
    seed: SEED,
  });
  const fuzzMs = performance.now() - fuzzStart;

  const floorStart = performance.now();
  for (let i = 0; i < report.cases; i++) {
    await rawRequest(system.url, { method: 'GET', path: `${API_PREFIX}/healthz` });
  }
  const floorMs = performance.now() - floorStart;

  const touched = canary.digest() !== before;
  const perSecond = (n: number, ms: number) => Math.round((n / ms) * 1000);
  console.log(`api-fuzz: ${report.cases} requests over ${operations.length} operations, seed ${SEED}`);
  console.log(`  answers: ${report.statuses}`);
  console.log(
    `  failures: ${report.failures.length} (5xx, leaks, other error shapes); outside the pools: ${touched ? 'CHANGED' : 'untouched'}`,
  );
  for (const failure of report.failures.slice(0, 10)) console.log(`    ${failure}`);
  const results = benchResults('api-fuzz');
  console.log(
    results.add({
      name: `${report.cases} fuzzed requests`,
      unit: 'req/s',
      better: 'higher',
      ours: { label: 'fuzzed requests', value: perSecond(report.cases, fuzzMs) },
      peer: { label: 'GET /healthz', value: perSecond(report.cases, floorMs) },
      details: { seed: SEED, operations: operations.length, failures: report.failures.length },
    }),
  );

  // The node socket: a node of its own, fuzzed from the protocol's schema, beside bare pings.
  const created = await rawRequest(system.url, {
    method: 'POST',
    path: `${API_PREFIX}/nodes`,
    headers: { ...headers, 'content-type': 'application/json' },
    body: JSON.stringify({ id: 'fuzz-node', hostname: 'fuzz-node' }),
  });
  // It serves a pool of its own, so that the whole scans it sends of it are ingested into rows.
  const served = await rawRequest(system.url, {
    method: 'POST',
    path: `${API_PREFIX}/pools`,
    headers: { ...headers, 'content-type': 'application/json' },
    body: JSON.stringify({
      id: 'fuzz-node-pool',
      name: 'fuzz-node-pool',
      type: 'local',
      nodeIds: ['fuzz-node'],
      config: { path: join(root, 'data', 'pools', 'fuzz-node'), create: true },
    }),
  });
  if (served.status !== 201) throw new Error(`the fuzzing node's pool was refused: ${served.status}`);
  const dial = {
    url: `${system.url.replace(/^http/, 'ws')}${API_PREFIX}/nodes/connect`,
    nodeId: 'fuzz-node',
    token: created.json.token as string,
  };
  const socketStart = performance.now();
  const socketReport = await runSocketFuzz({
    ...dial,
    context,
    count: FRAMES,
    seed: SEED,
    servedPoolId: 'fuzz-node-pool',
  });
  const socketMs = performance.now() - socketStart;
  const pingMs = await pingRoundTrips(dial, FRAMES);
  const socketFailures = socketFuzzFailures(socketReport, context);
  const touchedBySocket = canary.digest() !== before;
  console.log(
    `  socket: ${socketReport.sent} frames, ${socketReport.replies.length} answers, ${socketReport.reconnects} reconnects; ` +
      `failures: ${socketFailures.length} (answers no node could read, secrets, other closes); outside the pools: ${touchedBySocket ? 'CHANGED' : 'untouched'}`,
  );
  for (const failure of socketFailures.slice(0, 10)) console.log(`    ${failure}`);
  console.log(
    results.add({
      name: `${socketReport.sent} fuzzed node frames`,
      unit: 'frames/s',
      better: 'higher',
      ours: { label: 'fuzzed frames, each paced by a ping', value: perSecond(socketReport.sent, socketMs) },
      peer: { label: 'bare ping round trips', value: perSecond(FRAMES, pingMs) },
      details: { seed: SEED, reconnects: socketReport.reconnects, failures: socketFailures.length },
    }),
  );
  await results.save();
  if (report.failures.length > 0 || touched || socketFailures.length > 0 || touchedBySocket) process.exitCode = 1;
} finally {
  await system.close();
  rmSync(root, { recursive: true, force: true });
}
