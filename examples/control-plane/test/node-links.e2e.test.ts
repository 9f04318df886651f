/**
 * Faults on the control plane ⇄ node link, with real processes: `quantix serve` on PostgreSQL,
 * `quantix-node` daemons, an HTTP mirror serving real qcow2 images (counting every request), a
 * TCP proxy between one daemon and the control plane that the test cuts, and flooding nodes
 * run as processes of their own (test/node-links/flood-node.ts).
 *
 * - SIGKILL of the control plane while a node downloads: the image ends ready from the one
 *   download (the node kept fetching; the restarted control plane adopts it, or applies it).
 * - 100 reconnect cycles: one live link at the end, every request answered or failed at once.
 * - Probes and a flood of 12,000 node messages: the hub stays up and /healthz answers in
 *   under 100 ms (p99) during the flood.
 * - Pool states: unknown when the node daemon dies; a directory that appears is found by the
 *   node's re-check, without a reconnect.
 *
 * Pool roots are under /srv, one of the default allowed pool roots.
 */
import { execFile } from 'node:child_process';
import { once } from 'node:events';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { NODE_CLOSE_CODES, PROTOCOL_LIMITS } from '@quantix/core';
import { createTestDatabase, type TestDatabase } from '@quantix/core/testing';
import { type ImageServer, makeQcow2, sha256Sums, startImageServer } from '@quantix/images-cloud/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { TcpProxy } from './faults/tcp-proxy.js';
import { apiCaller, waitFor } from './harness.js';
import { freePort, type Proc, QUANTIX, QUANTIX_NODE, startProcess, stopProcess } from './processes.js';

const run = promisify(execFile);
const repoRoot = join(import.meta.dirname, '../../..');
const FLOOD_NODE = join(import.meta.dirname, 'node-links/flood-node.ts');
const API_TOKEN = 'links-e2e-api-token';

async function rssMiB(pid: number | undefined): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  return Math.round(Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0) / 1024);
}

