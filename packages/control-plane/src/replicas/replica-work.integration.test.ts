/**
 * Work that crosses replicas, on one real PostgreSQL: two control planes (A and B, each a full
 * createControlPlane on its own Quantix instance), a real NodeAgent linked to B that downloads
 * with the real HTTP fetcher from a real HTTP server (which counts every request), and the
 * health sweep recording what a replica that died left behind. Only the node's WebSocket is
 * replaced by an in-process pipe (__fixtures__/in-process-node.ts); the dead replica is a real
 * process, SIGKILLed.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { createPoolRootPolicy, createQuantix, ErrorCode, type Quantix, type StoragePool } from '@quantix/core';
import { createTestDatabase, type TestDatabase, waitFor } from '@quantix/core/testing';
import { type CatalogEntryInput, createImagesCloudPlugin, HttpImageFetcher } from '@quantix/images-cloud';
import { type ImageServer, makeQcow2, sha256, sha256Sums, startImageServer } from '@quantix/images-cloud/testing';
import { NodeAgent } from '@quantix/node-runtime';
import { LocalStorageBackend, localPoolType, storageLocalPlugin } from '@quantix/storage-local';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type InProcessLink, inProcessLink } from '../__fixtures__/in-process-node.js';
import { type ControlPlaneServices, createControlPlane } from '../control-plane.js';
import { SOURCE_LABELS } from '../images/source.js';
import { STAGED_ON_LABEL } from '../images/uploads.js';

const here = dirname(fileURLToPath(import.meta.url));
const IMAGE = '/images/replica-test.qcow2';
const SUMS = '/images/SHA256SUMS';

describe('work across control-plane replicas on PostgreSQL', () => {
  let testDb: TestDatabase;
  let server: ImageServer;
  let base: string;
  let image: Buffer;
  const instances: Quantix[] = [];
  let a: ControlPlaneServices;
  let b: ControlPlaneServices;
  let link: InProcessLink;
  let nodeId: string;
  let pool: StoragePool;

  const entry = (): CatalogEntryInput => ({
    id: 'replica-test',
    name: 'Replica test image',
    os: { family: 'linux', distribution: 'ubuntu', version: '24.04', cloudInit: true },
    sourceUrl: `${server.url}${IMAGE}`,
    checksumUrl: `${server.url}${SUMS}`,
    checksumAlgorithm: 'sha256',
  });

  const replica = async (id: string): Promise<ControlPlaneServices> => {
    const quantix = await createQuantix({
      database: testDb.config,
      plugins: [storageLocalPlugin, createImagesCloudPlugin({ builtinCatalog: false, entries: [entry()] })],
    });
    instances.push(quantix);
    const cp = createControlPlane({
      quantix,
      replica: { replicaId: id, version: 'test', leaseSeconds: 2 },
      poolRoots: createPoolRootPolicy({ allowedRoots: [base] }),
      sweepSeconds: 1,
      resumeGraceMs: 1_000,
    });
    await cp.start();
    return cp;
  };

  beforeAll(async () => {
    testDb = await createTestDatabase('pg');
    base = await mkdtemp(join(tmpdir(), 'quantix-replica-work-'));
    image = await makeQcow2(base, 'source.qcow2', 4);
    server = await startImageServer();
    server.setFile(IMAGE, image);
    server.setFile(SUMS, sha256Sums({ 'replica-test.qcow2': image }));
    a = await replica('replica-a');
    b = await replica('replica-b');

    const repositories = (instances[0] as Quantix).repositories;
    nodeId = (await repositories.nodes.create({ hostname: 'hv-b', address: '127.0.0.1' })).id;
    pool = await repositories.pools.create({
      name: 'images-on-b',
      type: 'local',
      config: { path: join(base, 'pool'), create: true },
      contentTypes: ['images'],
      nodeIds: [nodeId],
    });
    link = inProcessLink();
    const agent = new NodeAgent({
      nodeId,
      backends: [new LocalStorageBackend()],
      poolTypes: [localPoolType],
      poolRoots: createPoolRootPolicy({ allowedRoots: [base] }),
      fetchers: [new HttpImageFetcher({ policy: { allowAddresses: ['127.0.0.1'] } })],
      poolRecheckIntervalMs: 0,
      send: (message) => link.send(message),
    });
    link.connect(agent, b.hub, nodeId);
    // A knows the node is on B (its view of the leases is at most a third of a lease old).
    await waitFor('the pool active on the node, as A sees it', async () => {
      const states = (await a.pools.get(pool.id)).nodeStates;
      return (
        states.some((state) => state.status === 'active') && a.hub.isConnected(nodeId) && !a.hub.isConnectedHere(nodeId)
      );
    });
  }, 60_000);

  afterAll(async () => {
    link?.close();
    for (const cp of [a, b]) await cp?.close();
    for (const quantix of instances) await quantix.close();
    await testDb?.dispose();
    await server?.close();
    if (base) await rm(base, { recursive: true, force: true });
  });

  it('starts a download asked for on A on B, which holds the node: it ends ready, fetched once', async () => {
    const handle = await a.downloads.download({ catalogId: 'replica-test', poolId: pool.id });
    expect(handle.image.location?.poolId).toBe(pool.id);
    expect(handle.image.nodeId).toBe(nodeId);
    expect(a.downloads.isRunning(handle.image.id)).toBe(false);

    const done = await handle.completion;
    expect(done.phase).toBe('ready');
    expect(done.checksum).toEqual({ algorithm: 'sha256', value: sha256(image) });
    const stored = await readFile(join(base, 'pool', done.location?.relPath ?? ''));
    expect(sha256(stored)).toBe(sha256(image));
    expect(server.requestsFor(IMAGE).filter((request) => request.method === 'GET')).toHaveLength(1);

    // Asked again on A: the ready row, no second fetch.
    const again = await a.downloads.download({ catalogId: 'replica-test', poolId: pool.id });
    expect(again.image.id).toBe(done.id);
    expect(again.image.phase).toBe('ready');
    expect(server.requestsFor(IMAGE).filter((request) => request.method === 'GET')).toHaveLength(1);
  });

  it('asked for on a node no replica holds, says so with its code', async () => {
    const other = await (instances[0] as Quantix).repositories.nodes.create({
      hostname: 'hv-off',
      address: '127.0.0.2',
    });
    await expect(
      a.downloads.download({
        source: { url: `${server.url}${IMAGE}`, checksum: { algorithm: 'sha256', value: sha256(image) } },
        poolId: pool.id,
        relPath: 'images/elsewhere.qcow2',
        nodeId: other.id,
      }),
    ).rejects.toMatchObject({ code: ErrorCode.NODE_NOT_CONNECTED });
  });

  it('records the nodes of a replica that died as disconnected once its lease runs out', async () => {
    const repositories = (instances[0] as Quantix).repositories;
    const orphan = await repositories.nodes.create({ hostname: 'hv-dead', address: '127.0.0.3' });
    // A replica process that holds the node, and — as its hub would have — recorded it connected.
    const child = spawn(
      process.execPath,
      [
        '--import',
        'tsx',
        join(here, '..', '__fixtures__', 'replica-child.ts'),
        testDb.config.client === 'pg' ? testDb.config.connectionString : '',
        'replica-dying',
        '2',
        orphan.id,
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    const [line] = (await once(createInterface({ input: child.stdout }), 'line')) as [string];
    expect(JSON.parse(line)).toEqual({ claimed: [orphan.id] });
    await repositories.nodes.update(orphan.id, { connectionState: 'connected' });
    expect(a.hub.isConnected(orphan.id) || (await a.replicas.holderOf(orphan.id)) === 'replica-dying').toBe(true);

    const killedAt = Date.now();
    child.kill('SIGKILL');
    await waitFor(
      'the dead replica’s node recorded disconnected',
      async () => (await repositories.nodes.require(orphan.id)).connectionState === 'disconnected',
    );
    // The lease (2 s) runs out, then the next sweep (every 1 s) records it.
    expect(Date.now() - killedAt).toBeLessThan(6_000);
    expect(await a.replicas.holderOf(orphan.id)).toBeNull();
  });

  it('fails a download nobody runs any more, retryable, once it has been quiet for the grace period', async () => {
    const repositories = (instances[0] as Quantix).repositories;
    const offNode = await repositories.nodes.create({ hostname: 'hv-gone', address: '127.0.0.4' });
    const lonely = await repositories.pools.create({
      name: 'pool-of-a-gone-node',
      type: 'local',
      config: { path: join(base, 'gone'), create: true },
      contentTypes: ['images'],
      nodeIds: [offNode.id],
    });
    // What a replica that died mid-download leaves: a busy row with its source recorded.
    const row = await repositories.images.create({
      name: 'left behind',
      kind: 'cloud',
      format: 'qcow2',
      phase: 'pending',
      location: { poolId: lonely.id, relPath: 'images/left.qcow2' },
      nodeId: offNode.id,
      labels: { [SOURCE_LABELS.url]: `${server.url}${IMAGE}` },
    });
    await repositories.images.update(row.id, { phase: 'downloading' });
    const failed = await waitFor('the row failed by the sweep', async () => {
      const now = await repositories.images.require(row.id);
      return now.phase === 'error' ? now : null;
    });
    expect(failed.error).toMatchObject({ code: ErrorCode.DOWNLOAD_INTERRUPTED, retryable: true });
    expect(failed.error?.message).toContain('came back in time');
  });

  it('gets a download a dead replica left quiet run again by the replica holding its node, once', async () => {
    const repositories = (instances[0] as Quantix).repositories;
    const gets = () => server.requestsFor(IMAGE).filter((request) => request.method === 'GET').length;
    const before = gets();
    // What a replica that died between recording a download and starting it leaves: a busy row,
    // its source recorded, nobody writing it. The node (on B) has never heard of it.
    const row = await repositories.images.create({
      name: 'left quiet',
      kind: 'cloud',
      format: 'qcow2',
      phase: 'pending',
      location: { poolId: pool.id, relPath: 'images/left-quiet.qcow2' },
      nodeId,
      checksum: { algorithm: 'sha256', value: sha256(image) },
      labels: { [SOURCE_LABELS.url]: `${server.url}${IMAGE}` },
    });
    const ready = await waitFor('the quiet download recovered and ready', async () => {
      const now = await repositories.images.require(row.id);
      return now.phase === 'ready' ? now : null;
    });
    expect(ready.checksum).toEqual({ algorithm: 'sha256', value: sha256(image) });
    expect(sha256(await readFile(join(base, 'pool', 'images/left-quiet.qcow2')))).toBe(sha256(image));
    // Recovered once (one job per row and version, on one replica): fetched once.
    expect(gets() - before).toBe(1);
  });

  it('fails an upload whose replica died before a node had the file', async () => {
    const repositories = (instances[0] as Quantix).repositories;
    const row = await repositories.images.create({
      name: 'half-uploaded.iso',
      kind: 'iso',
      format: 'iso',
      phase: 'pending',
      location: { poolId: pool.id, relPath: 'half-uploaded.iso' },
      nodeId,
      labels: { 'quantix.io/source': 'upload', [STAGED_ON_LABEL]: 'replica-long-gone' },
    });
    await repositories.images.update(row.id, { phase: 'downloading' });
    const failed = await waitFor('the upload row failed by the sweep', async () => {
      const now = await repositories.images.require(row.id);
      return now.phase === 'error' ? now : null;
    });
    expect(failed.error).toMatchObject({ code: ErrorCode.UPLOAD_FAILED, retryable: false });
    expect(failed.error?.message).toContain('replica-long-gone');
  });
});
