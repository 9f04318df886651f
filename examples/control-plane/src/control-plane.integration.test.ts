/**
 * The control plane's HTTP API and node hub, on a real PostgreSQL database, spoken to over
 * real HTTP and real WebSocket connections. The node side here is the daemon's real
 * connection class with a scripted handler that answers as a node would: these tests pin the
 * protocol and the API; the end-to-end tests run the real node agent in real daemon processes.
 */

import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import {
  type ControlMessage,
  createQuantix,
  definePlugin,
  FileInspectorToken,
  ImageCatalogToken,
  type NodeMessage,
  PROTOCOL_VERSION,
  type Quantix,
} from '@quantix/core';
import { createTestDatabase, type TestDatabase } from '@quantix/core/testing';
import { ControlPlaneConnection } from '@quantix/example-node-daemon';
import { createIsoInspector } from '@quantix/images-iso';
import { createStorageLocalPlugin } from '@quantix/storage-local';
import { createStorageNfsPlugin } from '@quantix/storage-nfs';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import WebSocket from 'ws';
import { apiCaller } from '../test/harness.js';
import { tinyCatalog } from './__fixtures__/tiny-catalog.js';
import { type ControlPlane, startControlPlane } from './control-plane.js';

const API_TOKEN = 'test-api-token';
const exec = promisify(execFile);
const silent = pino({ level: 'silent' });

/**
 * A scripted node: records what it receives and answers with the given function. It allows every
 * download source (source.check), as a node whose policy allows them would.
 */
class ScriptedNode {
  readonly received: ControlMessage[] = [];
  connection: ControlPlaneConnection;
  constructor(
    url: string,
    nodeId: string,
    token: string,
    private readonly answer: (m: ControlMessage, send: (r: NodeMessage) => void) => void = () => {},
    capabilities: Record<string, unknown> = {},
  ) {
    this.connection = new ControlPlaneConnection({
      urls: [url],
      nodeId,
      token,
      hostname: nodeId,
      agentVersion: 'test',
      capabilities,
      logger: silent,
      initialBackoffMs: 50,
      maxBackoffMs: 200,
      handler: {
        handle: (message, send) => {
          this.received.push(message);
          if (message.type === 'request' && message.request.op === 'source.check') {
            send({ v: PROTOCOL_VERSION, type: 'response', requestId: message.requestId, result: { allowed: true } });
            return;
          }
          this.answer(message, send);
        },
      },
    });
    this.connection.start();
  }
  async waitFor<T extends ControlMessage['type']>(
    type: T,
    predicate: (m: Extract<ControlMessage, { type: T }>) => boolean = () => true,
  ): Promise<Extract<ControlMessage, { type: T }>> {
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline) {
      const found = this.received.find((m) => m.type === type && predicate(m as Extract<ControlMessage, { type: T }>));
      if (found) return found as Extract<ControlMessage, { type: T }>;
      await new Promise((r) => setTimeout(r, 20));
    }
    throw new Error(`no ${type} message arrived`);
  }
}

/**
 * The scripted node answers file.stat as a node whose pool has no such file would: an upload asks
 * the node first, so that it never overwrites a file no row knows of. Returns the stop function.
 */
function answerFileStats(node: ScriptedNode): () => void {
  const answered = new Set<string>();
  const timer = setInterval(() => {
    for (const m of node.received) {
      if (m.type !== 'request' || m.request.op !== 'file.stat' || answered.has(m.requestId)) continue;
      answered.add(m.requestId);
      node.connection.send({
        v: 1,
        type: 'response',
        requestId: m.requestId,
        result: { exists: false, sizeBytes: null },
      });
    }
  }, 10);
  return () => clearInterval(timer);
}