describe('control plane ⇄ node link under faults (real processes)', { timeout: 600_000 }, () => {
  let testDb: TestDatabase;
  let work: string;
  let poolRoot: string;
  let mirror: ImageServer;
  let cp: Proc | undefined;
  let cpUrl = '';
  let cpPort = 0;
  let proxy: TcpProxy;
  let proxyPort = 0;
  const daemons: Record<string, Proc | undefined> = {};
  const tokens: Record<string, string> = {};
  let catalogFile = '';

  const api = apiCaller(() => cpUrl, API_TOKEN);

  async function startControlPlane(): Promise<void> {
    // The same port every time: the node daemons redial the address they were given.
    cp = startProcess([QUANTIX, 'serve', '--host', '127.0.0.1', '--port', String(cpPort), '--catalog', catalogFile], {
      QUANTIX_DATABASE_URL: (testDb.config as { connectionString: string }).connectionString,
      QUANTIX_API_TOKEN: API_TOKEN,
    });
    const proc = cp;
    await waitFor(
      async () => {
        if (proc.child.exitCode !== null) throw new Error(`quantix serve exited with ${proc.child.exitCode}`);
        return proc.output.join('').includes('"event":"listening"');
      },
      'the control plane to listen',
      60_000,
    ).catch((error) => {
      throw new Error(`${(error as Error).message}\n${proc.output.join('')}`);
    });
    cpUrl = `http://127.0.0.1:${cpPort}`;
  }

  function startDaemon(nodeId: string, url = cpUrl): void {
    daemons[nodeId] = startProcess(
      [
        QUANTIX_NODE,
        '--url',
        url,
        '--node-id',
        nodeId,
        '--libvirt',
        'none',
        '--allow-source',
        '127.0.0.1',
        '--hostname',
        nodeId,
        '--pool-recheck-interval',
        '1',
      ],
      { QUANTIX_NODE_TOKEN: tokens[nodeId] as string },
    );
  }

  const connected = async (nodeId: string) => (await api('GET', `/nodes/${nodeId}`)).body?.connected === true;
  const poolState = async (poolId: string) => (await api('GET', `/pools/${poolId}`)).body?.nodeStates?.[0];

  async function addNode(nodeId: string): Promise<void> {
    const created = await api('POST', '/nodes', { id: nodeId, hostname: nodeId });
    expect(created.status).toBe(201);
    tokens[nodeId] = created.body.token;
  }

  async function addPool(id: string, nodeId: string, config: Record<string, unknown>, contentTypes = ['images']) {
    const created = await api('POST', '/pools', {
      id,
      name: id,
      type: 'local',
      config,
      contentTypes,
      nodeIds: [nodeId],
    });
    expect(created.status).toBe(201);
  }

  beforeAll(async () => {
    await run('bash', [join(repoRoot, 'scripts/services.sh'), 'postgres'], { timeout: 900_000 });
    testDb = await createTestDatabase('pg');
    work = await mkdtemp(join(tmpdir(), 'quantix-links-'));
    await mkdir('/srv', { recursive: true });
    poolRoot = await mkdtemp('/srv/quantix-links-e2e-');

    mirror = await startImageServer();
    const slow = await makeQcow2(work, 'slow.qcow2', 6);
    const quick = await makeQcow2(work, 'quick.qcow2', 2);
    mirror.setFile('/cloud/slow.qcow2', slow);
    mirror.setFile('/cloud/quick.qcow2', quick);
    mirror.setFile('/cloud/SHA256SUMS', sha256Sums({ 'slow.qcow2': slow, 'quick.qcow2': quick }));
    const entry = (id: string, file: string) => ({
      id,
      name: `Links ${file}`,
      kind: 'cloud',
      format: 'qcow2',
      os: { family: 'linux', distribution: 'e2e', version: '1', arch: 'x86_64', defaultUser: 'e2e', cloudInit: true },
      requirements: { minCpu: 1, minMemoryMiB: 64, minDiskGiB: 1, firmware: 'any' },
      sourceUrl: `${mirror.url}/cloud/${file}`,
      checksumUrl: `${mirror.url}/cloud/SHA256SUMS`,
      checksumAlgorithm: 'sha256',
    });
    catalogFile = join(work, 'catalog.json');
    await writeFile(
      catalogFile,
      JSON.stringify([entry('links-slow', 'slow.qcow2'), entry('links-quick', 'quick.qcow2')]),
    );

    cpPort = await freePort();
    await startControlPlane();
    proxy = new TcpProxy(() => ({ host: '127.0.0.1', port: cpPort }));
    proxyPort = await proxy.listen();
    await addNode('node-1');
    startDaemon('node-1');
    await addNode('node-cut');
    startDaemon('node-cut', `http://127.0.0.1:${proxyPort}`);
    await waitFor(() => connected('node-1'), 'node-1 to connect', 60_000);
    await waitFor(() => connected('node-cut'), 'node-cut to connect', 60_000);
  }, 900_000);

  afterAll(async () => {
    await Promise.all(Object.values(daemons).map((d) => stopProcess(d)));
    await stopProcess(cp);
    await proxy?.close();
    await mirror?.close();
    await testDb?.dispose();
    if (work) await rm(work, { recursive: true, force: true });
    if (poolRoot) await rm(poolRoot, { recursive: true, force: true });
  }, 120_000);

  it('probes the node socket of the real process: wrong token, oversized frame, two hellos racing', async () => {
    const socketTo = (token: string) =>
      new WebSocket(`${cpUrl.replace('http', 'ws')}/api/v1/nodes/connect`, {
        headers: { authorization: `Bearer ${token}`, 'x-quantix-node-id': 'probe' },
      });
    await addNode('probe');
    const refused = await new Promise<number>((resolve) => {
      const socket = socketTo('wrong');
      socket.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
      socket.on('open', () => resolve(101));
      socket.on('error', () => {});
    });
    expect(refused).toBe(401);

    const big = socketTo(tokens.probe as string);
    await once(big, 'open');
    big.send('x'.repeat(PROTOCOL_LIMITS.maxNodeMessageBytes + 1));
    expect((await once(big, 'close'))[0]).toBe(1009);

    const racers = [socketTo(tokens.probe as string), socketTo(tokens.probe as string)];
    await Promise.all(racers.map((s) => once(s, 'open')));
    const codes: (number | null)[] = [null, null];
    racers.forEach((socket, i) => {
      socket.on('close', (code) => {
        codes[i] = code;
      });
      socket.send(JSON.stringify({ v: 1, type: 'hello', nodeId: 'probe', hostname: 'probe', agentVersion: 'probe' }));
    });
    await waitFor(
      async () => codes.filter((c) => c === NODE_CLOSE_CODES.replaced).length === 1 && (await connected('probe')),
      'one racer replaced, the other live',
    );
    expect(racers.filter((s) => s.readyState === WebSocket.OPEN)).toHaveLength(1);
    for (const socket of racers) socket.terminate();
    await waitFor(async () => !(await connected('probe')), 'the probe node to be gone');
    expect((await api('GET', '/healthz')).status).toBe(200);
  });

  it('finds a pool directory that appears by the node’s re-check, with no reconnect; a dead node’s pools become unknown', async () => {
    const later = join(poolRoot, 'later');
    await addPool('links-later', 'node-cut', { path: later });
    await waitFor(async () => (await poolState('links-later'))?.status === 'unavailable', 'the pool to be unavailable');
    const connectionsBefore = proxy.accepted;
    await mkdir(later);
    await waitFor(async () => (await poolState('links-later'))?.status === 'active', 'the re-check to find it', 30_000);
    expect(proxy.accepted).toBe(connectionsBefore); // found on the same connection

    await addPool('links-dies', 'node-1', { path: join(poolRoot, 'dies'), create: true });
    await waitFor(async () => (await poolState('links-dies'))?.status === 'active', 'node-1’s pool to be active');
    await stopProcess(daemons['node-1'], 'SIGKILL');
    await waitFor(async () => (await poolState('links-dies'))?.status === 'unknown', 'its pool to be unknown');
    expect((await poolState('links-dies'))?.lastError).toMatch(/node-1 is not connected/);
    startDaemon('node-1');
    await waitFor(async () => (await poolState('links-dies'))?.status === 'active', 'active again after the restart');
  });

  it('SIGKILL of the control plane while the node downloads: the image ends ready from one download', async () => {
    await addPool('links-local', 'node-1', { path: join(poolRoot, 'local'), create: true });
    await waitFor(async () => (await poolState('links-local'))?.status === 'active', 'the local pool to be active');
    mirror.reset();

    // Killed mid-way: the node keeps fetching, and the restarted control plane adopts it.
    mirror.behaviour.bytesPerSecond = 512 * 1024;
    const slow = (await api('POST', '/images/download', { catalogId: 'links-slow', poolId: 'links-local' })).body;
    await waitFor(
      async () => (await api('GET', `/images/${slow.id}`)).body.progress?.bytesDone > 0,
      'the slow download to be under way',
    );
    await stopProcess(cp, 'SIGKILL');
    await startControlPlane();
    await waitFor(() => connected('node-1'), 'node-1 to reconnect', 60_000);
    await waitFor(
      async () => ['ready', 'error'].includes((await api('GET', `/images/${slow.id}`)).body.phase),
      'the slow download to settle',
      180_000,
    );
    const slowImage = (await api('GET', `/images/${slow.id}`)).body;
    const slowGets = mirror.requestsFor('/cloud/slow.qcow2').filter((r) => r.method === 'GET');

    // Killed, and the download finishes while no control plane runs: applied when the node is back.
    mirror.behaviour.bytesPerSecond = 1024 * 1024;
    const quick = (await api('POST', '/images/download', { catalogId: 'links-quick', poolId: 'links-local' })).body;
    await waitFor(
      async () => (await api('GET', `/images/${quick.id}`)).body.progress?.bytesDone > 0,
      'the quick download to be under way',
    );
    await stopProcess(cp, 'SIGKILL');
    const quickBytes = mirror.file('/cloud/quick.qcow2')?.data.length;
    await waitFor(
      async () => mirror.requestsFor('/cloud/quick.qcow2').some((r) => r.bytesSent === quickBytes),
      'the node to get every byte while the control plane is down',
      60_000,
    );
    mirror.behaviour.bytesPerSecond = null;
    await startControlPlane();
    await waitFor(
      async () => ['ready', 'error'].includes((await api('GET', `/images/${quick.id}`)).body.phase),
      'the quick download to settle',
      120_000,
    );
    const quickImage = (await api('GET', `/images/${quick.id}`)).body;
    const quickGets = mirror.requestsFor('/cloud/quick.qcow2').filter((r) => r.method === 'GET');
    console.log(
      `SIGKILL mid-download: slow.qcow2 ${slowImage.phase} after ${slowGets.length} GET(s) of the file; ` +
        `quick.qcow2 (finished while the control plane was down) ${quickImage.phase} after ${quickGets.length} GET(s)`,
    );
    expect(slowImage).toMatchObject({ phase: 'ready', error: null, checksum: { algorithm: 'sha256' } });
    expect(slowGets).toHaveLength(1);
    expect(quickImage).toMatchObject({ phase: 'ready', error: null, checksum: { algorithm: 'sha256' } });
    expect(quickGets).toHaveLength(1);
  });

  it('100 reconnect cycles through a cut connection: one live link, every request answered or failed at once', async () => {
    await addPool('links-cut-iso', 'node-cut', { path: join(poolRoot, 'cut-iso'), create: true }, ['iso']);
    await waitFor(async () => (await poolState('links-cut-iso'))?.status === 'active', 'the ISO pool to be active');
    const results: { ms: number; scanned: number; failed: string[] }[] = [];
    const scan = async () => {
      const started = Date.now();
      const answer = await api('POST', '/images/rescan', { poolId: 'links-cut-iso' });
      expect(answer.status, JSON.stringify(answer.body)).toBe(200);
      results.push({
        ms: Date.now() - started,
        scanned: answer.body.scanned.length,
        failed: answer.body.failed.map((f: { error: string }) => f.error),
      });
    };
    // Connected, and its pool reported on this link: a scan request has the node to go to.
    const ready = async () => (await connected('node-cut')) && (await poolState('links-cut-iso'))?.status === 'active';
    // What happened so far, for a failure to say (the daemon's and control plane's last lines too).
    const story = () =>
      `${proxy.accepted} connections, ${proxy.live} live; last results ${JSON.stringify(results.slice(-4))}\n` +
      `node daemon: ${daemons['node-cut']?.output.join('').slice(-3000)}\ncontrol plane: ${cp?.output.join('').slice(-3000)}`;
    const waitTelling = (check: () => Promise<boolean>, what: string, timeoutMs?: number) =>
      waitFor(check, what, timeoutMs).catch((error: Error) => {
        throw new Error(`${error.message}\n${story()}`);
      });
    const started = Date.now();
    for (let cycle = 0; cycle < 100; cycle++) {
      await waitTelling(ready, `node-cut to reconnect (cycle ${cycle})`, 30_000);
      // Every other cycle the link is cut as the control plane sends the node its first request.
      if (cycle % 2 === 1) proxy.cutOnNextServerData = true;
      const requests = [scan(), scan(), scan()];
      await Promise.all(requests);
      proxy.cutOnNextServerData = false;
      if (cycle % 4 === 3) proxy.cutNextAfterClientChunks = 2; // the next link is cut during its welcome (upgrade, hello)
      proxy.cutAll();
      await waitTelling(async () => !(await connected('node-cut')), `node-cut to be seen gone (cycle ${cycle})`);
    }
    await waitTelling(async () => (await ready()) && proxy.live === 1, 'node-cut to settle on one link', 60_000);
    await scan();
    const last = results[results.length - 1];
    const answered = results.filter((r) => r.scanned === 1).length;
    const failed = results.filter((r) => r.failed.length > 0);
    const slowest = Math.max(...results.map((r) => r.ms));
    console.log(
      `100 reconnect cycles (real daemon, cut TCP): ${Math.round((Date.now() - started) / 1000)} s, ` +
        `${proxy.accepted} connections; ${results.length} scan requests: ${answered} answered by the node, ` +
        `${failed.length} failed at once, ${results.length - answered - failed.length} found no connected node; ` +
        `slowest ${slowest} ms; live links at the end: ${proxy.live}`,
    );
    expect(last, story()).toMatchObject({ scanned: 1, failed: [] });
    expect(proxy.live, story()).toBe(1);
    expect(slowest, JSON.stringify(results.filter((r) => r.ms >= 10_000))).toBeLessThan(10_000);
    for (const f of failed) for (const error of f.failed) expect(error).toMatch(/disconnected|not connected/);
  });

  it('a flood of 12,000 node messages: the hub stays up and /healthz answers in < 100 ms (p99)', async () => {
    const flooders: Proc[] = [];
    for (const nodeId of ['flood-a', 'flood-b']) {
      await addNode(nodeId);
      await addPool(`${nodeId}-pool`, nodeId, { path: join(poolRoot, nodeId) }, ['iso']);
    }
    const rssBefore = await rssMiB(cp?.child.pid);
    const latencies: number[] = [];
    const ends = () =>
      Promise.all(['flood-a', 'flood-b'].map(async (id) => (await poolState(`${id}-pool`))?.mountPath));
    const started = Date.now();
    for (const nodeId of ['flood-a', 'flood-b']) {
      flooders.push(
        startProcess(
          ['--import', 'tsx', FLOOD_NODE, cpUrl, nodeId, tokens[nodeId] as string, `${nodeId}-pool`, '6000'],
          {},
        ),
      );
    }
    let rssPeak = rssBefore;
    let done = false;
    try {
      while (!done) {
        if (Date.now() - started > 300_000) throw new Error('the flood was not handled within 5 minutes');
        const t0 = performance.now();
        const health = await fetch(`${cpUrl}/api/v1/healthz`, { signal: AbortSignal.timeout(30_000) });
        latencies.push(performance.now() - t0);
        expect(health.status).toBe(200);
        if (latencies.length % 25 === 0) {
          rssPeak = Math.max(rssPeak, await rssMiB(cp?.child.pid));
          done = (await ends()).every((path, i) => path === `/srv/flood-end/${['flood-a', 'flood-b'][i]}`);
        }
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
    } finally {
      for (const flooder of flooders) await stopProcess(flooder);
    }
    const sorted = [...latencies].sort((a, b) => a - b);
    const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] as number;
    const p99 = at(0.99);
    const output = flooders.map((f) => f.output.join('').trim()).join(' | ');
    console.log(
      `flood of 2 × 6,000 node messages handled in ${((Date.now() - started) / 1000).toFixed(1)} s; ` +
        `/healthz during it: ${latencies.length} requests, p50 ${at(0.5).toFixed(1)} ms, p99 ${p99.toFixed(1)} ms, ` +
        `max ${sorted[sorted.length - 1]?.toFixed(1)} ms; control plane RSS ${rssBefore} → peak ${rssPeak} MiB; flooders: ${output}`,
    );
    expect(output).not.toContain(`"code":${NODE_CLOSE_CODES.busy}`); // slowed down, not cut off
    expect(p99).toBeLessThan(100);
    expect(cp?.child.exitCode).toBeNull();
    expect((await api('GET', '/pools/flood-a-pool')).status).toBe(200);
  });
});
