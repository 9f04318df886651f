/**
 * Three control-plane replicas as separate processes, each on a host of its own (a network
 * namespace joined to a bridge), on one PostgreSQL reached through a TCP proxy per replica in
 * the root namespace (the proxy is that replica's network path to the database: it can stop
 * forwarding). In the root namespace: a real node daemon and 50 protocol-level nodes, every one
 * given all three replica URLs, and a real HTTP mirror that counts what it serves.
 *
 * (a) a pool made on one replica is acknowledged by its nodes on every replica;
 * (b) the replica holding the real node is killed with SIGKILL mid-download: the node moves to
 *     another replica, the download is adopted there and ends ready, verified, fetched once;
 * (c) a replica cut off from PostgreSQL lets its nodes go within its lease, they move to the
 *     others, and once it is back no node is held twice;
 * (d) every replica restarted in turn under GET load: a request retried once always succeeds.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createQuantix, type Quantix } from '@quantix/core';
import { createTestDatabase, requireTools, type TestDatabase, waitFor } from '@quantix/core/testing';
import { type ImageServer, makeQcow2, sha256, sha256Sums, startImageServer } from '@quantix/images-cloud/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { TcpProxy } from './faults/tcp-proxy.js';
import { type Proc, QUANTIX_NODE, startProcess, stopProcess } from './processes.js';
import { createTestNetwork, type Host, type TestNetwork } from './replicas/netns.js';

const REPO_ROOT = join(import.meta.dirname, '../../..');
const LAUNCHER = join(import.meta.dirname, 'replicas/replica.ts');
const PROTOCOL_NODES = join(import.meta.dirname, 'replicas/protocol-nodes.ts');
const API_TOKEN = 'replicas-e2e-token-0123456789abcdef';
const LEASE_SECONDS = 3;
/** Each replica's bound on a database statement (`quantix serve --database-timeout`). */
const DB_TIMEOUT_MS = 1_500;
const PORT = 8080;
const PROTOCOL_NODE_COUNT = 50;
const REAL_NODE = 'real-node';
/** A node that is registered but runs nowhere: its token probes the node socket. */
const PROBE_NODE = 'probe-node';
const IMAGE_PATH = '/cloud/replica-slow.qcow2';
const IMAGE_MIB = 12;
const BUSY_PHASES = ['pending', 'downloading', 'verifying'];

interface Replica {
  id: string;
  host: Host;
  url: string;
  /** This replica's way to PostgreSQL. */
  proxy: TcpProxy;
  proxyPort: number;
  child?: ChildProcess;
  output: string[];
}

// biome-ignore lint/suspicious/noExplicitAny: API answers are checked field by field in the tests
type Answer = { status: number; body: any };

interface ReplicaView {
  id: string;
  url: string | null;
  heartbeatAt: string;
  nodeIds: string[];
}

