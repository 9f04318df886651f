/**
 * Two control-plane replicas (two full control planes, HTTP and node WebSocket, on one real
 * PostgreSQL): each names itself in /healthz, both list each other and their nodes in
 * /replicas, and a node that moves from one to the other is held by exactly one. Nodes are the
 * daemon's real connection class, or a raw WebSocket where the test needs a connection that
 * never redials.
 */
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { IdempotencyStore } from '@quantix/control-plane';
import { createQuantix, PROTOCOL_VERSION, PROTOCOL_VERSIONS, type Quantix } from '@quantix/core';
import { createTestDatabase, freePort, type TestDatabase, waitFor } from '@quantix/core/testing';
import { ControlPlaneConnection, type MessageHandler } from '@quantix/example-node-daemon';
import { createStorageLocalPlugin } from '@quantix/storage-local';
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { inProcessCli } from '../test/harness.js';
import { CONTROL_PLANE_VERSION, type ControlPlane, startControlPlane } from './control-plane.js';

const API_TOKEN = 'test-api-token';
const REPO_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const silent = pino({ level: 'silent' });

describe('control-plane replicas on one PostgreSQL', () => {
  let testDb: TestDatabase;
  const instances: Quantix[] = [];
  let a: ControlPlane;
  let b: ControlPlane;
  let nodeToken: string;
  const cleanup: (() => Promise<unknown> | unknown)[] = [];

  const replica = async (id: string, own: { url?: string; port?: number } = {}) => {
    // The pool types come from the storage plugin without its backend, as `quantix serve` has them.
    const quantix = await createQuantix({
      database: testDb.config,
      logger: silent,
      plugins: [createStorageLocalPlugin({ backend: false })],
    });
    instances.push(quantix);
    return startControlPlane({
      quantix,
      apiToken: API_TOKEN,
      replica: { id, leaseSeconds: 3, ...(own.url ? { url: own.url } : {}) },
      ...(own.port ? { host: '127.0.0.1', port: own.port } : {}),
    });
  };
  const get = async (cp: ControlPlane, path: string) => {
    const response = await fetch(`${cp.url}/api/v1${path}`, { headers: { authorization: `Bearer ${API_TOKEN}` } });
    return (await response.json()) as Record<string, unknown>;
  };
  const holders = async (cp: ControlPlane) =>
    ((await get(cp, '/replicas')).replicas as { id: string; nodeIds: string[] }[]).map((r) => [r.id, r.nodeIds]);

  /** Which replica each node is held by, as GET /nodes on `cp` says. */
  const replicaIdsOfNodes = async (cp: ControlPlane) =>
    Object.fromEntries(
      ((await get(cp, '/nodes')).nodes as { id: string; replicaId: string | null }[]).map((n) => [n.id, n.replicaId]),
    );
  /** How many nodes `cp` holds, as its /healthz says. */
  const heldCount = async (cp: ControlPlane) =>
    ((await (await fetch(`${cp.url}/api/v1/healthz`)).json()) as { replica: { nodes: number } }).replica.nodes;

  /** Node n1, connected to `cp` with the daemon's connection class, answering with `handle`. */
  const nodeOn = (cp: ControlPlane, handle: MessageHandler['handle'] = () => {}) => {
    const connection = new ControlPlaneConnection({
      urls: [cp.url],
      nodeId: 'n1',
      token: nodeToken,
      hostname: 'hv1',
      agentVersion: 'test',
      logger: silent,
      handler: { handle },
    });
    connection.start();
    cleanup.push(() => connection.close());
    return connection;
  };

  /** A real replica process (packages/control-plane fixture) holding `nodeId`; its output lines as they come. */
  const childReplica = (replicaId: string, leaseSeconds: number, nodeId: string) => {
    const child = spawn(
      process.execPath,
      [
        '--import',
        'tsx',
        join(REPO_ROOT, 'packages/control-plane/src/__fixtures__/replica-child.ts'),
        (testDb.config as { connectionString: string }).connectionString,
        replicaId,
        String(leaseSeconds),
        nodeId,
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    cleanup.push(() => child.kill('SIGKILL'));
    const lines: string[] = [];
    createInterface({ input: child.stdout as NodeJS.ReadableStream }).on('line', (line) => lines.push(line));
    child.once('exit', (code) => lines.push(`exited ${code}`));
    return { child, lines };
  };

  beforeAll(async () => {
    testDb = await createTestDatabase('pg');
    a = await replica('replica-a');
    b = await replica('replica-b');
    const registered = await fetch(`${a.url}/api/v1/nodes`, {
      method: 'POST',
      headers: { authorization: `Bearer ${API_TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ id: 'n1', hostname: 'hv1' }),
    });
    nodeToken = ((await registered.json()) as { token: string }).token;
  });
  afterEach(async () => {
    for (const step of cleanup.splice(0).reverse()) await step();
  });
  afterAll(async () => {
    for (const cp of [a, b]) await cp?.close().catch(() => undefined);
    for (const quantix of instances) await quantix.close();
    await testDb?.dispose();
  });

  it('names the replica answering in /healthz, and lists every live replica in /replicas', async () => {
    const health = (await (await fetch(`${b.url}/api/v1/healthz`)).json()) as { replica: unknown };
    expect(health.replica).toEqual({ id: 'replica-b', version: CONTROL_PLANE_VERSION, nodes: 0 });
    expect(await holders(a)).toEqual([
      ['replica-a', []],
      ['replica-b', []],
    ]);
    expect((await get(b, '/replicas')).self).toBe('replica-b');
  });

  it('hands a node that connects to another replica over to it, and the first replica lets its old link go', async () => {
    // The node's first connection, to A: a raw socket that never redials.
    const first = new WebSocket(`${a.url.replace('http', 'ws')}/api/v1/nodes/connect`, {
      headers: { authorization: `Bearer ${nodeToken}`, 'x-quantix-node-id': 'n1' },
    });
    const firstClosed = new Promise<number>((resolve) => first.once('close', (code) => resolve(code)));
    cleanup.push(() => first.terminate());
    await new Promise((resolve) => first.once('open', resolve));
    first.send(
      JSON.stringify({
        v: PROTOCOL_VERSION,
        type: 'hello',
        nodeId: 'n1',
        hostname: 'hv1',
        agentVersion: 'test',
        capabilities: {},
        protocol: { min: PROTOCOL_VERSIONS.min, max: PROTOCOL_VERSIONS.max },
      }),
    );
    await waitFor(
      'n1 held by A',
      async () =>
        JSON.stringify(await holders(b)) ===
        JSON.stringify([
          ['replica-a', ['n1']],
          ['replica-b', []],
        ]),
    );

    // Every replica names A as n1's holder, in the list and in the node's own view.
    expect(await replicaIdsOfNodes(b)).toEqual({ n1: 'replica-a' });
    expect((await get(b, '/nodes/n1')).replicaId).toBe('replica-a');
    expect(await heldCount(a)).toBe(1);

    // Its next connection goes to B (A is unreachable to it, say): B takes the node over.
    nodeOn(b);
    await waitFor(
      'n1 held by B',
      async () =>
        JSON.stringify(await holders(a)) ===
        JSON.stringify([
          ['replica-a', []],
          ['replica-b', ['n1']],
        ]),
    );
    // A finds out at its next renewal (a third of the 3 s lease) and closes its link as replaced.
    expect(await firstClosed).toBe(4003);
    expect(b.hub.connectedNodeIds()).toContain('n1');
    expect(a.hub.connectedNodeIds()).not.toContain('n1'); // no link on A
    // A's closing the old link does not record the node disconnected: B holds it.
    await new Promise((resolve) => setTimeout(resolve, 300));
    const node = (await get(a, '/nodes')).nodes as { id: string; connectionState: string }[];
    expect(node.find((n) => n.id === 'n1')?.connectionState).toBe('connected');
    expect(await replicaIdsOfNodes(a)).toEqual({ n1: 'replica-b' });
    expect((await get(a, '/nodes/n1')).replicaId).toBe('replica-b');
    expect([await heldCount(a), await heldCount(b)]).toEqual([0, 1]);
  });

  it('pushes a pool defined on one replica to a node held by another, within a second', async () => {
    const pushes: { at: number; poolIds: string[] }[] = [];
    nodeOn(b, (message) => {
      if (message.type === 'pools.desired') {
        pushes.push({ at: Date.now(), poolIds: message.pools.map((pool) => pool.id) });
      }
    });
    await waitFor('n1 on B', () => b.hub.isConnected('n1') && pushes.length > 0);

    const before = Date.now();
    const created = await fetch(`${a.url}/api/v1/pools`, {
      method: 'POST',
      headers: { authorization: `Bearer ${API_TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({
        id: 'fanout',
        name: 'Fan-out',
        type: 'local',
        config: { path: '/srv/fanout' },
        nodeIds: ['n1'],
      }),
    });
    expect(created.status).toBe(201);
    const push = await waitFor('the pool pushed to n1 on B', () => pushes.find((p) => p.poolIds.includes('fanout')));
    expect(push.at - before).toBeLessThan(1_000);
    expect(a.hub.connectedNodeIds()).not.toContain('n1'); // no link on A
  });

  it('carries a request for a node on another replica there and its answer back, errors unchanged', async () => {
    nodeOn(b, (message, send) => {
      if (message.type !== 'request' || message.request.op !== 'vm.state') return;
      const { name } = message.request;
      send(
        name === 'web-1'
          ? {
              v: PROTOCOL_VERSION,
              type: 'response',
              requestId: message.requestId,
              result: { name, state: 'running' },
            }
          : {
              v: PROTOCOL_VERSION,
              type: 'response',
              requestId: message.requestId,
              error: { code: 'NOT_FOUND', message: `no domain ${name}` },
            },
      );
    });
    await waitFor('n1 on B', () => b.hub.isConnected('n1'));
    // A learns who holds n1 at its next lease renewal (a third of the 3 s lease).
    await waitFor('A counting n1 as connected', () => a.hub.isConnected('n1'));

    expect(await a.hub.request('n1', { op: 'vm.state', name: 'web-1' })).toEqual({ name: 'web-1', state: 'running' });
    await expect(a.hub.request('n1', { op: 'vm.state', name: 'ghost' })).rejects.toMatchObject({
      code: 'NOT_FOUND',
      message: 'no domain ghost',
    });
    // Nothing is left behind in the relay's table.
    const quantix = instances[0] as Quantix;
    expect(Number((await quantix.database.knex('node_requests').count({ n: '*' }))[0]?.n)).toBe(0);
  });

  it('counts a node that has just connected to another replica as connected at once, before the next renewal', async () => {
    // A's view from its last renewal: nobody holds n1 (the previous test's node has gone).
    await waitFor('A seeing n1 held by nobody', () => !a.hub.isConnected('n1'));
    const networks = [
      {
        attachment: 'network',
        name: 'default',
        active: true,
        forward: 'nat',
        bridge: 'virbr0',
        addresses: [],
        dhcp: true,
      },
    ];
    nodeOn(b, (message, send) => {
      if (message.type !== 'request' || message.request.op !== 'node.networks') return;
      send({ v: PROTOCOL_VERSION, type: 'response', requestId: message.requestId, result: { networks } });
    });
    await waitFor('n1 on B', () => b.hub.isConnected('n1'));
    // Asked of A at once: A's renewal comes up to a second later, so only a fresh look at the
    // lease can find n1 on B (it used to say NODE_NOT_CONNECTED here).
    const response = await fetch(`${a.url}/api/v1/nodes/n1/networks`, {
      headers: { authorization: `Bearer ${API_TOKEN}` },
    });
    expect(response.status).toBe(200);
    expect(((await response.json()) as { networks: unknown }).networks).toEqual(networks);
  });

  it('opens a console through a replica the node is not connected to: the node dials back to that replica’s URL', async () => {
    const port = await freePort();
    const c = await replica('replica-c', { url: `http://127.0.0.1:${port}`, port });
    cleanup.push(() => c.close());
    const vm = await (instances[0] as Quantix).repositories.vms.create({ name: 'web-1', nodeId: 'n1' });
    cleanup.push(() => (instances[0] as Quantix).repositories.vms.delete(vm.id));
    const dialled: (string | undefined)[] = [];
    // The daemon's own connection class dials the relay: only the VM behind it is a stand-in.
    const connection: ControlPlaneConnection = nodeOn(b, async (message, send) => {
      if (message.type !== 'request' || message.request.op !== 'console.open') return;
      const { sessionId, relayUrl } = message.request;
      dialled.push(relayUrl);
      const channel = await connection.openConsoleChannel(sessionId, relayUrl);
      channel.write('login: ');
      send({
        v: PROTOCOL_VERSION,
        type: 'response',
        requestId: message.requestId,
        result: { sessionId, type: 'serial' },
      });
    });
    await waitFor('n1 on B', () => b.hub.isConnected('n1'));

    // A has no URL of its own to be dialled at: it says so, rather than wait for a dial that cannot come.
    await expect(a.consoles.open(vm.id, 'serial')).rejects.toMatchObject({
      code: 'NODE_NOT_CONNECTED',
      details: { reason: 'no-replica-url' },
    });
    const viewer = await c.consoles.open(vm.id, 'serial');
    const first = await new Promise<string>((resolve) => viewer.once('data', (chunk) => resolve(String(chunk))));
    viewer.destroy();
    expect(first).toBe('login: ');
    expect(dialled).toEqual([`http://127.0.0.1:${port}`]);
    expect(c.hub.isConnectedHere('n1')).toBe(false);
  });

  it('accepts a download ticket minted by another replica (signed, not remembered), and only as it was issued', async () => {
    const { images } = (instances[0] as Quantix).repositories;
    // Ready but with no file anywhere: past the ticket, the export itself refuses (IMAGE_NO_LOCATION).
    const image = await images.create({ name: 'ticketed', kind: 'cloud', phase: 'ready' });
    const other = await images.create({ name: 'not ticketed', kind: 'cloud', phase: 'ready' });
    cleanup.push(
      () => images.delete(image.id),
      () => images.delete(other.id),
    );
    const minted = await fetch(`${a.url}/api/v1/images/${image.id}/content/tickets`, {
      method: 'POST',
      headers: { authorization: `Bearer ${API_TOKEN}` },
    });
    expect(minted.status).toBe(201);
    const { ticket } = (await minted.json()) as { ticket: string };
    const content = async (cp: ControlPlane, imageId: string, shown: string) => {
      const response = await fetch(`${cp.url}/api/v1/images/${imageId}/content?ticket=${encodeURIComponent(shown)}`);
      return { status: response.status, code: ((await response.json()) as { error: { code: string } }).error.code };
    };
    // On the replica that minted it and on the other alike.
    expect(await content(a, image.id, ticket)).toEqual({ status: 409, code: 'IMAGE_NO_LOCATION' });
    expect(await content(b, image.id, ticket)).toEqual({ status: 409, code: 'IMAGE_NO_LOCATION' });
    // Not for another image, and not altered.
    expect(await content(b, other.id, ticket)).toEqual({ status: 401, code: 'UNAUTHORIZED' });
    const [body, signature] = ticket.split('.') as [string, string];
    const forged = Buffer.from(
      Buffer.from(body, 'base64url').toString('utf8').replace(image.id, other.id),
      'utf8',
    ).toString('base64url');
    expect(await content(b, other.id, `${forged}.${signature}`)).toEqual({ status: 401, code: 'UNAUTHORIZED' });
    expect(await content(b, image.id, `${body}.${signature.slice(0, -2)}AA`)).toEqual({
      status: 401,
      code: 'UNAUTHORIZED',
    });
  });

  it('opens an event stream with a ticket minted by another replica, once in the whole cluster', async () => {
    const minted = await fetch(`${a.url}/api/v1/events/tickets`, {
      method: 'POST',
      headers: { authorization: `Bearer ${API_TOKEN}` },
    });
    expect(minted.status).toBe(201);
    const { path } = (await minted.json()) as { path: string };
    const open = async (cp: ControlPlane) => {
      const controller = new AbortController();
      const response = await fetch(`${cp.url}${path}`, { signal: controller.signal });
      controller.abort();
      return response.status;
    };
    // A load balancer sent the browser to B: B spends it; then it opens nothing, on A or B.
    expect(await open(b)).toBe(200);
    expect(await open(a)).toBe(401);
    expect(await open(b)).toBe(401);
  });

  it('fails a request for a node held by a silent replica with REPLICA_UNAVAILABLE, not a hang', async () => {
    // A real replica process that holds n2 and renews its lease, then is frozen (SIGSTOP).
    const quantix = instances[0] as Quantix;
    await quantix.repositories.nodes.create({ id: 'n2', hostname: 'hv2' });
    const { child, lines } = childReplica('replica-frozen', 30, 'n2');
    await waitFor('n2 claimed by the child replica', () => lines.some((line) => line.includes('claimed')));
    child.kill('SIGSTOP');
    const startedAt = Date.now();
    await expect(a.hub.request('n2', { op: 'vm.state', name: 'web-1' }, { timeoutMs: 20_000 })).rejects.toMatchObject({
      code: 'REPLICA_UNAVAILABLE',
      details: { replica: 'replica-frozen', nodeId: 'n2' },
    });
    expect(Date.now() - startedAt).toBeLessThan(5_000);
  });
  it('fails a request whose holder dies while answering with REPLICA_UNAVAILABLE, long before its deadline', async () => {
    const quantix = instances[0] as Quantix;
    await quantix.repositories.nodes.create({ id: 'n3', hostname: 'hv3' });
    const { child, lines } = childReplica('replica-dies-answering', 2, 'n3');
    await waitFor('n3 claimed by the child replica', () => lines.some((line) => line.includes('claimed')));
    await waitFor('A sees n3 held elsewhere', () => a.hub.isConnected('n3'));

    const startedAt = Date.now();
    const answer = a.hub.request('n3', { op: 'vm.state', name: 'web-1' }, { timeoutMs: 60_000 });
    answer.catch(() => undefined);
    await waitFor('the child replica took the request', () => lines.some((line) => line.includes('taken')));
    child.kill('SIGKILL');
    await expect(answer).rejects.toMatchObject({
      code: 'REPLICA_UNAVAILABLE',
      details: { replica: 'replica-dies-answering', nodeId: 'n3' },
    });
    // Its lease (2 s) runs out, then the next check (every 2 s) sees it: not the 60 s deadline.
    expect(Date.now() - startedAt).toBeLessThan(10_000);
  });

  it('answers a write retried with its Idempotency-Key on another replica with the first answer, written once', async () => {
    const post = (cp: ControlPlane, key: string, body: unknown) =>
      fetch(`${cp.url}/api/v1/pools`, {
        method: 'POST',
        headers: { authorization: `Bearer ${API_TOKEN}`, 'content-type': 'application/json', 'idempotency-key': key },
        body: JSON.stringify(body),
      });
    const pool = { name: 'Idempotent', type: 'local', config: { path: '/srv/idempotent' } };
    const key = randomUUID();
    const first = await post(a, key, pool);
    expect(first.status).toBe(201);
    const created = (await first.json()) as { id: string };

    // The client lost the answer and retries, through the load balancer, on B.
    const retried = await post(b, key, pool);
    expect(retried.status).toBe(201);
    expect(retried.headers.get('idempotent-replayed')).toBe('true');
    expect(((await retried.json()) as { id: string }).id).toBe(created.id);
    const pools = (await get(b, '/pools')).pools as { name: string }[];
    expect(pools.filter((p) => p.name === 'Idempotent')).toHaveLength(1);

    // The same key for another request is refused, and changes nothing.
    const reused = await post(b, key, { ...pool, name: 'Other' });
    expect(reused.status).toBe(422);
    expect(((await reused.json()) as { error: { code: string } }).error.code).toBe('IDEMPOTENCY_KEY_REUSED');

    // A first attempt still running on a live replica: the retry is told to wait.
    const knex = (instances[0] as Quantix).database.knex;
    const second = { name: 'Second', type: 'local', config: { path: '/srv/second' } };
    const fingerprint = IdempotencyStore.fingerprint({ method: 'POST', url: '/api/v1/pools', body: second });
    const busyKey = randomUUID();
    await knex('idempotency_keys').insert({ key: busyKey, fingerprint, replica_id: 'replica-a' });
    const busy = await post(b, busyKey, second);
    expect(busy.status).toBe(409);
    expect(((await busy.json()) as { error: { code: string } }).error.code).toBe('IDEMPOTENCY_KEY_IN_USE');

    // One whose replica died mid-request: the retry takes it over and runs.
    const orphanKey = randomUUID();
    await knex('idempotency_keys').insert({ key: orphanKey, fingerprint, replica_id: 'replica-died-mid-request' });
    const takenOver = await post(b, orphanKey, second);
    expect(takenOver.status).toBe(201);
    expect(takenOver.headers.get('idempotent-replayed')).toBeNull();

    // A key that is not one: a clear 400 before anything runs.
    const bad = await post(a, 'not a key', { ...second, name: 'Bad' });
    expect(bad.status).toBe(400);
  });

  const api = async (cp: ControlPlane, method: string, path: string, body?: unknown) =>
    fetch(`${cp.url}/api/v1${path}`, {
      method,
      headers: { authorization: `Bearer ${API_TOKEN}`, ...(body ? { 'content-type': 'application/json' } : {}) },
      ...(body ? { body: JSON.stringify(body) } : {}),
    });
  /** Node `id`, registered, upgraded on `cp` by a raw socket that never redials, no hello said yet; `closed` resolves with its close code. */
  const upgraded = async (cp: ControlPlane, id: string) => {
    const { token } = (await (await api(a, 'POST', '/nodes', { id, hostname: id })).json()) as { token: string };
    const socket = new WebSocket(`${cp.url.replace('http', 'ws')}/api/v1/nodes/connect`, {
      headers: { authorization: `Bearer ${token}`, 'x-quantix-node-id': id },
    });
    cleanup.push(() => socket.terminate());
    const closed = new Promise<number>((resolve) => socket.once('close', (code) => resolve(code)));
    await new Promise((resolve) => socket.once('open', resolve));
    const sayHello = () =>
      socket.send(
        JSON.stringify({
          v: PROTOCOL_VERSION,
          type: 'hello',
          nodeId: id,
          hostname: id,
          agentVersion: 'test',
          capabilities: {},
          protocol: { min: PROTOCOL_VERSIONS.min, max: PROTOCOL_VERSIONS.max },
        }),
      );
    return { closed, sayHello };
  };
  /** Node `id`, registered and connected to `cp` (its hello answered). */
  const connected = async (cp: ControlPlane, id: string) => {
    const link = await upgraded(cp, id);
    link.sayHello();
    await waitFor(`${id} connected`, () => cp.hub.isConnected(id));
    return link;
  };

  it('closes a removed node’s connection as removed (4004): at once on its replica, at the next renewal on another', async () => {
    // Removed through the replica holding it: closed at once.
    const here = await connected(a, 'n-removed-here');
    expect((await api(a, 'DELETE', '/nodes/n-removed-here')).status).toBe(204);
    expect(await here.closed).toBe(4004);
    expect(a.hub.isConnected('n-removed-here')).toBe(false);

    // Removed through another replica: its holder finds the lease gone with the node at its next
    // renewal (a third of the 3 s lease) and closes the link as removed, not as taken over.
    const there = await connected(a, 'n-removed-there');
    expect((await api(b, 'DELETE', '/nodes/n-removed-there')).status).toBe(204);
    expect(await there.closed).toBe(4004);
    expect(a.hub.isConnected('n-removed-there')).toBe(false);
    expect(await heldCount(a)).toBe(0);
    expect(Object.keys(await replicaIdsOfNodes(a))).not.toContain('n-removed-there');
  });

  it('closes the connection opened with a node’s token when it gets a new one (4005), whichever replica holds it', async () => {
    const here = await connected(a, 'n-token-here');
    expect((await api(a, 'POST', '/nodes/n-token-here/token')).status).toBe(200);
    expect(await here.closed).toBe(4005);
    // Through another replica: the holder is told (a renewal would not close it: the lease stays).
    const there = await connected(a, 'n-token-there');
    expect((await api(b, 'POST', '/nodes/n-token-there/token')).status).toBe(200);
    expect(await there.closed).toBe(4005);
    for (const id of ['n-token-here', 'n-token-there'])
      expect((await api(a, 'DELETE', `/nodes/${id}`)).status).toBe(204);
  });

  it('refuses at its hello a connection checked with a token replaced before the hello came (4005), whichever replica replaced it', async () => {
    // Upgraded with its token but no hello yet: not the node's link, so the new token had no link
    // of the node to close. Its hello is refused instead.
    for (const [through, id] of [
      [a, 'n-token-before-hello-here'],
      [b, 'n-token-before-hello-there'],
    ] as const) {
      const link = await upgraded(a, id);
      expect((await api(through, 'POST', `/nodes/${id}/token`)).status).toBe(200);
      // Through B, A is told by a notification, before or after the hello: 4005 either way.
      link.sayHello();
      expect(await link.closed).toBe(4005);
      expect(a.hub.isConnected(id)).toBe(false);
      expect((await api(a, 'DELETE', `/nodes/${id}`)).status).toBe(204);
    }
  });

  it('closes a connection whose token was replaced while its replica was not listening, once it listens again (4005)', async () => {
    const link = await connected(a, 'n-token-unheard');
    const knex = (instances[0] as Quantix).database.knex;
    // Each replica's listening connection names it (application_name), as an operator sees it.
    const listenersOf = async (replicaId: string) =>
      (
        (await knex.raw(
          'select pid from pg_stat_activity where datname = current_database() and application_name = ?',
          [`quantix-listener ${replicaId}`],
        )) as { rows: { pid: number }[] }
      ).rows.map((row) => row.pid);
    const listening = await listenersOf('replica-a');
    expect(listening).toHaveLength(1);
    const pid = listening[0] as number;
    // A's listening connection is cut, so the notification of a new token issued through B
    // reaches nobody on A; its lease stays, so no renewal closes the link either.
    await knex.raw('select pg_terminate_backend(?)', [pid]);
    await waitFor('A’s listening connection to be gone', async () => !(await listenersOf('replica-a')).includes(pid));
    expect((await api(b, 'POST', '/nodes/n-token-unheard/token')).status).toBe(200);
    // Listening again (a second later), A compares its links' tokens with the nodes' and closes this one.
    expect(await link.closed).toBe(4005);
    expect(await listenersOf('replica-a')).toHaveLength(1);
    expect((await api(a, 'DELETE', '/nodes/n-token-unheard')).status).toBe(204);
  });
  it('prints one --url per replica that has its own in the command that connects a node', async () => {
    const ports = [await freePort(), await freePort()];
    for (const [i, port] of ports.entries()) {
      const cp = await replica(`replica-url-${i}`, { url: `http://127.0.0.1:${port}`, port });
      cleanup.push(() => cp.close());
    }
    const tokenFile = join(tmpdir(), `quantix-replicas-${randomUUID()}`);
    writeFileSync(tokenFile, API_TOKEN, { mode: 0o600 });
    cleanup.push(() => rmSync(tokenFile, { force: true }));
    // The CLI against replica A, which has no URL of its own.
    const cli = inProcessCli(() => a.url, tokenFile);
    const added = await cli('nodes', 'add', 'hv-many', '--id', 'hv-many');
    cleanup.push(() => api(a, 'DELETE', '/nodes/hv-many'));
    // A and B have no URL of their own: the command names the two replicas that have one.
    expect(
      added
        .split('\n')
        .find((line) => line.trim().startsWith('quantix-node '))
        ?.trim(),
    ).toBe(
      `quantix-node --url http://127.0.0.1:${ports[0]} --url http://127.0.0.1:${ports[1]} --node-id hv-many --token-file /etc/quantix/node-token`,
    );
  });
});
