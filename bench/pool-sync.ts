/**
 * bench/pool-sync — the node hub under a reconnect storm, and the control plane's memory.
 *   2,000 real WebSocket node clients (a process of their own) reconnect at once to a control
 *   plane (`quantix serve`, a process of its own, on a PostgreSQL database made for the run, with
 *   10,000 images in it): time until the control plane has stored every node's acknowledgement of
 *   its pools (pool_node_states), beside the same clients doing one message round trip with a
 *   bare `ws` server in a process of its own (the floor). Target ≤ 1.3x the floor.
 *   The control plane's peak RSS (VmHWM: its whole life, the storm with every node connected
 *   included) beside the bare server's: target < 250 MB.
 * Each storm runs `ROUNDS` times, ours and the floor interleaved; the medians are compared. The CPU
 * each process used per storm (/proc/<pid>/stat: the control plane, its PostgreSQL backends, the
 * bare server, each side's clients) is printed beside them: on 2 cores both sides are CPU-bound,
 * so the ratio follows the CPU a storm costs, and CPU per storm is steadier than its wall time.
 * GET /images/available latency is bench/api.ts's to measure, not this one's.
 * QUANTIX_BENCH_QUICK=1: 50 nodes, 1,000 images, one round. QUANTIX_BENCH_CPU_PROF=<dir>: CPU profiles
 * (`node --cpu-prof`) of the control plane and of the bare server are written there, as
 * control-plane.cpuprofile and bare-ws-server.cpuprofile. QUANTIX_BENCH_ALLOC_PROF=<file>: the
 * control plane's sampled allocations during the storms (collected ones included), as a .heapprofile.
 * QUANTIX_BENCH_BASELINE=<checkout>: the control plane of another checkout of Quantix (built there,
 * `npx turbo run build`) runs beside this one, on a database of its own seeded by its own core and
 * with 2,000 clients of its own; each round storms both, in turns, and the line printed compares
 * them round by round (wall and CPU): a change's effect, measured in one run on one machine, where
 * separate runs differ by more than most changes do. Not written to the results.
 * QUANTIX_BENCH_CP_FLAGS="<node flags>": given to the control plane(s), e.g. `--trace-gc-nvp`
 * (what it prints goes to stderr).
 */
import { type ChildProcess, spawn } from 'node:child_process';
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
import { sampleAllocations } from './lib/allocation-profile.js';
import { cpuFrom, peakRssMb, postgresBackendPids } from './lib/process-stats.js';
import { rawPool } from './lib/raw-pool.js';
import { againstBound, benchResults } from './lib/results.js';
import { median } from './lib/stats.js';

const quick = process.env.QUANTIX_BENCH_QUICK === '1';
const NODES = quick ? 50 : 2_000;
const IMAGES = quick ? 1_000 : 10_000;
const ROUNDS = quick ? 1 : 7;
const RSS_TARGET_MB = 250;
const TOKEN = 'bench-token';
const FIXTURES = join(import.meta.dirname, '__fixtures__');
const QUANTIX_BIN = join(import.meta.dirname, '../examples/control-plane/bin/quantix.js');
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

// Every child process, killed at the end whatever happens.
const children = new Set<ChildProcess>();
process.once('exit', () => {
  for (const proc of children) proc.kill('SIGKILL');
});