describe('three replicas on three hosts, one PostgreSQL (real processes, network namespaces)', {
  timeout: 300_000,
}, () => {
  let testDb: TestDatabase;
  let quantix: Quantix;
  let network: TestNetwork | undefined;
  let work: string;
  let mirror: ImageServer;
  let image: Buffer;
  let catalogFile: string;
  let databaseUrl: URL;
  const replicas: Replica[] = [];
  let daemon: Proc | undefined;
  let protocolNodes: Proc | undefined;
  let probeToken = '';
  /** The image the SIGKILL test downloads to ready, exported from every replica after it. */
  let readyImageId: string | undefined;
  const protocolNodeIds = Array.from({ length: PROTOCOL_NODE_COUNT }, (_, i) => `proto-${String(i).padStart(2, '0')}`);
  const allNodeIds = [REAL_NODE, ...protocolNodeIds].sort();

  const api = async (replica: Replica, method: string, path: string, body?: unknown): Promise<Answer> => {
    const response = await fetch(`${replica.url}/api/v1${path}`, {
      method,
      headers: {
        authorization: `Bearer ${API_TOKEN}`,
        ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
      },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      signal: AbortSignal.timeout(10_000),
    });
    const text = await response.text();
    return { status: response.status, body: text ? JSON.parse(text) : null };
  };
  const live = (): Replica[] =>
    replicas.filter((r) => r.child && r.child.exitCode === null && r.child.signalCode === null);
  /** /replicas as `via` answers it (null when it cannot answer). */
  const replicaViews = async (via: Replica): Promise<ReplicaView[] | null> => {
    const answer = await api(via, 'GET', '/replicas').catch(() => null);
    return answer?.status === 200 ? (answer.body.replicas as ReplicaView[]) : null;
  };
  const holderOf = async (via: Replica, nodeId: string): Promise<string | null> =>
    (await replicaViews(via))?.find((r) => r.nodeIds.includes(nodeId))?.id ?? null;
  /** What the protocol-level nodes printed so far, one event per complete line. */
  const protocolNodeEvents = (): Record<string, unknown>[] =>
    (protocolNodes?.output.join('') ?? '')
      .split('\n')
      .slice(0, -1)
      .filter((line) => line.startsWith('{"event"'))
      .map((line) => JSON.parse(line) as Record<string, unknown>);
  const leases = async () =>
    (await quantix.database.knex('node_leases').where('expires_at', '>', quantix.database.knex.fn.now())) as {
      node_id: string;
      replica_id: string;
    }[];

  async function startReplica(replica: Replica): Promise<void> {
    const database = new URL(databaseUrl.href);
    database.hostname = network?.rootAddress as string;
    database.port = String(replica.proxyPort);
    replica.output = [];
    const child = spawn(
      'ip',
      ['netns', 'exec', replica.host.namespace, process.execPath, '--import', 'tsx', LAUNCHER],
      {
        cwd: REPO_ROOT,
        env: {
          ...process.env,
          QUANTIX_LOG_LEVEL: 'warn',
          QX_DATABASE_URL: database.href,
          QX_DB_TIMEOUT_MS: String(DB_TIMEOUT_MS),
          QX_API_TOKEN: API_TOKEN,
          QX_REPLICA_ID: replica.id,
          QX_REPLICA_URL: replica.url,
          QX_LEASE_SECONDS: String(LEASE_SECONDS),
          QX_HOST: replica.host.address,
          QX_PORT: String(PORT),
          QX_CATALOG: catalogFile,
          QX_POOL_ROOTS: `${work}:/srv`,
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    replica.child = child;
    child.stdout?.on('data', (d) => replica.output.push(String(d)));
    child.stderr?.on('data', (d) => replica.output.push(String(d)));
    await waitFor(
      `replica ${replica.id} to listen`,
      () => {
        if (child.exitCode !== null) throw new Error(`replica ${replica.id} exited: ${replica.output.join('')}`);
        return replica.output.join('').includes('"event":"listening"');
      },
      60_000,
    );
  }

  /** The answer to a node's WebSocket upgrade: 101 when let in (closed again at once), else the HTTP status. */
  const connectStatus = (replica: Replica, nodeId: string, token: string) =>
    new Promise<number>((resolve) => {
      const socket = new WebSocket(`${replica.url.replace(/^http/, 'ws')}/api/v1/nodes/connect`, {
        headers: { authorization: `Bearer ${token}`, 'x-quantix-node-id': nodeId },
        handshakeTimeout: 15_000,
      });
      socket.on('unexpected-response', (_request, response) => {
        resolve(response.statusCode ?? 0);
        socket.terminate();
      });
      socket.on('open', () => {
        resolve(101);
        socket.terminate();
      });
      socket.on('error', () => resolve(-1));
    });

  async function killReplica(replica: Replica, signal: NodeJS.Signals): Promise<void> {
    const child = replica.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = once(child, 'exit');
    child.kill(signal);
    // A replica that does not stop within 20 s of SIGTERM is killed (and its exit code is not 0).
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    await exited;
    clearTimeout(timer);
  }

  /** Every node held by exactly one live replica, each replica's links matching its leases. */
  async function settled(via: Replica): Promise<boolean> {
    const views = await replicaViews(via);
    if (!views) return false;
    const held = views.flatMap((r) => r.nodeIds).sort();
    if (JSON.stringify(held) !== JSON.stringify(allNodeIds)) return false;
    for (const replica of live()) {
      const health = await api(replica, 'GET', '/healthz').catch(() => null);
      const view = views.find((v) => v.id === replica.id);
      if (health?.status !== 200 || (view?.nodeIds.length ?? 0) !== health.body.connectedNodes) return false;
    }
    return true;
  }

  beforeAll(async () => {
    requireTools({ program: 'ip', debianPackage: 'iproute2' });
    testDb = await createTestDatabase('pg');
    databaseUrl = new URL((testDb.config as { connectionString: string }).connectionString);
    // Migrated once here; the test reads the tables directly through it too.
    quantix = await createQuantix({ database: testDb.config });
    work = await mkdtemp(join(tmpdir(), 'quantix-replicas-'));
    network = await createTestNetwork(3);

    mirror = await startImageServer({ host: '127.0.0.1' });
    image = await makeQcow2(work, 'replica-slow.qcow2', IMAGE_MIB);
    mirror.setFile(IMAGE_PATH, image);
    mirror.setFile('/cloud/SHA256SUMS', sha256Sums({ 'replica-slow.qcow2': image }));
    catalogFile = join(work, 'catalog.json');
    await writeFile(
      catalogFile,
      JSON.stringify([
        {
          id: 'replica-slow',
          name: 'Replica test image',
          kind: 'cloud',
          format: 'qcow2',
          os: {
            family: 'linux',
            distribution: 'e2e',
            version: '1',
            arch: 'x86_64',
            defaultUser: 'e2e',
            cloudInit: true,
          },
          requirements: { minCpu: 1, minMemoryMiB: 64, minDiskGiB: 1, firmware: 'any' },
          sourceUrl: `${mirror.url}${IMAGE_PATH}`,
          checksumUrl: `${mirror.url}/cloud/SHA256SUMS`,
          checksumAlgorithm: 'sha256',
        },
      ]),
    );

    for (const [i, host] of network.hosts.entries()) {
      const proxy = new TcpProxy(() => ({ host: databaseUrl.hostname, port: Number(databaseUrl.port || 5432) }));
      const proxyPort = await proxy.listen(network.rootAddress);
      replicas.push({
        id: `replica-${'abc'[i]}`,
        host,
        url: `http://${host.address}:${PORT}`,
        proxy,
        proxyPort,
        output: [],
      });
    }
    await Promise.all(replicas.map((r) => startReplica(r)));

    const [a] = replicas as [Replica];
    const tokens: Record<string, string> = {};
    for (const nodeId of [...allNodeIds, PROBE_NODE]) {
      const created = await api(a, 'POST', '/nodes', { id: nodeId, hostname: nodeId });
      expect(created.status).toBe(201);
      tokens[nodeId] = created.body.token;
    }
    probeToken = tokens[PROBE_NODE] as string;
    const urls = replicas.flatMap((r) => ['--url', r.url]);
    daemon = startProcess(
      [
        QUANTIX_NODE,
        ...urls,
        '--node-id',
        REAL_NODE,
        '--token',
        tokens[REAL_NODE] as string,
        '--hostname',
        REAL_NODE,
        '--libvirt',
        'none',
        '--allow-source',
        '127.0.0.1',
        '--pool-root',
        work,
        '--log-level',
        'info',
      ],
      {},
    );
    const nodesFile = join(work, 'protocol-nodes.json');
    await writeFile(
      nodesFile,
      JSON.stringify({
        urls: replicas.map((r) => r.url),
        nodes: protocolNodeIds.map((id) => ({ id, token: tokens[id] })),
      }),
    );
    protocolNodes = startProcess(['--import', 'tsx', PROTOCOL_NODES, nodesFile], {});
    await waitFor('all 51 nodes held, each by one replica', () => settled(a), 60_000);
  }, 240_000);

  afterAll(async () => {
    await Promise.all([stopProcess(daemon, 'SIGKILL'), stopProcess(protocolNodes, 'SIGKILL')]);
    await Promise.all(replicas.map((r) => killReplica(r, 'SIGKILL')));
    for (const replica of replicas) await replica.proxy.close();
    await mirror?.close();
    await network?.destroy();
    await quantix?.close();
    await testDb?.dispose();
    if (work) await rm(work, { recursive: true, force: true });
  }, 120_000);

  it('spreads the nodes over all three replicas, and a pool made on one is acknowledged by its nodes on every replica', async () => {
    const [a, b, c] = replicas as [Replica, Replica, Replica];
    const views = (await replicaViews(b)) as ReplicaView[];
    expect(views.map((v) => [v.id, v.url]).sort()).toEqual(replicas.map((r) => [r.id, r.url]).sort());
    // The nodes chose their first replica at random: each of the three holds some.
    for (const view of views) expect(view.nodeIds.length).toBeGreaterThan(0);

    const created = await api(a, 'POST', '/pools', {
      id: 'fanout',
      name: 'Everywhere',
      type: 'nfs',
      config: { server: '192.0.2.10', export: '/srv/export/fanout', mountPoint: '/srv/protocol-nodes/fanout' },
      contentTypes: ['images'],
      shared: true,
      nodeIds: protocolNodeIds,
    });
    expect({ status: created.status, error: created.body.error }).toEqual({ status: 201 });
    const onB = views.find((v) => v.id === b.id)?.nodeIds.filter((n) => n !== REAL_NODE) ?? [];
    const onC = views.find((v) => v.id === c.id)?.nodeIds.filter((n) => n !== REAL_NODE) ?? [];
    expect(onB.length + onC.length).toBeGreaterThan(0);

    // Each replica's API shows every node's acknowledgement: active, at the path the node itself reported.
    for (const via of replicas) {
      const states = await waitFor(`the pool acknowledged by all 50 nodes, seen through ${via.id}`, async () => {
        const pool = await api(via, 'GET', '/pools/fanout');
        const nodeStates = pool.body.nodeStates as { nodeId: string; status: string; mountPath: string | null }[];
        return nodeStates.length === PROTOCOL_NODE_COUNT && nodeStates.every((s) => s.status === 'active')
          ? nodeStates
          : null;
      });
      for (const state of states) expect(state.mountPath).toBe(`/srv/protocol-nodes/${state.nodeId}/fanout`);
    }
  });

  it('moves the real node off a replica killed with SIGKILL mid-download within 10 s; the download is adopted, ends ready and verified, and is not fetched twice', async () => {
    const poolDir = join(work, 'pool');
    const [a] = replicas as [Replica];
    expect(
      (
        await api(a, 'POST', '/pools', {
          id: 'real-local',
          name: 'Real node local',
          type: 'local',
          config: { path: poolDir, create: true },
          contentTypes: ['images'],
          nodeIds: [REAL_NODE],
        })
      ).status,
    ).toBe(201);
    await waitFor(
      'the real node to report its pool active',
      async () => (await api(a, 'GET', '/pools/real-local')).body.nodeStates[0]?.status === 'active',
    );
    const holderId = await waitFor('the real node held', () => holderOf(a, REAL_NODE));
    const holder = replicas.find((r) => r.id === holderId) as Replica;
    const others = replicas.filter((r) => r !== holder);

    mirror.requests.length = 0;
    mirror.behaviour.bytesPerSecond = 1024 * 1024; // ~12 s for the whole file
    // Asked of a replica that does not hold the node (as a load balancer may send it): the
    // holder starts it, where the node's progress arrives.
    const started = await api(others[0] as Replica, 'POST', '/images/download', {
      catalogId: 'replica-slow',
      poolId: 'real-local',
    });
    expect(started.status, JSON.stringify(started.body)).toBe(202);
    const imageId = started.body.id as string;
    await waitFor(
      'a quarter of the image downloaded',
      async () => (await api(holder, 'GET', `/images/${imageId}`)).body.progress?.bytesDone >= image.length / 4,
      30_000,
    );

    await killReplica(holder, 'SIGKILL');
    const killedAt = Date.now();
    // Killed mid-way: the mirror had not sent the whole file yet.
    const sentAtKill = mirror.requestsFor(IMAGE_PATH).reduce((sum, r) => sum + r.bytesSent, 0);
    expect(sentAtKill).toBeLessThan(image.length);
    const newHolder = await waitFor(
      'the real node held by a surviving replica',
      async () => {
        const id = await holderOf(others[0] as Replica, REAL_NODE);
        return id && id !== holder.id ? id : null;
      },
      10_000,
    );
    const movedMs = Date.now() - killedAt;
    expect(others.map((r) => r.id)).toContain(newHolder);
    for (const via of others) {
      await waitFor(
        `the real node shown connected by ${via.id}`,
        async () => (await api(via, 'GET', `/nodes/${REAL_NODE}`)).body.connected === true,
      );
    }
    const survivor = others[0] as Replica;

    const ready = await waitFor(
      'the image ready',
      async () => {
        const row = (await api(survivor, 'GET', `/images/${imageId}`)).body;
        if (row.phase === 'error') throw new Error(`the download failed: ${JSON.stringify(row.error)}`);
        return row.phase === 'ready' ? row : null;
      },
      60_000,
    );
    expect(ready).toMatchObject({
      phase: 'ready',
      error: null,
      sizeBytes: image.length,
      checksum: { algorithm: 'sha256', value: sha256(image) },
      format: 'qcow2',
    });
    expect(sha256(await readFile(join(poolDir, 'images', 'replica-slow.qcow2')))).toBe(sha256(image));
    readyImageId = imageId;

    // The mirror saw one whole fetch at most: any further GET resumed with a range.
    const gets = mirror.requestsFor(IMAGE_PATH).filter((r) => r.method === 'GET');
    const bytesServed = gets.reduce((sum, r) => sum + r.bytesSent, 0);
    console.log(
      JSON.stringify({
        test: 'sigkill-download',
        movedMs,
        sentAtKill,
        gets: gets.map((r) => ({ status: r.status, range: r.range, bytesSent: r.bytesSent, completed: r.completed })),
        bytesServed,
        imageBytes: image.length,
      }),
    );
    expect(gets.filter((r) => r.range === null)).toHaveLength(1);
    for (const resumed of gets.slice(1)) expect(resumed.status).toBe(206);
    expect(bytesServed).toBeLessThan(image.length * 1.5);
    // No image row is left pending, downloading or verifying.
    expect(await quantix.database.knex('images').whereIn('phase', BUSY_PHASES).select('id', 'phase')).toEqual([]);
    mirror.behaviour.bytesPerSecond = null;

    // The killed replica comes back, and the nodes are settled again for the next test.
    await startReplica(holder);
    await waitFor(`${holder.id} listed again`, async () =>
      (await replicaViews(survivor))?.some((r) => r.id === holder.id),
    );
    await waitFor('every node held by one replica', () => settled(survivor), 30_000);
  });

  it('streams an image from every replica, whether its node is connected there or not, whole and by range', async () => {
    expect(readyImageId, 'the SIGKILL test leaves a ready image').toBeDefined();
    const holderId = await waitFor('the real node held', () => holderOf(replicas[0] as Replica, REAL_NODE));
    const content = (via: Replica, headers: Record<string, string> = {}) =>
      fetch(`${via.url}/api/v1/images/${readyImageId}/content`, {
        headers: { authorization: `Bearer ${API_TOKEN}`, ...headers },
        signal: AbortSignal.timeout(30_000),
      });
    for (const via of live()) {
      // A replica that does not hold the node has the node dial back to its own URL.
      const whole = await content(via);
      expect(whole.status, `${via.id} (holder ${holderId}): ${whole.status}`).toBe(200);
      expect(whole.headers.get('x-checksum-sha256')).toBe(sha256(image));
      expect(sha256(Buffer.from(await whole.arrayBuffer()))).toBe(sha256(image));
      const part = await content(via, { range: 'bytes=1000-1999' });
      expect(part.status).toBe(206);
      expect(Buffer.from(await part.arrayBuffer()).equals(image.subarray(1000, 2000))).toBe(true);
    }
    expect(live().filter((r) => r.id !== holderId).length).toBeGreaterThan(0);
  });

  it('a replica cut off from PostgreSQL lets its nodes go within its lease; they move to the others, and once it is back no node is held twice', async () => {
    const views = (await replicaViews(replicas[0] as Replica)) as ReplicaView[];
    // The replica holding the most nodes is cut off.
    const busiest = [...views].sort((x, y) => y.nodeIds.length - x.nodeIds.length)[0] as ReplicaView;
    const cut = replicas.find((r) => r.id === busiest.id) as Replica;
    const others = replicas.filter((r) => r !== cut);
    const movers = busiest.nodeIds;
    expect(movers.length).toBeGreaterThan(0);

    cut.proxy.freeze();
    const cutAt = Date.now();
    try {
      // Seen from the others: the cut replica's leases run out, and its nodes are held by them.
      let lastSeen: ReplicaView[] | null = null;
      await waitFor(
        'every node held by the replicas still on the database',
        async () => {
          lastSeen = await replicaViews(others[0] as Replica);
          if (!lastSeen || lastSeen.some((r) => r.id === cut.id)) return false;
          return JSON.stringify(lastSeen.flatMap((r) => r.nodeIds).sort()) === JSON.stringify(allNodeIds);
        },
        (LEASE_SECONDS + 12) * 1000,
      ).catch((error: Error) => {
        throw new Error(`${error.message}; cut ${cut.id}; last seen ${JSON.stringify(lastSeen)}`);
      });
      const movedMs = Date.now() - cutAt;
      console.log(JSON.stringify({ test: 'partition', cut: cut.id, movers: movers.length, movedMs }));
      // The cut replica closed its links itself: each of its nodes is connected to another replica now.
      for (const nodeId of movers.filter((n) => n !== REAL_NODE)) {
        await waitFor(`${nodeId} to say it connected to another replica`, () => {
          const urls = protocolNodeEvents()
            .filter((e) => e.event === 'connected' && e.nodeId === nodeId)
            .map((e) => new URL(e.url as string).origin);
          return urls.length > 0 && urls.at(-1) !== cut.url;
        });
      }
      // A node dialling the cut replica is told it is unavailable (503), not that its token is
      // wrong (401, after which a node waits its longest backoff before dialling again).
      expect(await connectStatus(cut, PROBE_NODE, probeToken)).toBe(503);
    } finally {
      cut.proxy.thaw();
    }
    await waitFor(
      `${cut.id} listed again once it reaches PostgreSQL`,
      async () => (await replicaViews(others[0] as Replica))?.some((r) => r.id === cut.id),
      30_000,
    );
    // Once it reaches its database again, the probe node's token is good there.
    await waitFor(
      'the healed replica to let the probe node in',
      async () => (await connectStatus(cut, PROBE_NODE, probeToken)) === 101,
    );
    // Through every replica's API and in the table: each node held once, and by a replica whose link it is.
    for (const via of replicas)
      await waitFor(`every node held once, seen through ${via.id}`, () => settled(via), 30_000);
    const rows = await leases();
    expect(rows.map((l) => l.node_id).sort()).toEqual(allNodeIds);
    // Still so after the healed replica renewed twice more.
    const heartbeat = async () =>
      Date.parse(((await replicaViews(cut)) ?? []).find((r) => r.id === cut.id)?.heartbeatAt as string);
    const first = await waitFor('a heartbeat of the healed replica', heartbeat);
    await waitFor(
      'two more renewals of the healed replica',
      async () => (await heartbeat()) >= first + ((LEASE_SECONDS * 2) / 3) * 1000,
    );
    expect(await settled(cut)).toBe(true);
  });

  it('answers every GET that a client retries once on another replica, while each replica is restarted in turn', async () => {
    let stop = false;
    const results = { requests: 0, retried: 0, failed: [] as string[] };
    /** Why first attempts failed: an HTTP status, or the network error's code (ECONNREFUSED, …). */
    const firstFailures: Record<string, number> = {};
    const failureSamples: Record<string, string> = {};
    const attempt = async (replica: Replica) => {
      try {
        const answer = await api(replica, 'GET', '/pools');
        if (answer.status === 200) return null;
        return {
          kind: `HTTP ${answer.status}`,
          text: `${replica.id}: ${answer.status} ${JSON.stringify(answer.body)}`,
        };
      } catch (error) {
        const cause = (error as Error & { cause?: { code?: string } }).cause;
        const kind = cause?.code ?? (error as Error).name;
        return { kind, text: `${replica.id}: ${(error as Error).message} (${kind})` };
      }
    };
    const client = async (n: number) => {
      for (let i = n; !stop; i++) {
        const first = replicas[i % 3] as Replica;
        const second = replicas[(i + 1) % 3] as Replica;
        results.requests++;
        const problem = await attempt(first);
        if (problem === null) continue;
        results.retried++;
        firstFailures[problem.kind] = (firstFailures[problem.kind] ?? 0) + 1;
        failureSamples[problem.kind] ??= problem.text.slice(0, 300);
        const again = await attempt(second);
        if (again !== null) results.failed.push(`${problem.text}; retried: ${again.text}`);
      }
    };
    const clients = [0, 1, 2, 3].map((n) => client(n));
    try {
      for (const replica of replicas) {
        const before = results.requests;
        await waitFor('requests answered before the restart', () => results.requests > before + 20);
        await killReplica(replica, 'SIGTERM');
        expect(replica.child?.exitCode).toBe(0);
        await startReplica(replica);
        const other = replicas.find((r) => r !== replica) as Replica;
        await waitFor(`${replica.id} listed again`, async () =>
          (await replicaViews(other))?.some((r) => r.id === replica.id),
        );
        await waitFor('every node held by one replica', () => settled(other), 30_000);
      }
    } finally {
      stop = true;
      await Promise.all(clients);
    }
    console.log(
      JSON.stringify({
        test: 'rolling-restart',
        ...results,
        firstFailures,
        failureSamples,
        failed: results.failed.slice(0, 5),
      }),
    );
    expect(results.failed).toEqual([]);
    expect(results.requests).toBeGreaterThan(100);
  });
});