async function eventually<T>(probe: () => Promise<T>, ok: (value: T) => boolean, what: string): Promise<T> {
  const deadline = Date.now() + 10_000;
  let last: T = await probe();
  while (!ok(last)) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}: ${JSON.stringify(last)}`);
    await new Promise((r) => setTimeout(r, 25));
    last = await probe();
  }
  return last;
}

describe('control plane API and node hub (PostgreSQL)', () => {
  let testDb: TestDatabase;
  let quantix: Quantix;
  let cp: ControlPlane;
  let work: string;
  const nodes: ScriptedNode[] = [];

  const api = apiCaller(() => cp.url, API_TOKEN);

  beforeAll(async () => {
    testDb = await createTestDatabase('pg');
    const catalogPlugin = definePlugin({
      name: 'test-catalog',
      apiVersion: 1,
      register: (ctx) => ctx.provide(ImageCatalogToken, { value: tinyCatalog }),
    });
    // The pool types come from the storage plugins, without their backends, as `quantix serve` has them.
    const poolTypes = [createStorageLocalPlugin({ backend: false }), createStorageNfsPlugin({ backend: false })];
    // The ISO reader (images-iso's inspector, without its catalog) decides which uploads are kept.
    const isoReader = definePlugin({
      name: 'iso-reader',
      apiVersion: 1,
      register: (ctx) => ctx.provide(FileInspectorToken, { value: createIsoInspector({ osinfo: false }) }),
    });
    quantix = await createQuantix({
      database: testDb.config,
      plugins: [catalogPlugin, isoReader, ...poolTypes],
      logger: silent,
    });
    work = await mkdtemp(join(tmpdir(), 'quantix-cp-'));
    cp = await startControlPlane({
      quantix,
      apiToken: API_TOKEN,
      resumeGraceMs: 1000,
      stagingDir: join(work, 'staging'),
    });
  });

  afterAll(async () => {
    await Promise.all(nodes.map((n) => n.connection.close()));
    await cp?.close();
    await quantix?.close();
    await testDb?.dispose();
    await rm(work, { recursive: true, force: true });
  });

  it('refuses requests without the right token, and serves health and OpenAPI without one', async () => {
    expect((await api('GET', '/pools', undefined, null)).status).toBe(401);
    const wrong = await api('GET', '/pools', undefined, 'nope');
    expect(wrong).toMatchObject({ status: 401, body: { error: { code: 'UNAUTHORIZED' } } });
    expect(await api('GET', '/healthz', undefined, null)).toMatchObject({
      status: 200,
      body: { status: 'ok', database: 'pg' },
    });
    const openapi = await api('GET', '/openapi.json', undefined, null);
    expect(openapi.status).toBe(200);
    expect(Object.keys(openapi.body.paths)).toEqual(
      expect.arrayContaining(['/api/v1/pools', '/api/v1/images/available', '/api/v1/vms']),
    );
    // The console: a ticket from the API with the token, then a WebSocket that takes only the ticket.
    const paths = openapi.body.paths;
    expect(paths['/api/v1/vms/{id}/console/tickets'].post).toMatchObject({ operationId: 'createVmConsoleTicket' });
    expect(paths['/api/v1/vms/{id}/console'].get).toMatchObject({
      operationId: 'openVmConsole',
      security: [{ consoleTicket: [] }],
    });
    expect(Object.keys(paths['/api/v1/vms/{id}/console'].get.responses)).toEqual(
      expect.arrayContaining(['401', '404', '409']),
    );
    expect(paths['/api/v1/vms/name-check'].post).toMatchObject({ operationId: 'checkVmName' });
    // A client generated from the document knows which replica holds a node.
    const nodeList = openapi.body.paths['/api/v1/nodes'].get.responses['200'].content['application/json'].schema;
    expect(nodeList.properties.nodes.items.properties.replicaId).toMatchObject({ type: 'string', nullable: true });
    const nodeDetail = openapi.body.paths['/api/v1/nodes/{id}'].get.responses['200'].content['application/json'].schema;
    expect(nodeDetail.properties.replicaId).toMatchObject({ type: 'string', nullable: true });
  });

  it('answers bad input with the stable code and the field concerned', async () => {
    const bad = await api('POST', '/pools', { name: '', type: 'local' });
    expect(bad.status).toBe(400);
    expect(bad.body.error.code).toBe('INVALID_INPUT');
    expect(bad.body.error.message).toMatch(/name/);
    expect((await api('GET', '/pools/does-not-exist')).body.error.code).toBe('NOT_FOUND');
    // A filter misspelled would list everything; it is refused, named, instead.
    const misspelled = await api('GET', '/images?poolid=iso-a&kind=iso');
    expect(misspelled).toMatchObject({ status: 400, body: { error: { code: 'INVALID_INPUT' } } });
    expect(misspelled.body.error.details.issues).toEqual([
      { path: 'querystring.poolid', message: 'is not a field of this request' },
    ]);
    // So is a parameter on a route that takes none: a list of pools has no paging to ask for.
    expect((await api('GET', '/pools?limit=5')).body.error.details.issues).toEqual([
      { path: 'querystring.limit', message: 'is not a field of this request' },
    ]);
    const vm = await api('POST', '/vms', { name: 'bad;name', nodeId: 'n', imageId: 'i' });
    expect(vm).toMatchObject({ status: 400, body: { error: { code: 'INVALID_INPUT' } } });
    // No body at all is an empty one: a body of optional fields need not be sent, and a missing
    // field is named; a JSON null is not a body.
    expect(await api('POST', '/images/rescan')).toMatchObject({ status: 200, body: { scanned: [], failed: [] } });
    const bodiless = await api('POST', '/pools');
    expect(bodiless).toMatchObject({ status: 400, body: { error: { code: 'INVALID_INPUT' } } });
    expect(bodiless.body.error.details.issues).toContainEqual(expect.objectContaining({ path: 'body.name' }));
    expect(await api('POST', '/images/rescan', null)).toMatchObject({
      status: 400,
      body: { error: { code: 'INVALID_INPUT' } },
    });
  });

  it('refuses pools whose roots are not allowed, with POOL_ROOT_NOT_ALLOWED, and stores none of them', async () => {
    const refused = async (type: string, config: Record<string, unknown>) => {
      const answer = await api('POST', '/pools', { name: 'bad', type, config });
      expect(answer.status, JSON.stringify(config)).toBe(400);
      return answer.body.error;
    };
    for (const path of ['/', '/etc', '/etc/ssl', 'isos', '../..', '/srv/../etc', '/srv/isos/', '/tmp/isos', '/var']) {
      const error = await refused('local', { path, create: true });
      expect(error.code).toBe('POOL_ROOT_NOT_ALLOWED');
      expect(error.details).toMatchObject({ path, allowedRoots: ['/var/lib/quantix', '/srv'] });
    }
    expect((await refused('nfs', { server: 'nas', export: '/e', mountPoint: '/root/nfs' })).code).toBe(
      'POOL_ROOT_NOT_ALLOWED',
    );
    expect((await api('GET', '/pools')).body.pools).toEqual([]);
  });

  it('refuses a pool that would share a directory with another pool on a node both are on, with POOL_ROOT_OVERLAPS', async () => {
    const create = (id: string, config: Record<string, unknown>, nodeIds: string[], type = 'local') =>
      api('POST', '/pools', { id, name: id, type, config, nodeIds });
    expect((await create('media', { path: '/srv/media' }, ['hv-a'])).status).toBe(201);
    // The same directory, one inside it, one holding it, an NFS mount point inside it: each would
    // list the other's files, and deleting an image through one would take the other's file.
    for (const [id, config, type] of [
      ['same', { path: '/srv/media' }, 'local'],
      ['inner', { path: '/srv/media/isos' }, 'local'],
      ['outer', { path: '/srv' }, 'local'],
      ['nas', { server: 'nas', export: '/e', mountPoint: '/srv/media/nas' }, 'nfs'],
    ] as const) {
      const refused = await create(id, config, ['hv-a'], type);
      expect(refused.status, id).toBe(409);
      expect(refused.body.error.code).toBe('POOL_ROOT_OVERLAPS');
      expect(refused.body.error.details).toMatchObject({
        path: 'path' in config ? config.path : config.mountPoint,
        nodeId: 'hv-a',
        overlaps: { poolId: 'media', name: 'media', root: '/srv/media' },
      });
      expect(refused.body.error.message).toMatch(/pool media's root \/srv\/media on node hv-a/);
    }
    // /srv/media-2 is beside /srv/media, not inside it; another node's /srv/media is another directory.
    expect((await create('beside', { path: '/srv/media-2' }, ['hv-a'])).status).toBe(201);
    expect((await create('on-b', { path: '/srv/media' }, ['hv-b'])).status).toBe(201);
    // Assigned to the node of the first, it would meet it there: refused, and the stored pool unchanged.
    const assigned = await api('PUT', '/pools/on-b/nodes', { nodeIds: ['hv-a'] });
    expect(assigned).toMatchObject({ status: 409, body: { error: { code: 'POOL_ROOT_OVERLAPS' } } });
    expect((await api('GET', '/pools/on-b')).body.nodeIds).toEqual(['hv-b']);
    // So is a config change that moves a pool into another's directory.
    const moved = await api('PATCH', '/pools/beside', { config: { path: '/srv/media/beside' } });
    expect(moved).toMatchObject({ status: 409, body: { error: { code: 'POOL_ROOT_OVERLAPS' } } });
    expect((await api('GET', '/pools/beside')).body.config).toEqual({ path: '/srv/media-2' });
    // A pool of no node shares nothing yet; a pool changed in name only is not looked at again.
    expect((await create('spare', { path: '/srv/media' }, [])).status).toBe(201);
    expect((await api('PATCH', '/pools/media', { name: 'media files' })).status).toBe(200);
    for (const id of ['media', 'beside', 'on-b', 'spare'])
      expect((await api('DELETE', `/pools/${id}`)).status).toBe(204);
  });

  it('validates each pool type’s config: unknown type, missing or misspelled key → INVALID_INPUT naming the field', async () => {
    const issues = async (body: Record<string, unknown>) => {
      const answer = await api('POST', '/pools', { name: 'p', ...body });
      expect(answer.status).toBe(400);
      expect(answer.body.error.code).toBe('INVALID_INPUT');
      return answer.body.error.details.issues.map((i: { path: string }) => i.path);
    };
    expect(await issues({ type: 'zfs', config: { dataset: 'tank' } })).toEqual(['type']);
    // A field the request does not have is refused, not ignored: `nodeId` for `nodeIds` would
    // otherwise make a pool of no node, silently.
    expect(await issues({ type: 'local', config: { path: '/srv/isos' }, nodeId: 'n1', tags: [] })).toEqual([
      'body.nodeId',
      'body.tags',
    ]);
    expect(await issues({ type: 'local', config: {} })).toEqual(['config.path']);
    expect(await issues({ type: 'local', config: { pth: '/srv/isos' } })).toEqual(['config.path', 'config.pth']);
    expect(await issues({ type: 'nfs', config: { server: 'nas', export: '/e', mountpoint: '/srv/x' } })).toEqual([
      'config.mountpoint',
    ]);
    // An NFS pool without a mount point is mounted at /var/lib/quantix/pools/<id>: allowed.
    const nfs = await api('POST', '/pools', {
      id: 'nas',
      name: 'nas',
      type: 'nfs',
      config: { server: 'nas', export: '/e' },
    });
    expect(nfs.status).toBe(201);
    // A config change is checked like a new pool; the stored one stays as it was.
    const patched = await api('PATCH', '/pools/nas', { config: { server: 'nas', export: '/e', mountPoint: '/etc' } });
    expect(patched).toMatchObject({ status: 400, body: { error: { code: 'POOL_ROOT_NOT_ALLOWED' } } });
    expect((await api('GET', '/pools/nas')).body.config).toEqual({ server: 'nas', export: '/e' });
    expect((await api('DELETE', '/pools/nas')).status).toBe(204);
  });

  it('refuses a NUL byte in a path, a query or a body before the database, and never shows SQL', async () => {
    for (const [method, path, body] of [
      ['GET', '/pools/a%00b', undefined],
      ['GET', '/vms?nodeId=%00', undefined],
      ['GET', '/images/available?nodeId=x%00', undefined],
      ['POST', '/pools', { name: 'nul\u0000pool', type: 'local', config: { path: '/srv/x' } }],
      ['POST', '/nodes', { hostname: 'h', labels: { 'a\u0000': 'b' } }],
    ] as const) {
      const answer = await api(method, path, body);
      expect(answer, `${method} ${path}`).toMatchObject({ status: 400, body: { error: { code: 'INVALID_INPUT' } } });
      expect(answer.body.error.message).toMatch(/NUL/);
      expect(JSON.stringify(answer.body)).not.toMatch(/select|insert into|"nodes"|"vms"/i);
    }
  });

  it('answers errors raised before routing in the same shape as every other error', async () => {
    const tooLong = await api('GET', `/pools/${'x'.repeat(2000)}`);
    expect(tooLong.status).toBe(414);
    expect(tooLong.body.error).toMatchObject({ code: 'INVALID_INPUT', details: {} });
    const badJson = await fetch(`${cp.url}/api/v1/pools`, {
      method: 'POST',
      headers: { authorization: `Bearer ${API_TOKEN}`, 'content-type': 'application/json' },
      body: '{"name":',
    });
    expect(badJson.status).toBe(400);
    expect((await badJson.json()).error.code).toBe('INVALID_INPUT');
    const wrongType = await fetch(`${cp.url}/api/v1/pools`, {
      method: 'POST',
      headers: { authorization: `Bearer ${API_TOKEN}`, 'content-type': 'text/csv' },
      body: 'a,b',
    });
    expect(wrongType.status).toBe(415);
    expect((await wrongType.json()).error.code).toBe('UNSUPPORTED_MEDIA_TYPE');
    // Headers larger than Node's limit are refused by the HTTP parser, before fastify.
    const huge = await fetch(`${cp.url}/api/v1/pools`, { headers: { 'x-filler': 'y'.repeat(32 * 1024) } });
    expect(huge.status).toBe(431);
    expect(await huge.json()).toMatchObject({ error: { code: 'PAYLOAD_TOO_LARGE' } });
  });

  it('lets a registered node connect with its token and no one else', async () => {
    const created = await api('POST', '/nodes', { id: 'hv-a', hostname: 'hv-a' });
    expect(created.status).toBe(201);
    expect(created.body.token).toMatch(/^[A-Za-z0-9_-]{40,}$/);
    const refused = await new Promise<number>((resolve) => {
      const socket = new WebSocket(`${cp.url.replace('http', 'ws')}/api/v1/nodes/connect`, {
        headers: { authorization: 'Bearer wrong-token', 'x-quantix-node-id': 'hv-a' },
      });
      socket.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
      socket.on('open', () => resolve(101));
    });
    expect(refused).toBe(401);
    expect((await api('GET', '/nodes/hv-a')).body).toMatchObject({ connectionState: 'disconnected', connected: false });

    const node = new ScriptedNode(cp.url, 'hv-a', created.body.token);
    nodes.push(node);
    await node.waitFor('welcome');
    const desired = await node.waitFor('pools.desired');
    expect(desired.pools).toEqual([]);
    const listed = await eventually(
      () => api('GET', '/nodes/hv-a'),
      (r) => r.body.connected === true,
      'node connected',
    );
    expect(listed.body).toMatchObject({ connectionState: 'connected', agentVersion: 'test' });
  });

  it("refuses a node socket with the API's error at its URL, and checks the same token under any spelling routed to it", async () => {
    const created = await api('POST', '/nodes', { id: 'hv-spell', hostname: 'hv-spell' });
    const attempt = (path: string, token: string) =>
      new Promise<{ status: number; body: { error?: { code?: string } } | null }>((resolve) => {
        const socket = new WebSocket(`${cp.url.replace('http', 'ws')}${path}`, {
          headers: { authorization: `Bearer ${token}`, 'x-quantix-node-id': 'hv-spell' },
        });
        socket.on('unexpected-response', (_req, res) => {
          let text = '';
          res.on('data', (chunk: Buffer) => {
            text += chunk;
          });
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) }));
        });
        socket.on('open', () => {
          socket.close();
          resolve({ status: 101, body: null });
        });
        socket.on('error', () => undefined);
      });
    // Its own URL, and another spelling the router takes to the same route.
    for (const path of ['/api/v1/nodes/connect', '/api/v1/nodes/%63onnect']) {
      const refused = await attempt(path, 'wrong-token');
      expect(refused, path).toEqual({
        status: 401,
        body: { error: { code: 'UNAUTHORIZED', message: 'Unknown node or wrong node token', details: {} } },
      });
      expect((await attempt(path, created.body.token)).status, path).toBe(101);
    }
  });

  it('takes node sockets reset while their token is checked without harm: no link, the server answers on', async () => {
    const created = await api('POST', '/nodes', { id: 'hv-reset', hostname: 'hv-reset' });
    const { port } = new URL(cp.url);
    const upgrade = [
      'GET /api/v1/nodes/connect HTTP/1.1',
      'Host: 127.0.0.1',
      'Connection: Upgrade',
      'Upgrade: websocket',
      'Sec-WebSocket-Version: 13',
      `Authorization: Bearer ${created.body.token}`,
      'X-Quantix-Node-Id: hv-reset',
    ];
    // The token check held up by a lock on the nodes table, so a reset 50 ms after its request lands
    // while the check waits (on a machine too busy to read the request by then, the HTTP server
    // takes the reset instead, harmless too). Node drops its own socket error listener before 'upgrade'.
    const trx = await quantix.database.knex.transaction();
    try {
      await trx.raw('lock table nodes in access exclusive mode');
      for (let i = 0; i < 5; i++) {
        const socket = connect(Number(port), '127.0.0.1');
        await once(socket, 'connect');
        socket.write(
          `${[...upgrade, `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}`].join('\r\n')}\r\n\r\n`,
        );
        await new Promise((resolve) => setTimeout(resolve, 50));
        socket.resetAndDestroy();
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    } finally {
      await trx.commit();
    }
    expect((await fetch(`${cp.url}/healthz`)).status).toBe(200);
    expect((await api('GET', '/nodes/hv-reset')).body).toMatchObject({ connected: false });
  });

  it('pushes a new pool set on every pool change and stores what the node reports', async () => {
    const node = nodes[0] as ScriptedNode;
    const before = (await node.waitFor('pools.desired')).generation;
    const pool = await api('POST', '/pools', {
      id: 'iso-a',
      name: 'ISOs on A',
      type: 'local',
      config: { path: '/srv/iso' },
      contentTypes: ['iso', 'images'],
      nodeIds: ['hv-a'],
    });
    expect(pool.status).toBe(201);
    const pushed = await node.waitFor('pools.desired', (m) => m.generation > before && m.pools.length === 1);
    expect(pushed.pools[0]).toMatchObject({ id: 'iso-a', type: 'local', config: { path: '/srv/iso' } });

    node.connection.send({
      v: PROTOCOL_VERSION,
      type: 'pools.state',
      generation: pushed.generation,
      pools: [
        {
          poolId: 'iso-a',
          status: 'active',
          mountPath: '/srv/iso',
          capacityBytes: 1e12,
          availableBytes: 4e11,
          reason: null,
        },
      ],
    });
    const stored = await eventually(
      () => api('GET', '/pools/iso-a'),
      (r) => r.body.nodeStates.length === 1,
      'pool state',
    );
    expect(stored.body.nodeStates[0]).toMatchObject({
      nodeId: 'hv-a',
      status: 'active',
      syncedGeneration: pushed.generation,
    });

    node.connection.send({
      v: PROTOCOL_VERSION,
      type: 'scan.result',
      poolId: 'iso-a',
      content: 'iso',
      files: [
        {
          relPath: 'debian-12.iso',
          kind: 'iso',
          format: 'iso',
          sizeBytes: 1000,
          modifiedAt: new Date().toISOString(),
          os: { family: 'linux', distribution: 'debian', version: '12' },
        },
      ],
    });
    const images = await eventually(
      () => api('GET', '/images?kind=iso&nodeId=hv-a'),
      (r) => r.body.total === 1,
      'scanned ISO',
    );
    expect(images.body.images[0]).toMatchObject({
      name: 'debian-12.iso',
      phase: 'ready',
      path: '/srv/iso/debian-12.iso',
      os: { distribution: 'debian' },
    });

    const available = await api('GET', '/images/available?nodeId=hv-a');
    expect(available.body.images.map((i: { name: string; status: string }) => [i.name, i.status])).toEqual([
      ['debian-12.iso', 'ready'],
      ['Tiny cloud image', 'not-downloaded'],
    ]);
  });

  it('renames a pool without touching its config', async () => {
    const before = (await api('GET', '/pools/iso-a')).body;
    const renamed = await api('PATCH', '/pools/iso-a', { name: 'ISOs on A, renamed' });
    expect(renamed).toMatchObject({ status: 200, body: { name: 'ISOs on A, renamed', config: before.config } });
    expect((await api('PATCH', '/pools/iso-a', { name: before.name })).status).toBe(200);
  });

  it('refuses a VM from an image that is not ready, naming why', async () => {
    const pending = await quantix.repositories.images.create({
      name: 'half',
      kind: 'cloud',
      location: { poolId: 'iso-a', relPath: 'cloud/half.qcow2' },
    });
    const refused = await api('POST', '/vms', { name: 'vm-1', nodeId: 'hv-a', imageId: pending.id });
    expect(refused).toMatchObject({ status: 409, body: { error: { code: 'IMAGE_NOT_READY' } } });
    const missing = await api('POST', '/vms', { name: 'vm-1', nodeId: 'hv-a', imageId: 'no-such-image' });
    expect(missing).toMatchObject({ status: 404, body: { error: { code: 'IMAGE_NOT_FOUND' } } });
    expect((await api('GET', '/vms')).body.vms).toEqual([]);
  });

  it('refuses to delete an image a VM uses — boot, backing file, cdrom, or one of its own files — with 409 IN_USE naming the VMs', async () => {
    const { images, vms } = quantix.repositories;
    const base = await images.create({ name: 'base cloud image', kind: 'cloud' });
    const attached = await images.create({ name: 'attached.iso', kind: 'iso' });
    // A row made from a VM's seed before scans skipped vms/ (its user data and keys are in it).
    const seed = await images.create({
      name: 'seed.iso',
      kind: 'iso',
      location: { poolId: 'iso-a', relPath: 'vms/web/seed.iso' },
    });
    const web = await vms.create({
      name: 'web',
      nodeId: 'hv-a',
      disks: [{ imageId: base.id, poolId: 'iso-a', relPath: 'vms/web/disk.qcow2', sizeGiB: 1 }],
    });
    const installer = await vms.create({
      name: 'installer',
      nodeId: 'hv-a',
      cdroms: [{ imageId: attached.id, poolId: 'iso-a', relPath: 'attached.iso' }],
    });
    for (const [image, vm] of [
      [base, 'web'],
      [attached, 'installer'],
      [seed, 'web'],
    ] as const) {
      const refused = await api('DELETE', `/images/${image.id}`);
      expect(refused).toMatchObject({ status: 409, body: { error: { code: 'IN_USE' } } });
      expect(refused.body.error.message).toContain(vm);
      expect(refused.body.error.details.vms).toEqual([expect.objectContaining({ name: vm })]);
      expect((await api('GET', `/images/${image.id}`)).status).toBe(200);
    }
    await vms.delete(web.id);
    await vms.delete(installer.id);
    expect((await api('DELETE', `/images/${base.id}`)).status).toBe(204);
    expect((await api('DELETE', `/images/${attached.id}`)).status).toBe(204);
    await images.delete(seed.id);
  });

  it('refuses to delete a pool that holds images or a node that has VMs, with 409 IN_USE naming them', async () => {
    const { images, pools, vms, nodes } = quantix.repositories;
    const shelf = await pools.create({ name: 'shelf', type: 'local', config: { path: '/srv/shelf' } });
    const held = [];
    for (let i = 1; i <= 7; i++) {
      held.push(
        await images.create({
          name: `disk-${i}.iso`,
          kind: 'iso',
          location: { poolId: shelf.id, relPath: `disk-${i}.iso` },
        }),
      );
    }
    const poolRefused = await api('DELETE', `/pools/${shelf.id}`);
    expect(poolRefused).toMatchObject({ status: 409, body: { error: { code: 'IN_USE', details: { images: 7 } } } });
    expect(poolRefused.body.error.message).toMatch(
      /^Pool shelf holds 7 image\(s\): (disk-\d\.iso, ){4}disk-\d\.iso and 2 more; delete them first \(a delete with keepFile forgets an image and leaves its file\)$/,
    );
    for (const image of held) await images.delete(image.id);
    expect((await api('DELETE', `/pools/${shelf.id}`)).status).toBe(204);

    await nodes.create({ id: 'hv-busy', hostname: 'busy.example' });
    const vm = await vms.create({ name: 'busy-vm', nodeId: 'hv-busy' });
    const nodeRefused = await api('DELETE', '/nodes/hv-busy');
    expect(nodeRefused).toMatchObject({
      status: 409,
      body: {
        error: {
          code: 'IN_USE',
          message: 'Node busy.example has 1 VM(s): busy-vm; delete them first',
          details: { vms: [{ id: vm.id, name: 'busy-vm' }] },
        },
      },
    });
    await vms.delete(vm.id);
    expect((await api('DELETE', '/nodes/hv-busy')).status).toBe(204);
    expect(await nodes.get('hv-busy')).toBeUndefined();
  });

  it('refuses to take a pool off a node, or move it, while VMs there keep disks or ISOs in it (409 IN_USE naming them)', async () => {
    const { pools, vms, nodes } = quantix.repositories;
    await nodes.create({ id: 'hv-keep', hostname: 'keep.example' });
    await nodes.create({ id: 'hv-spare', hostname: 'spare.example' });
    // Shared (one directory every node sees, as an NFS export would be), so on two nodes.
    const keep = await pools.create({
      name: 'keep',
      type: 'local',
      config: { path: '/srv/keep' },
      shared: true,
      nodeIds: ['hv-keep', 'hv-spare'],
    });
    const disk = await vms.create({
      name: 'kept-disk',
      nodeId: 'hv-keep',
      disks: [{ imageId: null, poolId: keep.id, relPath: 'vms/kept-disk/disk.qcow2', sizeGiB: 1 }],
    });
    const iso = await vms.create({
      name: 'kept-iso',
      nodeId: 'hv-keep',
      cdroms: [{ imageId: null, poolId: keep.id, relPath: 'rescue.iso' }],
    });
    const offTheNode = await api('PUT', `/pools/${keep.id}/nodes`, { nodeIds: ['hv-spare'] });
    expect(offTheNode).toMatchObject({ status: 409, body: { error: { code: 'IN_USE' } } });
    expect(offTheNode.body.error.message).toMatch(
      /^Pool keep holds disks or ISOs of 2 VM\(s\): kept-(disk|iso), kept-(disk|iso); it cannot leave their node\(s\) — delete those VMs \(or eject their ISO\) first$/,
    );
    expect(offTheNode.body.error.details.vms).toEqual(
      expect.arrayContaining([
        { id: disk.id, name: 'kept-disk' },
        { id: iso.id, name: 'kept-iso' },
      ]),
    );
    const moved = await api('PATCH', `/pools/${keep.id}`, { config: { path: '/srv/kept-elsewhere' } });
    expect(moved).toMatchObject({ status: 409, body: { error: { code: 'IN_USE' } } });
    expect(moved.body.error.message).toContain('its place cannot change under them');
    expect((await pools.require(keep.id)).config).toEqual({ path: '/srv/keep' });

    // Off a node none of them is on, renamed, its own config given again: as before.
    expect((await api('PUT', `/pools/${keep.id}/nodes`, { nodeIds: ['hv-keep'] })).status).toBe(200);
    expect((await api('PATCH', `/pools/${keep.id}`, { name: 'kept', config: { path: '/srv/keep' } })).status).toBe(200);
    // With the disks' VM gone and the ISO ejected: it may go.
    await vms.delete(disk.id);
    await vms.update(iso.id, { cdroms: [] });
    expect((await api('PUT', `/pools/${keep.id}/nodes`, { nodeIds: [] })).status).toBe(200);
    await vms.delete(iso.id);
    await pools.delete(keep.id);
    await nodes.delete('hv-keep');
    await nodes.delete('hv-spare');
  });

  it('refuses a VM its node cannot run, or with a user name no system takes, before writing anything', async () => {
    const created = await api('POST', '/nodes', { id: 'hv-small', hostname: 'hv-small' });
    const small = new ScriptedNode(cp.url, 'hv-small', created.body.token, () => {}, {
      vms: true,
      host: { cpus: 2, memoryMiB: 4096 },
    });
    nodes.push(small);
    await small.waitFor('welcome');
    const body = { name: 'too-big', nodeId: 'hv-small', imageId: 'any-image' };
    const tooMuchMemory = await api('POST', '/vms', { ...body, memoryMiB: 1024 * 1024 });
    expect(tooMuchMemory).toMatchObject({
      status: 422,
      body: { error: { code: 'INSUFFICIENT_CAPACITY', details: { host: { memoryMiB: 4096 } } } },
    });
    const tooManyCpus = await api('POST', '/vms', { ...body, cpu: 16 });
    expect(tooManyCpus).toMatchObject({ status: 422, body: { error: { code: 'INSUFFICIENT_CAPACITY' } } });
    const badUser = await api('POST', '/vms', { ...body, user: 'Ada Lovelace' });
    expect(badUser).toMatchObject({ status: 400, body: { error: { code: 'INVALID_INPUT' } } });
    expect(badUser.body.error.message).toMatch(/user/);

    const noVms = await api('POST', '/nodes', { id: 'hv-novm', hostname: 'hv-novm' });
    const storageOnly = new ScriptedNode(cp.url, 'hv-novm', noVms.body.token, () => {}, {
      vms: false,
      hypervisorProblem: 'VMs are turned off for this node',
    });
    nodes.push(storageOnly);
    await storageOnly.waitFor('welcome');
    const refused = await api('POST', '/vms', { ...body, nodeId: 'hv-novm' });
    expect(refused).toMatchObject({ status: 409, body: { error: { code: 'UNSUPPORTED_OPERATION' } } });
    expect(refused.body.error.message).toMatch(/turned off/);
    // Nothing was recorded: the name is still free.
    expect((await api('GET', '/vms')).body.vms).toEqual([]);
  });

  it('runs a download on the node and records progress, verification and the result', async () => {
    const node = nodes[0] as ScriptedNode;
    node.received.length = 0;
    const started = await api('POST', '/images/download', { catalogId: 'tiny-cloud', poolId: 'iso-a' });
    expect(started).toMatchObject({
      status: 202,
      body: { catalogId: 'tiny-cloud', location: { relPath: 'images/tiny-cloud.qcow2' } },
    });
    const downloadRequest = await node.waitFor('request', (m) => m.request.op === 'image.download');
    const imageId = started.body.id as string;
    node.connection.send({
      v: 1,
      type: 'image.progress',
      imageId,
      bytesDone: 512,
      bytesTotal: 1024,
      bytesPerSecond: 1000,
      etaSeconds: 1,
    });
    const halfway = await eventually(
      () => api('GET', `/images/${imageId}`),
      (r) => r.body.progress?.bytesDone === 512,
      'progress',
    );
    expect(halfway.body).toMatchObject({ phase: 'downloading', progress: { percent: 50 } });
    node.connection.send({
      v: 1,
      type: 'response',
      requestId: downloadRequest.requestId,
      result: {
        sizeBytes: 1024,
        checksum: { algorithm: 'sha256', value: 'a'.repeat(64) },
        format: 'qcow2',
        virtualSizeBytes: 1 << 30,
      },
    });
    const ready = await eventually(
      () => api('GET', `/images/${imageId}?nodeId=hv-a`),
      (r) => r.body.phase === 'ready',
      'ready',
    );
    expect(ready.body).toMatchObject({
      sizeBytes: 1024,
      virtualSizeBytes: 1 << 30,
      // One rule for every download, on a node or in process: a ready image's progress is complete.
      progress: { bytesDone: 1024, bytesTotal: 1024, percent: 100 },
      path: '/srv/iso/images/tiny-cloud.qcow2',
    });
  });

  it('marks a download error and retryable when its node is lost and does not come back', async () => {
    const created = await api('POST', '/nodes', { id: 'hv-b', hostname: 'hv-b' });
    const node = new ScriptedNode(cp.url, 'hv-b', created.body.token);
    await node.waitFor('welcome');
    await api('POST', '/pools', {
      id: 'images-b',
      name: 'images on B',
      type: 'local',
      config: { path: '/var/lib/quantix/images-b' },
      nodeIds: ['hv-b'],
    });
    const pushed = await node.waitFor('pools.desired', (m) => m.pools.length === 1);
    node.connection.send({
      v: 1,
      type: 'pools.state',
      generation: pushed.generation,
      pools: [
        {
          poolId: 'images-b',
          status: 'active',
          mountPath: '/var/lib/b',
          capacityBytes: null,
          availableBytes: null,
          reason: null,
        },
      ],
    });
    await eventually(
      () => api('GET', '/pools/images-b'),
      (r) => r.body.nodeStates.length === 1,
      'state',
    );
    const started = await api('POST', '/images/download', { catalogId: 'tiny-cloud', poolId: 'images-b' });
    await node.waitFor('request', (m) => m.request.op === 'image.download');
    await node.connection.close();
    const failed = await eventually(
      () => api('GET', `/images/${started.body.id}`),
      (r) => r.body.phase === 'error',
      'error after grace',
    );
    expect(failed.body.error).toMatchObject({ code: 'DOWNLOAD_INTERRUPTED', retryable: true });
  });

  it('stages an ISO upload that the node fetches (with a ranged resume); a cut-off upload leaves nothing', async () => {
    const node = nodes[0] as ScriptedNode;
    node.received.length = 0;
    const stopAnswering = answerFileStats(node);
    onTestFinished(stopAnswering);
    // A real ISO, mastered by xorriso with the volume id of Debian's netinst media.
    const content = join(work, 'iso-content');
    await mkdir(content, { recursive: true });
    await writeFile(join(content, 'README.TXT'), 'Debian\n');
    await writeFile(join(content, 'PAD.BIN'), Buffer.alloc(256 * 1024, 7));
    await exec('xorriso', [
      '-as',
      'mkisofs',
      '-quiet',
      '-V',
      'Debian 12.7.0 amd64 n',
      '-J',
      '-R',
      '-o',
      join(work, 'debian.iso'),
      content,
    ]);
    const iso = await readFile(join(work, 'debian.iso'));
    const uploaded = await fetch(
      `${cp.url}/api/v1/images/upload?poolId=iso-a&name=${encodeURIComponent('my install.iso')}`,
      {
        method: 'POST',
        headers: { authorization: `Bearer ${API_TOKEN}`, 'content-type': 'application/octet-stream' },
        body: iso,
      },
    );
    expect(uploaded.status).toBe(201);
    const image = (await uploaded.json()) as { id: string; checksum: { value: string }; os: unknown; labels: unknown };
    expect(image).toMatchObject({
      name: 'my install.iso',
      kind: 'iso',
      sizeBytes: iso.length,
      location: { poolId: 'iso-a', relPath: 'iso/my install.iso' },
    });
    expect(image.checksum.value).toBe(createHash('sha256').update(iso).digest('hex'));
    // Identified at once from what the ISO says, as a scan would, not left unknown until a rescan.
    expect(image).toMatchObject({
      os: { family: 'linux', distribution: 'debian' },
      labels: { 'iso.quantix.io/volume-id': 'Debian 12.7.0 amd64 n', 'quantix.io/source': 'upload' },
    });

    // The node fetches the staged bytes from the control plane: first half, then the rest by Range.
    const request = await node.waitFor('request', (m) => m.request.op === 'image.download');
    const source = (request.request as { sourceUrl: string }).sourceUrl;
    const head = Buffer.from(await (await fetch(source, { headers: { range: 'bytes=0-131071' } })).arrayBuffer());
    const tailResponse = await fetch(source, { headers: { range: 'bytes=131072-' } });
    expect(tailResponse.status).toBe(206);
    const whole = Buffer.concat([head, Buffer.from(await tailResponse.arrayBuffer())]);
    expect(whole.equals(iso)).toBe(true);
    expect((await fetch(source.replace(/token=[^&]+/, 'token=wrong'))).status).toBe(404);
    node.connection.send({
      v: 1,
      type: 'response',
      requestId: request.requestId,
      result: { sizeBytes: iso.length, os: { family: 'linux', distribution: 'debian' } },
    });
    const ready = await eventually(
      () => api('GET', `/images/${image.id}`),
      (r) => r.body.phase === 'ready',
      'upload ready',
    );
    expect(ready.body.os).toMatchObject({ family: 'linux', distribution: 'debian' });
    expect((await fetch(source)).status).toBe(404); // staged copy gone

    // An upload that announces more bytes than it sends: refused, no row, nothing staged.
    const before = (await api('GET', '/images?kind=iso')).body.total;
    const cut = await fetch(`${cp.url}/api/v1/images/upload?poolId=iso-a&name=cut.iso`, {
      method: 'POST',
      headers: { authorization: `Bearer ${API_TOKEN}`, 'content-type': 'application/octet-stream' },
      body: new ReadableStream({
        start(controller) {
          controller.enqueue(new Uint8Array(1000));
          controller.error(new Error('client gave up'));
        },
      }),
      duplex: 'half',
    } as RequestInit).catch((error: Error) => error);
    expect(cut instanceof Error || (cut as Response).status >= 400).toBe(true);
    await new Promise((r) => setTimeout(r, 200));
    expect((await api('GET', '/images?kind=iso')).body.total).toBe(before);
    expect((await api('POST', '/images/upload?poolId=iso-a&name=..%2Fescape.iso')).body.error?.code).toBe(
      'INVALID_INPUT',
    );

    // The uploader's own SHA-256 (?sha256=) that the bytes do not have: 422, nothing kept. (A right
    // one is taken: packages/control-plane's uploads test.)
    const upload = (name: string, sha256: string) =>
      fetch(`${cp.url}/api/v1/images/upload?poolId=iso-a&name=${name}&sha256=${sha256}`, {
        method: 'POST',
        headers: { authorization: `Bearer ${API_TOKEN}`, 'content-type': 'application/octet-stream' },
        body: iso,
      });
    const wrong = await upload('wrong-sum.iso', 'ab'.repeat(32));
    expect(wrong.status).toBe(422);
    expect(((await wrong.json()) as { error: { code: string } }).error.code).toBe('CHECKSUM_MISMATCH');
    expect((await upload('bad-sum.iso', 'xyz')).status).toBe(400);
    expect((await api('GET', '/images?kind=iso')).body.total).toBe(before);
  });

  it('refuses an upload that is not an ISO (a 19-byte text file named .iso) with 422, keeping no row and no file', async () => {
    onTestFinished(answerFileStats(nodes[0] as ScriptedNode));
    const before = (await api('GET', '/images?kind=iso')).body.total;
    const staged = await readdir(join(work, 'staging'));
    for (const [name, body] of [
      ['notes.iso', Buffer.from('just some text, 19b')],
      ['disk.iso', Buffer.alloc(64 * 1024)],
    ] as const) {
      const answer = await fetch(`${cp.url}/api/v1/images/upload?poolId=iso-a&name=${name}`, {
        method: 'POST',
        headers: { authorization: `Bearer ${API_TOKEN}`, 'content-type': 'application/octet-stream' },
        body,
      });
      expect(answer.status).toBe(422);
      const { error } = (await answer.json()) as { error: { code: string } };
      expect(error.code).toMatch(/^ISO_(NOT_ISO9660|TRUNCATED|MALFORMED)$/);
    }
    expect((await api('GET', '/images?kind=iso')).body.total).toBe(before);
    // Nothing new staged (an earlier upload's copy may still be on its way out).
    expect((await readdir(join(work, 'staging'))).filter((f) => !staged.includes(f))).toEqual([]);
  });
});