/** A child process whose stdout is JSON lines; `next` waits for the next line with `event`. */
function child(args: string[], env: NodeJS.ProcessEnv = process.env) {
  const proc = spawn(process.execPath, args, { env, stdio: ['pipe', 'pipe', 'inherit'] });
  children.add(proc);
  const exited = new Promise<void>((resolve) =>
    proc.once('exit', () => {
      children.delete(proc);
      resolve();
    }),
  );
  const waiting: { event: string; resolve: (line: Record<string, unknown>) => void }[] = [];
  createInterface({ input: proc.stdout as NodeJS.ReadableStream }).on('line', (text) => {
    // Not a line of ours (a V8 trace the flags below asked for, a warning): passed on.
    if (!text.startsWith('{')) {
      process.stderr.write(`${text}\n`);
      return;
    }
    const line = JSON.parse(text) as Record<string, unknown>;
    const i = waiting.findIndex((w) => w.event === line.event);
    if (i >= 0) waiting.splice(i, 1)[0]?.resolve(line);
  });
  return {
    proc,
    next: (event: string, timeoutMs = 180_000) =>
      new Promise<Record<string, unknown>>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no ${event} within ${timeoutMs} ms`)), timeoutMs);
        waiting.push({
          event,
          resolve: (line) => {
            clearTimeout(timer);
            resolve(line);
          },
        });
        void exited.then(() => {
          clearTimeout(timer);
          reject(new Error(`the process waited on for ${event} exited`));
        });
      }),
    send: (command: string) => proc.stdin?.write(`${command}\n`),
    async stop() {
      proc.kill('SIGTERM');
      await exited;
    },
  };
}

/** What seeding needs of a checkout of Quantix: this one's, or the baseline's (its dist). */
interface QuantixBuild {
  createQuantix: typeof createQuantix;
  tokenDigest: typeof tokenDigest;
  bin: string;
}

const nodes = Array.from({ length: NODES }, (_, i) => ({
  id: `bench-node-${i}`,
  token: `token-${i}-${Math.random().toString(36).slice(2)}`,
}));

/**
 * Seeds a new database through `build`'s own core (its migrations): the nodes with their tokens,
 * one shared pool on all of them, the images in it. With its URL and a pool of this bench's own.
 */
async function seededDatabase(build: QuantixBuild) {
  const db = await createPostgresTestDatabase();
  const quantix = await build.createQuantix({ database: db.config, logger: pino({ level: 'silent' }) });
  try {
    const { repositories } = quantix;
    for (const { id, token } of nodes) {
      await repositories.nodes.create({ id, hostname: id });
      await repositories.nodes.setTokenDigest(id, build.tokenDigest(token));
    }
    await repositories.pools.create({
      id: SHARED_POOL_ID,
      name: 'shared images',
      type: 'nfs',
      shared: true,
      config: { server: '127.0.0.1', export: '/export/shared' },
      contentTypes: ['images'],
      nodeIds: nodes.map((n) => n.id),
    });
    await repositories.images.upsertByLocation(
      // The files its nodes' scans find: a scan after a reconnect finds each unchanged.
      poolImageRows(SHARED_POOL_ID, IMAGES),
    );
  } finally {
    await quantix.close();
  }
  const url = (db.config as { connectionString: string }).connectionString;
  const raw = rawPool(url, 2);
  return {
    url,
    raw,
    async dispose() {
      await raw.end();
      await db.dispose();
    },
  };
}

const ours: QuantixBuild = { createQuantix, tokenDigest, bin: QUANTIX_BIN };
const baselineDir = process.env.QUANTIX_BENCH_BASELINE;
const baseline: QuantixBuild | null = baselineDir
  ? {
      createQuantix: (
        (await import(join(baselineDir, 'packages/core/dist/index.js'))) as { createQuantix: typeof createQuantix }
      ).createQuantix,
      tokenDigest: (
        (await import(join(baselineDir, 'packages/control-plane/dist/index.js'))) as { tokenDigest: typeof tokenDigest }
      ).tokenDigest,
      bin: join(baselineDir, 'examples/control-plane/bin/quantix.js'),
    }
  : null;

const database = await seededDatabase(ours);
const baselineDatabase = baseline ? await seededDatabase(baseline) : null;
const dataDir = mkdtempSync(join(tmpdir(), 'quantix-bench-pool-sync-'));
const results = benchResults('pool-sync');
try {
  const nodesFile = join(dataDir, 'nodes.json');
  writeFileSync(nodesFile, JSON.stringify(nodes));

  // QUANTIX_BENCH_CPU_PROF=<dir>: the control plane writes a CPU profile there as it stops.
  const profile = process.env.QUANTIX_BENCH_CPU_PROF;
  const clientsOf = async (serverUrl: string) => {
    const clients = child([
      '--import',
      'tsx',
      join(FIXTURES, 'pool-sync-clients.ts'),
      serverUrl,
      nodesFile,
      String(IMAGES),
    ]);
    await clients.next('acked');
    return clients;
  };
  /** A control plane of `build` on `database`, its clients connected and every acknowledgement stored. */
  const startSide = async (
    build: QuantixBuild,
    { url, raw }: Awaited<ReturnType<typeof seededDatabase>>,
    name: string,
    flags: string[] = [],
  ) => {
    const controlPlane = child(
      [...flags, build.bin, 'serve', '--host', '127.0.0.1', '--port', '0', '--data-dir', join(dataDir, name)],
      {
        ...process.env,
        QUANTIX_DATABASE_URL: url,
        QUANTIX_API_TOKEN: TOKEN,
        QUANTIX_LOG_LEVEL: process.env.QUANTIX_LOG_LEVEL ?? 'warn',
      },
    );
    const { url: serverUrl } = await controlPlane.next('listening', 60_000);
    const storedSince = async (since: Date) =>
      Number(
        (await raw.query(`select count(*) from pool_node_states where status = 'active' and updated_at >= $1`, [since]))
          .rows[0].count,
      );
    const clients = await clientsOf(serverUrl as string);
    while ((await storedSince(new Date(0))) < NODES) await sleep(20);
    /** One storm: every client reconnects; until every acknowledgement is stored (PostgreSQL's clock and ours are the machine's). */
    const storm = async () => {
      const used = {
        controlPlane: cpuFrom([controlPlane.proc.pid as number]),
        postgres: cpuFrom(await postgresBackendPids(raw)),
        clients: cpuFrom([clients.proc.pid as number]),
      };
      const since = new Date();
      const start = performance.now();
      clients.send('reconnect');
      await clients.next('acked');
      while ((await storedSince(since)) < NODES) await sleep(5);
      return {
        ms: performance.now() - start,
        controlPlane: used.controlPlane(),
        postgres: used.postgres(),
        clients: used.clients(),
      };
    };
    return { controlPlane, clients, storm };
  };
  // QUANTIX_BENCH_CP_FLAGS: node flags for the control plane (e.g. --trace-gc-nvp), on both sides.
  const flags = process.env.QUANTIX_BENCH_CP_FLAGS?.split(' ').filter(Boolean) ?? [];
  const side = await startSide(ours, database, 'cp', [
    ...(profile ? ['--cpu-prof', '--cpu-prof-dir', profile, '--cpu-prof-name', 'control-plane.cpuprofile'] : []),
    ...flags,
  ]);
  const { controlPlane } = side;
  const baselineSide =
    baseline && baselineDatabase ? await startSide(baseline, baselineDatabase, 'baseline', flags) : null;
  // Profiled too: what the control plane spends beyond the floor shows function by function.
  const bare = child([
    ...(profile ? ['--cpu-prof', '--cpu-prof-dir', profile, '--cpu-prof-name', 'bare-ws-server.cpuprofile'] : []),
    join(FIXTURES, 'bare-ws-server.mjs'),
  ]);
  const { url: bareUrl } = await bare.next('listening');
  const floor = await clientsOf(bareUrl as string);

  const stormMs: number[] = [];
  const floorMs: number[] = [];
  // Where a storm's CPU goes, per round: the control plane, this database's PostgreSQL backends
  // (the control plane's connections and this bench's own polling), and the bare server.
  const cpu = {
    controlPlane: [] as number[],
    postgres: [] as number[],
    bare: [] as number[],
    ourClients: [] as number[],
    floorClients: [] as number[],
  };
  const baselineRounds: { ms: number; controlPlane: number; postgres: number }[] = [];
  const allocationProfile = process.env.QUANTIX_BENCH_ALLOC_PROF;
  const sampling = allocationProfile ? await sampleAllocations(controlPlane.proc.pid as number) : null;
  for (let round = 0; round < ROUNDS; round++) {
    // With a baseline, ours and its storms take turns going first: neither always follows the floor.
    if (baselineSide && round % 2 === 1) baselineRounds.push(await baselineSide.storm());
    const storm = await side.storm();
    stormMs.push(storm.ms);
    cpu.controlPlane.push(storm.controlPlane);
    cpu.postgres.push(storm.postgres);
    cpu.ourClients.push(storm.clients);
    if (baselineSide && round % 2 === 0) baselineRounds.push(await baselineSide.storm());
    // The floor: the same clients, one round trip each with the bare server.
    const floorCpu = { bare: cpuFrom([bare.proc.pid as number]), clients: cpuFrom([floor.proc.pid as number]) };
    const floorStart = performance.now();
    floor.send('reconnect');
    await floor.next('acked');
    floorMs.push(performance.now() - floorStart);
    cpu.bare.push(floorCpu.bare());
    cpu.floorClients.push(floorCpu.clients());
  }
  if (sampling && allocationProfile) await sampling.stop(allocationProfile);
  const rssMb = peakRssMb(controlPlane.proc.pid as number);
  const bareRssMb = peakRssMb(bare.proc.pid as number);
  const baselineRssMb = baselineSide ? peakRssMb(baselineSide.controlPlane.proc.pid as number) : 0;
  for (const clients of [side.clients, floor, baselineSide?.clients]) clients?.send('exit');
  await Promise.all([controlPlane.stop(), bare.stop(), baselineSide?.controlPlane.stop()]);

  console.log(
    `bench/pool-sync${quick ? ' (quick mode)' : ''} — on a 2-core machine shared with PostgreSQL and the clients`,
  );
  console.log(
    results.add({
      name: `reconnect storm, ${NODES} nodes`,
      unit: 'ms',
      better: 'lower',
      ours: { label: 'Quantix, every ack stored', value: median(stormMs) },
      peer: { label: 'bare ws, one round trip', value: median(floorMs) },
      target: { ratio: 1.3 },
      details: {
        nodes: NODES,
        rounds: ROUNDS,
        ours: stormMs.map(Math.round).join(' '),
        floor: floorMs.map(Math.round).join(' '),
        controlPlaneCpuMs: cpu.controlPlane.map(Math.round).join(' '),
        postgresCpuMs: cpu.postgres.map(Math.round).join(' '),
        bareServerCpuMs: cpu.bare.map(Math.round).join(' '),
        clientsCpuMs: cpu.ourClients.map(Math.round).join(' '),
        floorClientsCpuMs: cpu.floorClients.map(Math.round).join(' '),
      },
    }),
  );
  console.log(
    `CPU per storm (median of ${ROUNDS}): control plane ${median(cpu.controlPlane).toFixed(0)} ms, ` +
      `its PostgreSQL backends ${median(cpu.postgres).toFixed(0)} ms, the clients ${median(cpu.ourClients).toFixed(0)} ms; ` +
      `bare ws server ${median(cpu.bare).toFixed(0)} ms, the clients ${median(cpu.floorClients).toFixed(0)} ms`,
  );
  console.log(
    results.add({
      name: `peak RSS, ${NODES} nodes, ${IMAGES} images`,
      unit: 'MB',
      better: 'lower',
      ours: { label: 'control plane', value: rssMb },
      peer: { label: 'bare ws server', value: bareRssMb },
      details: { nodes: NODES, images: IMAGES },
    }),
  );
  console.log(
    results.add(
      againstBound({
        name: `peak RSS, vs the ${RSS_TARGET_MB} MB target`,
        unit: 'MB',
        better: 'lower',
        ours: { label: 'control plane', value: rssMb },
        bound: { label: 'issue target', value: RSS_TARGET_MB },
      }),
    ),
  );
  if (baselineSide) {
    // Round by round: both storms of a round ran back to back, in the same state of the machine.
    const wall = stormMs.map((ms, i) => ms / (baselineRounds[i]?.ms ?? Number.NaN));
    const cpuDiff = cpu.controlPlane.map((ms, i) => ms - (baselineRounds[i]?.controlPlane ?? Number.NaN));
    const pgDiff = cpu.postgres.map((ms, i) => ms - (baselineRounds[i]?.postgres ?? Number.NaN));
    const signed = (ms: number) => `${ms >= 0 ? '+' : ''}${ms.toFixed(0)} ms`;
    console.log(
      `baseline ${baselineDir}: every ack stored ${median(baselineRounds.map((r) => r.ms)).toFixed(0)} ms, control plane ` +
        `${median(baselineRounds.map((r) => r.controlPlane)).toFixed(0)} ms CPU, its PostgreSQL ` +
        `${median(baselineRounds.map((r) => r.postgres)).toFixed(0)} ms, peak RSS ${baselineRssMb.toFixed(0)} MB (medians of ${ROUNDS})`,
    );
    console.log(
      `this checkout against the baseline, per round: wall ${median(wall).toFixed(3)}x (${wall.map((r) => r.toFixed(2)).join(' ')}); ` +
        `control-plane CPU ${signed(median(cpuDiff))} (${cpuDiff.map(Math.round).join(' ')}); ` +
        `PostgreSQL ${signed(median(pgDiff))}`,
    );
  }
  await results.save();
} finally {
  for (const proc of children) proc.kill('SIGKILL');
  rmSync(dataDir, { recursive: true, force: true });
  await Promise.all([database.dispose(), baselineDatabase?.dispose()]);
}
