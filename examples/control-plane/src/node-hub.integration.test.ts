/**
 * The node hub under a node that misbehaves, races or floods: the real control plane (fastify,
 * @fastify/websocket, the hub) on a real PostgreSQL database, spoken to over real WebSockets.
 *
 * The nodes here are raw `ws` clients that speak the protocol frame by frame — a stand-in for
 * the node daemon, on purpose: only a raw socket can send two hellos at once, a frame after
 * its hello in the same TCP segment, or 2,000 reports in one write. The real daemon and agent
 * run in the end-to-end suite (test/node-links.e2e.test.ts).
 */

import { NodeHub, webSocketChannel } from '@quantix/control-plane';
import {
  type ControlMessage,
  createQuantix,
  definePlugin,
  desiredPoolsFingerprint,
  ImageCatalogToken,
  NODE_CLOSE_CODES,
  type NodeRequest,
  PROTOCOL_LIMITS,
  PROTOCOL_VERSION,
  PROTOCOL_VERSIONS,
  type Quantix,
} from '@quantix/core';
import { createTestDatabase, errorCodeOf, type TestDatabase } from '@quantix/core/testing';
import { createStorageLocalPlugin } from '@quantix/storage-local';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket, { WebSocketServer } from 'ws';
import { apiCaller } from '../test/harness.js';
import { tinyCatalog } from './__fixtures__/tiny-catalog.js';
import { type ControlPlane, startControlPlane } from './control-plane.js';

const API_TOKEN = 'hub-test-token';
const silent = pino({ level: 'silent' });
const CHECKSUM = { algorithm: 'sha256' as const, value: 'c'.repeat(64) };

async function until<T>(probe: () => Promise<T> | T, ok: (value: T) => boolean, what: string, timeoutMs = 15_000) {
  const deadline = Date.now() + timeoutMs;
  let last = await probe();
  while (!ok(last)) {
    if (Date.now() > deadline)
      throw new Error(`timed out waiting for ${what}; last seen: ${JSON.stringify(last) ?? 'nothing'}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
    last = await probe();
  }
  return last;
}

/** A node speaking the protocol frame by frame over a real WebSocket. */
class RawNode {
  readonly socket: WebSocket;
  readonly received: ControlMessage[] = [];
  closeCode: number | null = null;
  readonly opened: Promise<void>;
  readonly closed: Promise<number>;
  /** When set, every request is answered with what it returns (undefined: left unanswered). */
  answer: ((request: NodeRequest) => unknown) | undefined;
  /**
   * A pool.scan `answer` leaves unanswered is answered as a node whose pools are empty answers it,
   * unless this is false: an unanswered scan holds one of the control plane's few scan workers
   * (shared with later tests) until it times out.
   */
  answerScans = true;

  constructor(
    url: string,
    readonly nodeId: string,
    token: string,
  ) {
    this.socket = new WebSocket(`${url.replace(/^http/, 'ws')}/api/v1/nodes/connect`, {
      headers: { authorization: `Bearer ${token}`, 'x-quantix-node-id': nodeId },
    });
    this.socket.on('error', () => {});
    this.opened = new Promise((resolve, reject) => {
      this.socket.once('open', () => resolve());
      this.socket.once('unexpected-response', (_req, res) => reject(new Error(`upgrade refused: ${res.statusCode}`)));
    });
    this.closed = new Promise((resolve) =>
      this.socket.on('close', (code) => {
        this.closeCode = code;
        resolve(code);
      }),
    );
    this.socket.on('message', (data) => {
      const message = JSON.parse(data.toString()) as ControlMessage;
      this.received.push(message);
      if (message.type !== 'request') return;
      const { request } = message;
      let result = this.answer?.(request);
      if (result === undefined && this.answerScans && request.op === 'pool.scan') {
        result = { poolId: request.poolId, content: request.content, files: 0, skipped: [] };
      }
      if (result !== undefined) this.send({ v: 1, type: 'response', requestId: message.requestId, result });
    });
  }

  get open(): boolean {
    return this.socket.readyState === WebSocket.OPEN;
  }

  send(message: object | string): void {
    this.socket.send(typeof message === 'string' ? message : JSON.stringify(message));
  }

  hello(): void {
    this.send({ v: PROTOCOL_VERSION, type: 'hello', nodeId: this.nodeId, hostname: this.nodeId, agentVersion: 'test' });
  }

  /** Sends the frames in one write, so that they reach the control plane in one TCP segment. */
  sendTogether(messages: (object | string)[]): void {
    const raw = (this.socket as unknown as { _socket: import('node:net').Socket })._socket;
    raw.cork();
    for (const message of messages) this.send(message);
    process.nextTick(() => raw.uncork());
  }

  /** A WebSocket ping answered: everything the control plane sent before the pong has arrived. */
  roundTrip(): Promise<void> {
    return new Promise((resolve) => {
      this.socket.once('pong', () => resolve());
      this.socket.ping();
    });
  }

  async waitFor<T extends ControlMessage['type']>(
    type: T,
    predicate: (m: Extract<ControlMessage, { type: T }>) => boolean = () => true,
  ): Promise<Extract<ControlMessage, { type: T }>> {
    const found = await until(
      () => this.received.find((m) => m.type === type && predicate(m as Extract<ControlMessage, { type: T }>)),
      (m) => m !== undefined,
      `a ${type} message for ${this.nodeId}`,
    );
    return found as Extract<ControlMessage, { type: T }>;
  }
}

const report = (poolId: string, status = 'active', mountPath: string | null = `/srv/${poolId}`, reason = null) => ({
  poolId,
  status,
  mountPath,
  capacityBytes: 1000,
  availableBytes: 500,
  reason,
});

describe('node hub: link states, limits and backpressure (PostgreSQL, real WebSockets)', () => {
  let testDb: TestDatabase;
  let quantix: Quantix;
  let cp: ControlPlane;
  const sockets: RawNode[] = [];

  const api = apiCaller(() => cp.url, API_TOKEN, { timeoutMs: 10_000 });
  const tokens = new Map<string, string>();
  const addNode = async (id: string, pools: string[] = [], contentTypes = ['images']) => {
    const created = await api('POST', '/nodes', { id, hostname: id });
    expect(created.status).toBe(201);
    tokens.set(id, created.body.token);
    for (const pool of pools) {
      await quantix.repositories.pools.create({
        id: pool,
        name: pool,
        type: 'local',
        config: { path: `/srv/${pool}` },
        contentTypes: contentTypes as ('iso' | 'images')[],
        nodeIds: [id],
      });
    }
  };
  const connect = async (nodeId: string, url = cp.url) => {
    const node = new RawNode(url, nodeId, tokens.get(nodeId) as string);
    sockets.push(node);
    await node.opened;
    return node;
  };
  /**
   * Connected, welcomed, pools pushed and reported active; requests answered by `answer` from the
   * start. The hello offers `protocol` (default: this release's version alone).
   */
  const welcomed = async (nodeId: string, answer?: RawNode['answer'], protocol?: { min: number; max: number }) => {
    const node = await connect(nodeId);
    node.answer = answer;
    if (protocol) {
      node.send({ v: protocol.max, type: 'hello', nodeId, hostname: nodeId, agentVersion: 'test', protocol });
    } else node.hello();
    const desired = await node.waitFor('pools.desired');
    node.send({
      v: 1,
      type: 'pools.state',
      generation: desired.generation,
      pools: desired.pools.map((p) => report(p.id)),
    });
    await until(
      () => quantix.repositories.pools.listNodeStates({ nodeId }),
      (states) => states.length === desired.pools.length && states.every((s) => s.status === 'active'),
      `${nodeId}'s pools to be active`,
    );
    return node;
  };
  const nodeRow = (id: string) => quantix.repositories.nodes.require(id);
  const stateOf = async (poolId: string, nodeId: string) =>
    (await quantix.repositories.pools.getNodeState(poolId, nodeId))?.status;

  beforeAll(async () => {
    testDb = await createTestDatabase('pg');
    const catalogPlugin = definePlugin({
      name: 'hub-test-catalog',
      apiVersion: 1,
      register: (ctx) => ctx.provide(ImageCatalogToken, { value: tinyCatalog }),
    });
    // The local pool type (its config schema and roots), without a backend, as `quantix serve` has it.
    const poolTypes = createStorageLocalPlugin({ backend: false });
    quantix = await createQuantix({ database: testDb.config, plugins: [catalogPlugin, poolTypes], logger: silent });
    // No health sweep: the hubs some tests start beside this one record their nodes connected
    // without a replica lease, which the sweep would take for a dead replica's and record
    // disconnected, pool states unknown, in the middle of the test.
    cp = await startControlPlane({ quantix, apiToken: API_TOKEN, resumeGraceMs: 60_000, sweepSeconds: 3_600 });
  });

  afterAll(async () => {
    for (const node of sockets) node.socket.terminate();
    await cp?.close();
    await quantix?.close();
    await testDb?.dispose();
  });

  it('probes: a wrong token, a first message not hello, malformed JSON, an unknown type, another version, a frame over 1 MiB — the hub answers or closes, and stays up', async () => {
    await addNode('probe-2');
    await expect(new RawNode(cp.url, 'probe-2', 'wrong-token').opened).rejects.toThrow('401');
    const notHello = await connect('probe-2');
    notHello.send({
      v: 1,
      type: 'image.progress',
      imageId: 'i',
      bytesDone: 1,
      bytesTotal: 2,
      bytesPerSecond: null,
      etaSeconds: null,
    });
    expect(await notHello.closed).toBe(NODE_CLOSE_CODES.helloRequired);
    const impostor = await connect('probe-2');
    impostor.send({ v: 1, type: 'hello', nodeId: 'someone-else', hostname: 'x', agentVersion: 'test' });
    expect(await impostor.closed).toBe(NODE_CLOSE_CODES.helloRequired);

    const node = await connect('probe-2');
    node.hello();
    await node.waitFor('welcome', (m) => m.maxMessageBytes === PROTOCOL_LIMITS.maxNodeMessageBytes);
    node.send('{this is not json');
    node.send({ v: 1, type: 'explode', now: true });
    const errors = await until(
      () => node.received.filter((m) => m.type === 'error'),
      (e) => e.length === 2,
      'two error replies',
    );
    expect(errors.map((e) => (e.type === 'error' ? e.error.code : null))).toEqual([
      'PROTOCOL_INVALID_MESSAGE',
      'PROTOCOL_INVALID_MESSAGE',
    ]);
    expect(node.open).toBe(true);
    expect(cp.hub.isConnected('probe-2')).toBe(true);

    node.send('x'.repeat(PROTOCOL_LIMITS.maxNodeMessageBytes + 1));
    expect(await node.closed).toBe(1009);
    const again = await connect('probe-2');
    // A hello in a version this control plane does not speak (and no range offered).
    again.send({ v: 99, type: 'hello', nodeId: 'probe-2', hostname: 'probe-2', agentVersion: 'test' });
    expect(await again.closed).toBe(NODE_CLOSE_CODES.protocolVersion);
    expect((await api('GET', '/healthz')).status).toBe(200);
  });

  it('refuses a pool state whose reason is over 1 KiB, or whose generation was never pushed: nothing of it is stored', async () => {
    await addNode('probe-3', ['probe-3-pool']);
    const node = await welcomed('probe-3');
    const { generation } = await node.waitFor('pools.desired');
    const before = (await quantix.repositories.pools.getNodeState('probe-3-pool', 'probe-3'))?.updatedAt;
    node.send({
      v: 1,
      type: 'pools.state',
      generation,
      pools: [{ ...report('probe-3-pool', 'error'), reason: 'r'.repeat(60 * 1024) }],
    });
    node.send({ v: 1, type: 'pools.state', generation: generation + 1000, pools: [report('probe-3-pool', 'error')] });
    const errors = await until(
      () => node.received.filter((m) => m.type === 'error'),
      (e) => e.length === 2,
      'both reports refused',
    );
    expect(errors.map((e) => (e.type === 'error' ? e.error.message : ''))).toEqual([
      expect.stringContaining('reason'),
      expect.stringContaining('newer than the current'),
    ]);
    const state = await quantix.repositories.pools.getNodeState('probe-3-pool', 'probe-3');
    expect(state).toMatchObject({ status: 'active', lastError: null });
    expect(state?.updatedAt).toEqual(before);
    expect(node.open).toBe(true);
  });

  it('two sockets of one node racing: exactly one live link, which gets the requests; the others are closed', async () => {
    await addNode('race-1');
    const first = await welcomed('race-1');
    const [b, c] = await Promise.all([connect('race-1'), connect('race-1')]);
    b.hello();
    c.hello();
    const all = [first, b, c];
    await until(
      () => all.filter((s) => s.open).length,
      (open) => open === 1 && cp.hub.isConnected('race-1'),
      'one socket left open',
    );
    const live = all.find((s) => s.open) as RawNode;
    expect(live).not.toBe(first);
    await live.waitFor('welcome');
    for (const other of all.filter((s) => s !== live)) expect(await other.closed).toBe(NODE_CLOSE_CODES.replaced);
    live.answer = (request) => (request.op === 'file.stat' ? { exists: true, sizeBytes: 7 } : undefined);
    await expect(
      cp.hub.request('race-1', { op: 'file.stat', poolId: 'p', relPath: 'x' }, { timeoutMs: 5000 }),
    ).resolves.toEqual({ exists: true, sizeBytes: 7 });
    expect(cp.hub.connectedNodeIds().filter((id) => id === 'race-1')).toHaveLength(1);
    expect((await nodeRow('race-1')).connectionState).toBe('connected');
  });

  it('a close during the welcome is recorded: the node ends disconnected, its pools unknown, no live link', async () => {
    await addNode('close-1', ['close-1-pool']);
    await (await welcomed('close-1')).socket.close();
    await until(
      () => stateOf('close-1-pool', 'close-1'),
      (s) => s === 'unknown',
      'the first disconnect',
    );
    // Report the pool active again, as a node would have before, so that the change to unknown shows.
    await quantix.repositories.pools.setNodeState({
      poolId: 'close-1-pool',
      nodeId: 'close-1',
      status: 'active',
      mountPath: '/srv/close-1-pool',
      syncedGeneration: 1,
    });

    // Hold the node's row: the welcome's write waits on it, so the close lands mid-welcome.
    const trx = await quantix.database.knex.transaction();
    try {
      await trx.raw('select id from nodes where id = ? for update', ['close-1']);
      const clientsBefore = cp.app.websocketServer.clients.size;
      const node = await connect('close-1');
      node.hello();
      await until(
        async () =>
          (
            await quantix.database.knex.raw(
              "select count(*)::int as n from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock'",
            )
          ).rows[0].n as number,
        (n) => n >= 1,
        'the welcome to wait on the row',
      );
      node.socket.close();
      await node.closed;
      await until(
        () => cp.app.websocketServer.clients.size,
        (n) => n === clientsBefore,
        'the server to see the close',
      );
    } finally {
      await trx.commit();
    }
    await until(
      async () => [(await nodeRow('close-1')).connectionState, await stateOf('close-1-pool', 'close-1')],
      ([connection, pool]) => connection === 'disconnected' && pool === 'unknown',
      'the close to be recorded after the welcome',
    );
    expect(cp.hub.isConnected('close-1')).toBe(false);
    expect(await errorCodeOf(cp.hub.request('close-1', { op: 'vm.state', name: 'x' }))).toBe('NODE_NOT_CONNECTED');
  });

  it('a welcome the database refuses closes the socket (1011) for the node to redial, never a live link without its pools', async () => {
    await addNode('refused-1', ['refused-1-pool']);
    // A real refusal by PostgreSQL: any update of this node's row now breaks a constraint.
    await quantix.database.knex.raw(
      "alter table nodes add constraint refuse_test_node check (id <> 'refused-1' or hostname = 'never') not valid",
    );
    try {
      const node = await connect('refused-1');
      node.hello();
      expect(
        await until(
          () => node.closeCode,
          (code) => code !== null,
          'the socket to be closed',
        ),
      ).toBe(1011);
      expect(node.received.some((m) => m.type === 'welcome' || m.type === 'pools.desired')).toBe(false);
      expect(cp.hub.isConnected('refused-1')).toBe(false);
    } finally {
      await quantix.database.knex.raw('alter table nodes drop constraint refuse_test_node');
    }
    await welcomed('refused-1');
    expect(cp.hub.isConnected('refused-1')).toBe(true);
  });

  it('a message straight after hello waits for the welcome instead of closing the socket', async () => {
    await addNode('eager-1', ['eager-1-pool']);
    const generation = await quantix.repositories.pools.currentGeneration();
    const node = await connect('eager-1');
    node.sendTogether([
      { v: 1, type: 'hello', nodeId: 'eager-1', hostname: 'eager-1', agentVersion: 'test' },
      {
        v: 1,
        type: 'image.progress',
        imageId: 'nothing',
        bytesDone: 1,
        bytesTotal: 10,
        bytesPerSecond: null,
        etaSeconds: null,
      },
      { v: 1, type: 'pools.state', generation, pools: [report('eager-1-pool', 'active', '/srv/eager-first')] },
    ]);
    await node.waitFor('pools.desired');
    await until(
      () => quantix.repositories.pools.getNodeState('eager-1-pool', 'eager-1'),
      (s) => s?.mountPath === '/srv/eager-first',
      'the report sent with the hello to be stored',
    );
    expect(node.open).toBe(true);
    expect(node.received.some((m) => m.type === 'error')).toBe(false);
    expect(cp.hub.isConnected('eager-1')).toBe(true);
  });

  it("a disconnected node's pool states become unknown, and its next report brings them back", async () => {
    await addNode('gone-1', ['gone-1-a', 'gone-1-b']);
    const node = await welcomed('gone-1');
    node.socket.terminate();
    const states = await until(
      () => quantix.repositories.pools.listNodeStates({ nodeId: 'gone-1' }),
      (s) => s.every((x) => x.status === 'unknown'),
      'pool states to be unknown',
    );
    expect(states[0]?.lastError).toMatch(/gone-1 is not connected/);
    expect(states[0]?.mountPath).toBe('/srv/gone-1-a');
    expect((await nodeRow('gone-1')).connectionState).toBe('disconnected');
    await welcomed('gone-1');
    expect(await stateOf('gone-1-a', 'gone-1')).toBe('active');
  });

  it('a node that drops and dials straight back is never recorded disconnected; one that stays away is, once, after the grace', async () => {
    await addNode('blip-1', ['blip-1-a']);
    const disconnects: (string | null)[] = [];
    const count = ({ nodeId, reason }: { nodeId: string; reason: string | null }) => {
      if (nodeId === 'blip-1') disconnects.push(reason);
    };
    quantix.events.on('node.disconnected', count);
    // What a user polling the database would see until the last drop: connected and active throughout.
    const seenBeforeLastDrop = new Set<string>();
    let lastDropped = false;
    let watching = true;
    const watch = async () => {
      while (watching) {
        const [state, node] = await Promise.all([stateOf('blip-1-a', 'blip-1'), nodeRow('blip-1')]);
        if (!lastDropped) seenBeforeLastDrop.add(`${node.connectionState}/${state}`);
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
    };
    let watching$: Promise<void> = Promise.resolve();
    try {
      const first = await welcomed('blip-1');
      watching$ = watch();
      first.socket.terminate();
      await first.closed;
      // Its requests fail at once: the link is gone, only the record waits.
      await expect(
        cp.hub.request('blip-1', { op: 'vm.state', name: 'any' }, { timeoutMs: 5_000 }),
      ).rejects.toMatchObject({
        code: 'NODE_NOT_CONNECTED',
      });
      const again = await welcomed('blip-1');
      expect(cp.hub.isConnected('blip-1')).toBe(true);
      // Dropped for good this time: recorded after the grace, once.
      lastDropped = true;
      again.socket.terminate();
      // The event, not the pool state: it is raised once the record is written (the state is
      // visible a moment before it, which a loaded machine stretches).
      await until(
        () => disconnects.length,
        (n) => n > 0,
        'the drop recorded after the grace',
      );
      expect(await stateOf('blip-1-a', 'blip-1')).toBe('unknown');
      expect(disconnects).toEqual(['connection closed']);
      expect((await nodeRow('blip-1')).connectionState).toBe('disconnected');
      expect([...seenBeforeLastDrop]).toEqual(['connected/active']);
    } finally {
      watching = false;
      await watching$;
      quantix.events.off('node.disconnected', count);
    }
  });

  it('a control plane that stops records at once the nodes whose drop was still in its grace', async () => {
    const hub = new NodeHub({
      repositories: quantix.repositories,
      events: quantix.events,
      logger: silent,
      disconnectGraceMs: 60_000,
    });
    await addNode('grace-stop-1', ['grace-stop-1-a']);
    const server = new WebSocketServer({ port: 0, host: '127.0.0.1' });
    server.on('connection', (socket) => hub.attach('grace-stop-1', webSocketChannel(socket)));
    await new Promise((resolve) => server.once('listening', resolve));
    const { port } = server.address() as import('node:net').AddressInfo;
    try {
      const node = new RawNode(`http://127.0.0.1:${port}`, 'grace-stop-1', 'unused');
      sockets.push(node);
      await node.opened;
      node.hello();
      const desired = await node.waitFor('pools.desired');
      node.send({ v: 1, type: 'pools.state', generation: desired.generation, pools: [report('grace-stop-1-a')] });
      await until(
        () => stateOf('grace-stop-1-a', 'grace-stop-1'),
        (s) => s === 'active',
        'the pool active',
      );
      node.socket.terminate();
      await until(
        () => hub.isConnectedHere('grace-stop-1'),
        (connected) => !connected,
        'the link gone',
      );
      // A minute of grace left: still recorded connected.
      expect((await nodeRow('grace-stop-1')).connectionState).toBe('connected');
      await hub.close();
      expect((await nodeRow('grace-stop-1')).connectionState).toBe('disconnected');
      expect(await stateOf('grace-stop-1-a', 'grace-stop-1')).toBe('unknown');
    } finally {
      await hub.close();
      server.close();
    }
  });

  /**
   * A hub on the real repositories whose welcome of `nodeId` is held after it read the pools
   * (its record of the connection waits for `release`): the window between a welcome's read and
   * its link going live. The node has said hello when this returns.
   */
  const welcomeHeldAfterPoolsRead = async (nodeId: string) => {
    const { nodes, pools } = quantix.repositories;
    let release = () => {};
    const held = new Promise<void>((resolve) => {
      release = resolve;
    });
    let poolsRead = false;
    const hub = new NodeHub({
      repositories: {
        ...quantix.repositories,
        nodes: Object.assign(Object.create(nodes) as typeof nodes, {
          setConnectionStates: async (...args: Parameters<typeof nodes.setConnectionStates>) => {
            await held;
            return nodes.setConnectionStates(...args);
          },
        }),
        pools: Object.assign(Object.create(pools) as typeof pools, {
          list: async (...args: Parameters<typeof pools.list>) => {
            const listed = await pools.list(...args);
            poolsRead = true;
            return listed;
          },
        }),
      },
      events: quantix.events,
      logger: silent,
    });
    const server = new WebSocketServer({ port: 0, host: '127.0.0.1' });
    server.on('connection', (socket) => hub.attach(nodeId, webSocketChannel(socket)));
    await new Promise((resolve) => server.once('listening', resolve));
    const { port } = server.address() as import('node:net').AddressInfo;
    const node = new RawNode(`http://127.0.0.1:${port}`, nodeId, 'unused');
    sockets.push(node);
    const connected = new Promise<void>((resolve) => {
      const onConnected = (event: { nodeId: string }) => {
        if (event.nodeId !== nodeId) return;
        quantix.events.off('node.connected', onConnected);
        resolve();
      };
      quantix.events.on('node.connected', onConnected);
    });
    await node.opened;
    node.hello();
    await until(
      async () => poolsRead,
      (read) => read,
      'the welcome to read the pools',
    );
    const close = async () => {
      release();
      await hub.close();
      server.close();
    };
    return { hub, node, release, connected, close };
  };

  it('a pool changed while a node is being welcomed reaches it: the push that passed its link by is made once it is welcomed', async () => {
    await addNode('late-change-1', ['late-change-1-a']);
    const { pools } = quantix.repositories;
    const { hub, node, release, close } = await welcomeHeldAfterPoolsRead('late-change-1');
    try {
      const before = await pools.currentGeneration();
      await pools.update('late-change-1-a', { config: { path: '/srv/late-change-1-a2' } });
      await hub.pushPoolsToAll(); // what a pool change does: the node, not welcomed yet, is not among those pushed
      release();
      expect((await node.waitFor('pools.desired')).generation).toBe(before);
      const pushed = await node.waitFor('pools.desired', (m) => m.generation > before);
      expect(pushed.pools.find((p) => p.id === 'late-change-1-a')?.config).toEqual({ path: '/srv/late-change-1-a2' });
    } finally {
      await close();
    }
  });

  it('a push begun during a welcome for nothing newer than the welcome read is not made to that node again', async () => {
    await addNode('late-change-2', ['late-change-2-a']);
    const { hub, node, release, connected, close } = await welcomeHeldAfterPoolsRead('late-change-2');
    try {
      // A push late for a change the welcome already read (a pool change's push follows its
      // NOTIFY round trip): the node would report again, and its pools be scanned again, for nothing.
      await hub.pushPoolsToAll();
      release();
      await connected; // any push for the link was sent before this
      await node.roundTrip();
      expect(node.received.filter((m) => m.type === 'pools.desired')).toHaveLength(1);
    } finally {
      await close();
    }
  });

  it('a node sent the current pool set is not pushed it again (a late notification, the listener back); a newer set is, and so is a set whose report was refused', async () => {
    await addNode('sent-1', ['sent-1-a']);
    const node = await welcomed('sent-1');
    const pushes = () => node.received.filter((m) => m.type === 'pools.desired');
    await cp.hub.pushPoolsToAll();
    await node.roundTrip();
    expect(pushes()).toHaveLength(1);

    const { pools } = quantix.repositories;
    await pools.update('sent-1-a', { config: { path: '/srv/sent-1-a2' } });
    await cp.hub.pushPoolsToAll();
    const newer = await node.waitFor('pools.desired', (m) => m.generation > (pushes()[0]?.generation ?? 0));
    expect(newer.pools[0]?.config).toEqual({ path: '/srv/sent-1-a2' });
    await cp.hub.pushPoolsToAll();
    await node.roundTrip();
    expect(pushes()).toHaveLength(2);

    // A report the control plane could not store (here: of a generation never pushed) leaves the
    // node's states unknown to it: the next push is made, so that the node reports again.
    node.send({ v: 1, type: 'pools.state', generation: newer.generation + 1_000, pools: [report('sent-1-a')] });
    await node.waitFor('error');
    await cp.hub.pushPoolsToAll();
    await until(
      () => pushes().length,
      (count) => count === 3,
      'the set to be pushed again',
    );
    expect(pushes()[2]?.generation).toBe(newer.generation);
  });

  it('a node that reconnects holding its desired pools (protocol 4) is not pushed them again: the states of its hello are stored; a stale set gets the push', async () => {
    await addNode('resume-1', ['resume-1-a', 'resume-1-b']);
    const first = await welcomed('resume-1');
    const desired = await first.waitFor('pools.desired');
    const held = (reports: ReturnType<typeof report>[]) => ({
      generation: desired.generation,
      fingerprint: desiredPoolsFingerprint(desired.pools),
      reports,
    });
    const helloWith = (node: RawNode, pools: object) =>
      node.send({
        v: 4,
        type: 'hello',
        nodeId: node.nodeId,
        hostname: node.nodeId,
        agentVersion: 'test',
        protocol: { min: 1, max: 4 },
        pools,
      });
    first.socket.terminate();
    await until(
      () => quantix.repositories.pools.listNodeStates({ nodeId: 'resume-1' }),
      (s) => s.length === 2 && s.every((x) => x.status === 'unknown'),
      'pool states to be unknown',
    );

    // The same set: welcomed with poolsCurrent, no push, and the hello's states stored as they were said.
    const again = await connect('resume-1');
    helloWith(again, held([report('resume-1-a'), report('resume-1-b', 'unavailable', null)]));
    expect((await again.waitFor('welcome')).poolsCurrent).toEqual({ generation: desired.generation });
    const states = await quantix.repositories.pools.listNodeStates({ nodeId: 'resume-1' });
    expect(states.map((s) => [s.poolId, s.status, s.syncedGeneration])).toEqual([
      ['resume-1-a', 'active', desired.generation],
      ['resume-1-b', 'unavailable', desired.generation],
    ]);
    await until(
      () => cp.hub.isConnected('resume-1'),
      (c) => c,
      'resume-1 connected',
    );
    // No push follows the welcome (it would have come with it, in the same turn); the scan of its
    // active pool may (a new link scans its pools).
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(
      again.received.filter((m) => m.type !== 'request' || m.request.op !== 'pool.scan').map((m) => m.type),
    ).toEqual(['welcome']);

    // A pool changed while the node was away: its fingerprint is stale, and it is pushed the new set.
    again.socket.terminate();
    await until(
      () => stateOf('resume-1-a', 'resume-1'),
      (s) => s === 'unknown',
      'pool state to be unknown',
    );
    await quantix.repositories.pools.update('resume-1-a', { config: { path: '/srv/resume-1-a2' } });
    const stale = await connect('resume-1');
    helloWith(stale, held([report('resume-1-a'), report('resume-1-b')]));
    expect((await stale.waitFor('welcome')).poolsCurrent).toBeUndefined();
    const pushed = await stale.waitFor('pools.desired');
    expect(pushed.generation).toBeGreaterThan(desired.generation);
    expect(pushed.pools.find((p) => p.id === 'resume-1-a')?.config).toEqual({ path: '/srv/resume-1-a2' });
    expect(await stateOf('resume-1-a', 'resume-1')).toBe('unknown'); // nothing of the stale hello stored

    // A node that agreed version 3 is pushed its pools as before, whatever its hello holds.
    stale.socket.terminate();
    await until(
      () => stateOf('resume-1-b', 'resume-1'),
      (s) => s === 'unknown',
      'pool state to be unknown',
    );
    const older = await connect('resume-1');
    older.send({
      v: 3,
      type: 'hello',
      nodeId: 'resume-1',
      hostname: 'resume-1',
      agentVersion: 'test',
      protocol: { min: 1, max: 3 },
      pools: {
        ...held([report('resume-1-b')]),
        fingerprint: desiredPoolsFingerprint(pushed.pools),
        generation: pushed.generation,
      },
    });
    expect((await older.waitFor('welcome')).poolsCurrent).toBeUndefined();
    expect((await older.waitFor('pools.desired')).generation).toBe(pushed.generation);
  });

  it('100 reconnect cycles leave exactly one live link, and every request is answered or fails at once', async () => {
    await addNode('cycle-1', ['cycle-1-pool']);
    const outcomes: { ok: boolean; code: string | null; ms: number }[] = [];
    const inFlight: Promise<void>[] = [];
    const ask = () => {
      const started = Date.now();
      inFlight.push(
        cp.hub.request('cycle-1', { op: 'file.stat', poolId: 'cycle-1-pool', relPath: 'x' }, { timeoutMs: 5000 }).then(
          () => void outcomes.push({ ok: true, code: null, ms: Date.now() - started }),
          (error) => void outcomes.push({ ok: false, code: error.code, ms: Date.now() - started }),
        ),
      );
    };
    const cycleSockets: RawNode[] = [];
    const open = async (cycle: number) => {
      const node = await connect('cycle-1');
      cycleSockets.push(node);
      // Every other request is answered; the rest are cut off by the close of their link.
      let count = 0;
      node.answer = (request) =>
        request.op === 'file.stat' && count++ % 2 === 0 ? { exists: true, sizeBytes: cycle } : undefined;
      return node;
    };
    const live = () => cycleSockets.filter((s) => s.open);
    for (let cycle = 0; cycle < 100; cycle++) {
      const before = live();
      if (cycle % 5 === 2) {
        // Two sockets of the node say hello at once, while a third may still be open.
        const [a, b] = await Promise.all([open(cycle), open(cycle)]);
        a.hello();
        b.hello();
      } else {
        const node = await open(cycle);
        node.hello();
        if (cycle % 4 === 1) {
          node.socket.terminate(); // gone during its welcome
          ask(); // sent while the node may be half there: it must not wait for its timeout
          await until(
            () => cp.hub.isConnected('cycle-1'),
            (c) => !c,
            'a link closed in its welcome to never be live',
          );
          continue;
        }
        // Now and then the node drops its old socket itself; else the hub must close it (replaced).
        if (cycle % 3 !== 0) for (const old of before) old.socket.terminate();
      }
      await until(
        () => live().length,
        (n) => n === 1 && cp.hub.isConnected('cycle-1'),
        `cycle ${cycle} to end with one live link`,
      );
      // The last link stays up and answers only every other request: nothing to ask it here.
      if (cycle < 99) for (let i = 0; i < 4; i++) ask();
    }
    await Promise.all(inFlight);
    const [last] = live();
    expect(live()).toHaveLength(1);
    (last as RawNode).answer = (request) => (request.op === 'file.stat' ? { exists: true, sizeBytes: 100 } : undefined);
    await expect(
      cp.hub.request('cycle-1', { op: 'file.stat', poolId: 'cycle-1-pool', relPath: 'x' }, { timeoutMs: 5000 }),
    ).resolves.toEqual({ exists: true, sizeBytes: 100 });
    expect(cp.hub.connectedNodeIds().filter((id) => id === 'cycle-1')).toHaveLength(1);
    await until(
      async () => (await nodeRow('cycle-1')).connectionState,
      (s) => s === 'connected',
      'connected in the db',
    );
    const answered = outcomes.filter((o) => o.ok).length;
    const failed = outcomes.filter((o) => !o.ok);
    const slowest = Math.max(0, ...outcomes.map((o) => o.ms));
    console.log(
      `100 reconnect cycles (${cycleSockets.length} sockets): ${outcomes.length} requests, ${answered} answered, ` +
        `${failed.length} failed (${[...new Set(failed.map((f) => f.code))].join(', ')}); slowest settled in ${slowest} ms; ` +
        `live links at the end: ${live().length}; requests pending: ${cp.hub.pendingRequests}`,
    );
    expect(answered).toBeGreaterThan(0);
    expect(failed.every((f) => f.code === 'NODE_NOT_CONNECTED')).toBe(true); // none waited for its timeout
    expect(cp.hub.pendingRequests).toBe(0);
  });

  it('merges a burst of pool reports: a few writes, not one per message, and the newest wins', async () => {
    await addNode('burst-1', ['burst-1-pool']);
    const node = await welcomed('burst-1');
    const { generation } = await node.waitFor('pools.desired');
    let writes = 0;
    const count = (e: { nodeId: string }) => {
      if (e.nodeId === 'burst-1') writes++;
    };
    quantix.events.on('pool.state', count);
    try {
      const burst = Array.from({ length: 2000 }, (_, i) =>
        i === 1999
          ? { v: 1, type: 'pools.state', generation, pools: [report('burst-1-pool', 'active', '/srv/burst-final')] }
          : {
              v: 1,
              type: 'pools.state',
              generation,
              pools: [report('burst-1-pool', i % 2 ? 'active' : 'unavailable')],
            },
      );
      node.sendTogether(burst);
      await until(
        () => quantix.repositories.pools.getNodeState('burst-1-pool', 'burst-1'),
        (s) => s?.mountPath === '/srv/burst-final',
        'the last report of the burst to be stored',
      );
    } finally {
      quantix.events.off('pool.state', count);
    }
    console.log(`2000 pool reports in one burst → ${writes} pool-state writes`);
    expect(writes).toBeLessThan(100);
    expect(node.open).toBe(true);
  });

  it('node traffic never takes every database connection: with node writes blocked, the API still answers', async () => {
    const ids = ['db-1', 'db-2', 'db-3', 'db-4'];
    const nodes: RawNode[] = [];
    for (const id of ids) {
      await addNode(id, [`${id}-pool`]);
      nodes.push(await welcomed(id));
    }
    const generation = await quantix.repositories.pools.currentGeneration();
    const trx = await quantix.database.knex.transaction();
    let waiting = 0;
    try {
      await trx.raw('lock table pool_node_states in access exclusive mode');
      // 4 nodes × 5 reports of 2 statuses, sent as fast as the sockets go: each waits on the lock.
      for (const [n, node] of nodes.entries()) {
        node.sendTogether(
          Array.from({ length: 5 }, (_, i) => ({
            v: 1,
            type: 'pools.state',
            generation,
            pools: [report(`${ids[n]}-pool`, 'active', `/srv/locked-${i}`)],
          })),
        );
        node.send({ v: 1, type: 'scan.result', poolId: `${ids[n]}-pool`, content: 'images', files: [] });
        node.send({ v: 1, type: 'pools.state', generation, pools: [report(`${ids[n]}-pool`, 'active', '/srv/after')] });
      }
      waiting = await until(
        async () =>
          (
            await quantix.database.knex.raw(
              "select count(*)::int as n from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock'",
            )
          ).rows[0].n as number,
        (n) => n >= 1,
        'node writes to wait on the lock',
      );
      const started = Date.now();
      const health = await api('GET', '/healthz');
      const healthMs = Date.now() - started;
      const nodesList = await api('GET', '/nodes');
      expect(health.status).toBe(200);
      expect(nodesList.status).toBe(200);
      waiting = (
        await quantix.database.knex.raw(
          "select count(*)::int as n from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock'",
        )
      ).rows[0].n as number;
      console.log(
        `node writes blocked: ${waiting} database connections held by node traffic; /healthz answered in ${healthMs} ms`,
      );
      expect(waiting).toBeLessThanOrEqual(2);
    } finally {
      await trx.commit();
    }
    for (const id of ids) {
      await until(
        () => quantix.repositories.pools.getNodeState(`${id}-pool`, id),
        (s) => s?.mountPath === '/srv/after',
        `${id}'s last report once the lock is gone`,
      );
    }
  });

  it('ingests a scan sent in parts once its final part arrives, and refuses parts out of order', async () => {
    await addNode('parts-1', ['parts-1-pool'], ['iso']);
    // The scan its sync asks for is answered (an unanswered one would hold a scan worker for minutes).
    const node = await welcomed('parts-1', (request) =>
      request.op === 'pool.scan' ? { poolId: request.poolId, content: 'iso', files: 0, skipped: [] } : undefined,
    );
    const file = (name: string) => ({
      relPath: name,
      kind: 'iso',
      format: 'iso',
      sizeBytes: 10,
      modifiedAt: '2026-01-01T00:00:00.000Z',
    });
    const part = (scanId: string, n: number, files: object[], final = false) => ({
      v: 1,
      type: 'scan.result',
      poolId: 'parts-1-pool',
      content: 'iso',
      files,
      scanId,
      part: n,
      final,
    });
    node.send(part('bad', 1, [file('x.iso')]));
    await node.waitFor('error', (m) => m.error.message.includes('starts at part 1'));
    // A scanId without a part number is refused for what it is, not as "part undefined".
    const { part: _none, ...unnumbered } = part('bad', 0, [file('x.iso')]);
    node.send(unnumbered);
    const refused = await node.waitFor('error', (m) => m.error.message.includes('no part number'));
    expect(refused.error).toMatchObject({
      code: 'PROTOCOL_INVALID_MESSAGE',
      message: expect.not.stringContaining('undefined'),
    });
    node.send(part('s1', 0, [file('a.iso'), file('b.iso')]));
    node.send(part('s1', 1, [file('c.iso')]));
    const listed = () => quantix.repositories.images.list({ poolId: 'parts-1-pool' });
    node.send(part('s1', 2, [file('d.iso')], true));
    const images = await until(listed, (i) => i.length === 4, 'the four files of the scan');
    expect(images.map((i) => i.location?.relPath).sort()).toEqual(['a.iso', 'b.iso', 'c.iso', 'd.iso']);
    // A whole scan without d.iso: d.iso becomes missing (the parts made one set).
    node.send({
      v: 1,
      type: 'scan.result',
      poolId: 'parts-1-pool',
      content: 'iso',
      files: ['a.iso', 'b.iso', 'c.iso'].map(file),
    });
    await until(listed, (i) => i.find((x) => x.location?.relPath === 'd.iso')?.phase === 'missing', 'd.iso missing');
  });

  it('after a pool change, the node scans only the ISO pool that changed', async () => {
    await addNode('scan-1', ['scan-1-a', 'scan-1-b'], ['iso']);
    const node = await connect('scan-1');
    const scans: string[] = [];
    node.answer = (request) => {
      if (request.op !== 'pool.scan') return undefined;
      scans.push(request.poolId);
      return { poolId: request.poolId, content: 'iso', files: 0, skipped: [] };
    };
    node.hello();
    const reportAll = async (after: number) => {
      const desired = await node.waitFor('pools.desired', (m) => m.generation > after);
      node.send({
        v: 1,
        type: 'pools.state',
        generation: desired.generation,
        pools: desired.pools.map((p) => report(p.id)),
      });
      return desired.generation;
    };
    let generation = await reportAll(-1);
    await until(
      () => [...scans].sort(),
      (s) => s.join() === 'scan-1-a,scan-1-b',
      'both pools scanned on connect',
    );

    scans.length = 0;
    const added = await api('POST', '/pools', {
      id: 'scan-1-c',
      name: 'scan-1-c',
      type: 'local',
      config: { path: '/srv/scan-1-c' },
      contentTypes: ['iso'],
      nodeIds: ['scan-1'],
    });
    expect(added.status).toBe(201);
    generation = await reportAll(generation);
    await until(
      () => scans,
      (s) => s.length >= 1,
      'the new pool to be scanned',
    );
    const renamed = await api('PATCH', '/pools/scan-1-a', {
      name: 'scan-1-a renamed',
      config: { path: '/srv/scan-1-a' },
    });
    expect(renamed.status).toBe(200);
    generation = await reportAll(generation);
    await until(
      () => scans,
      (s) => s.length >= 2,
      'the changed pool to be scanned',
    );
    // Reported again with nothing changed: no scan at all.
    node.send({
      v: 1,
      type: 'pools.state',
      generation,
      pools: ['scan-1-a', 'scan-1-b', 'scan-1-c'].map((p) => report(p)),
    });
    await until(
      () => quantix.repositories.pools.getNodeState('scan-1-c', 'scan-1'),
      (s) => s?.syncedGeneration === generation,
      'the last report stored',
    );
    expect(scans).toEqual(['scan-1-c', 'scan-1-a']);
  });

  it('scans a shared ISO pool through one of its nodes while a scan of it is under way, not through each; another node stands in for one that has gone', async () => {
    const ids = ['share-1', 'share-2', 'share-3'];
    for (const id of ids) await addNode(id);
    await quantix.repositories.pools.create({
      id: 'share-iso',
      name: 'share-iso',
      type: 'local',
      shared: true,
      config: { path: '/srv/share-iso' },
      contentTypes: ['iso'],
      nodeIds: ids,
    });
    // The scans each node is asked for, and those the hub wants after a sync (its decision, made
    // as it handles each report; the control plane's own callback still sends the job).
    const wanted: string[] = [];
    const sendJob = cp.hub.onScanWanted;
    cp.hub.onScanWanted = async (scan) => {
      if (scan.poolId === 'share-iso') wanted.push(scan.nodeId);
      await sendJob?.(scan);
    };
    /** Scans asked of the nodes; while `holding`, left unanswered (under way) until answered below. */
    const asked: { node: RawNode; requestId: string }[] = [];
    let holding = true;
    const scanned = { poolId: 'share-iso', content: 'iso', files: 0, skipped: [] };
    const answerHeld = () => {
      for (const { node, requestId } of asked.splice(0)) {
        if (node.open) node.send({ v: 1, type: 'response', requestId, result: scanned });
      }
    };
    try {
      const nodes = new Map<string, RawNode>();
      /** Reports the newest push active; returns once the hub has handled the report. */
      const reportActive = async (node: RawNode, after: number) => {
        const desired = await node.waitFor('pools.desired', (m) => m.generation > after);
        node.send({ v: 1, type: 'pools.state', generation: desired.generation, pools: [report('share-iso')] });
        // A report the hub refuses, answered after the one before it was handled.
        const refused = node.received.filter((m) => m.type === 'error').length;
        node.send({ v: 1, type: 'pools.state', generation: desired.generation + 1000, pools: [report('share-iso')] });
        await until(
          () => node.received.filter((m) => m.type === 'error').length,
          (n) => n > refused,
          `${node.nodeId}'s report handled`,
        );
        return desired.generation;
      };
      const generations = new Map<string, number>();
      for (const id of ids) {
        const node = await connect(id);
        node.answerScans = false;
        node.answer = (request) => {
          if (request.op !== 'pool.scan') return undefined;
          const message = node.received.at(-1) as { requestId: string };
          asked.push({ node, requestId: message.requestId });
          return holding ? undefined : scanned;
        };
        node.hello();
        nodes.set(id, node);
        generations.set(id, await reportActive(node, -1));
      }
      // The first node's sync wanted a scan; while it is under way, the others' want none.
      expect(wanted).toEqual(['share-1']);
      await until(
        () => asked.length,
        (n) => n === 1,
        'the shared pool scanned through one node',
      );

      // Answered (the queue's workers are few). Its definition changes: a scan of the new version
      // is wanted, once, though the last may still be under way.
      answerHeld();
      const renamed = await api('PATCH', '/pools/share-iso', { name: 'share-iso renamed' });
      expect(renamed.status).toBe(200);
      for (const id of ids) {
        generations.set(id, await reportActive(nodes.get(id) as RawNode, generations.get(id) as number));
      }
      expect(wanted).toEqual(['share-1', 'share-1']);
      await until(
        () => asked.length,
        (n) => n === 1,
        'the changed shared pool scanned once more',
      );

      // Answered, a scan stands for the other nodes' for a while: a node that reconnects then (a
      // storm's next) wants none — the export is not read again for it. Run here, not queued, so
      // that the test knows when the scan has ended.
      answerHeld();
      let ended = 0;
      cp.hub.onScanWanted = async (scan) => {
        if (scan.poolId === 'share-iso') wanted.push(scan.nodeId);
        await cp.hub.scanPool(scan.nodeId, scan.poolId);
        ended++;
      };
      const again = await api('PATCH', '/pools/share-iso', { name: 'share-iso again' });
      expect(again.status).toBe(200);
      for (const id of ids) {
        generations.set(id, await reportActive(nodes.get(id) as RawNode, generations.get(id) as number));
      }
      expect(wanted).toEqual(['share-1', 'share-1', 'share-1']);
      await until(
        () => asked.length,
        (n) => n === 1,
        'the renamed shared pool scanned once more',
      );
      answerHeld();
      await until(
        () => ended,
        (n) => n === 1,
        'that scan to end',
      );
      const back = await connect('share-2');
      back.answerScans = false;
      back.answer = (nodes.get('share-2') as RawNode).answer;
      back.hello();
      nodes.set('share-2', back);
      generations.set('share-2', await reportActive(back, -1));
      expect(wanted).toEqual(['share-1', 'share-1', 'share-1']);

      // The node a scan is asked of has gone: another with the pool active scans it.
      holding = false;
      nodes.get('share-1')?.socket.terminate();
      await until(
        () => cp.hub.isConnected('share-1'),
        (connected) => !connected,
        'share-1 to be gone',
      );
      await cp.hub.scanPool('share-1', 'share-iso');
      expect(asked).toHaveLength(1);
      expect(asked[0]?.node.nodeId).not.toBe('share-1');
    } finally {
      // No scan job is left waiting on an answer (the queue's workers are shared with later tests).
      answerHeld();
      cp.hub.onScanWanted = sendJob;
    }
  });

  it('a restarted control plane adopts a download the node kept running, and applies one it finished — even over an error', async () => {
    await addNode('dl-1', ['dl-1-pool']);
    const node = await welcomed('dl-1', (request) => (request.op === 'source.check' ? { allowed: true } : undefined));
    node.received.length = 0;
    const started = await api('POST', '/images/download', { catalogId: 'tiny-cloud', poolId: 'dl-1-pool' });
    expect(started.status).toBe(202);
    const imageId = started.body.id as string;
    const first = await node.waitFor('request', (m) => m.request.op === 'image.download');

    // Another control plane on the same database, as after a restart; the node redials it.
    const second = await startControlPlane({ quantix, apiToken: API_TOKEN, resumeGraceMs: 60_000 });
    try {
      await cp.close();
      const again = new RawNode(second.url, 'dl-1', tokens.get('dl-1') as string);
      sockets.push(again);
      await again.opened;
      const result = { sizeBytes: 1024, checksum: CHECKSUM, format: 'qcow2', virtualSizeBytes: 1 << 30 };
      again.answer = (request) => (request.op === 'image.download' ? result : undefined);
      again.send({
        v: 1,
        type: 'hello',
        nodeId: 'dl-1',
        hostname: 'dl-1',
        agentVersion: 'test',
        downloads: [
          { imageId, poolId: 'dl-1-pool', relPath: 'images/tiny-cloud.qcow2', state: 'running', bytesDone: 512 },
        ],
      });
      // The answer to the first control plane's request reaches this one: it matches nothing here.
      again.send({ v: 1, type: 'response', requestId: first.requestId, result });
      const adopted = await again.waitFor('request', (m) => m.request.op === 'image.download');
      expect(adopted.request).toMatchObject({ imageId });
      const ready = await until(
        () => quantix.repositories.images.require(imageId),
        (i) => i.phase === 'ready',
        'the adopted download to be ready',
      );
      expect(ready).toMatchObject({ sizeBytes: 1024, checksum: CHECKSUM, virtualSizeBytes: 1 << 30 });

      // A download marked failed while the node was away, which the node finished meanwhile.
      const failed = await quantix.repositories.images.create({
        name: 'finished while away',
        kind: 'cloud',
        location: { poolId: 'dl-1-pool', relPath: 'cloud/away.qcow2' },
      });
      await quantix.repositories.images.update(failed.id, { phase: 'downloading' });
      await quantix.repositories.images.update(failed.id, {
        phase: 'error',
        error: { code: 'DOWNLOAD_INTERRUPTED', message: 'no node came back in time', retryable: true },
      });
      again.socket.close();
      await again.closed;
      const back = new RawNode(second.url, 'dl-1', tokens.get('dl-1') as string);
      sockets.push(back);
      await back.opened;
      back.send({
        v: 1,
        type: 'hello',
        nodeId: 'dl-1',
        hostname: 'dl-1',
        agentVersion: 'test',
        downloads: [{ imageId: failed.id, poolId: 'dl-1-pool', relPath: 'cloud/away.qcow2', state: 'done', result }],
      });
      const applied = await until(
        () => quantix.repositories.images.require(failed.id),
        (i) => i.phase === 'ready',
        'the finished download to be applied',
      );
      expect(applied).toMatchObject({ error: null, sizeBytes: 1024, checksum: CHECKSUM });
    } finally {
      cp = second; // afterAll closes the one still running
    }
  });

  it('asks the node whether it would fetch a source before recording a download: refused there, nothing is recorded; a node of protocol 7 is not asked', async () => {
    const TINY_SOURCE = 'http://127.0.0.1:9/tiny.qcow2'; // the tiny catalog's entry
    await addNode('src-1', ['src-1-pool']);
    const node = await welcomed('src-1');
    node.received.length = 0;
    const answer = api('POST', '/images/download', { catalogId: 'tiny-cloud', poolId: 'src-1-pool' });
    const check = await node.waitFor('request', (m) => m.request.op === 'source.check');
    expect(check.request).toEqual({ op: 'source.check', sourceUrl: TINY_SOURCE, checksumUrl: null });
    const words = `Source ${TINY_SOURCE} is not allowed: 127.0.0.1 is in a denied range`;
    node.send({
      v: PROTOCOL_VERSION,
      type: 'response',
      requestId: check.requestId,
      error: { code: 'SOURCE_NOT_ALLOWED', message: words },
    });
    expect(await answer).toMatchObject({
      status: 400,
      body: { error: { code: 'SOURCE_NOT_ALLOWED', message: words } },
    });
    // The scan of its pool after its sync aside.
    const asked = (n: RawNode) =>
      n.received.flatMap((m) => (m.type === 'request' && m.request.op !== 'pool.scan' ? [m.request.op] : []));
    expect(asked(node)).toEqual(['source.check']);
    expect(await quantix.repositories.images.count({ poolId: 'src-1-pool' })).toBe(0);

    // A node too old for source.check judges the source when it fetches, as before.
    await addNode('src-7', ['src-7-pool']);
    const old = await welcomed('src-7', undefined, { min: 1, max: 7 });
    old.received.length = 0;
    const started = await api('POST', '/images/download', { catalogId: 'tiny-cloud', poolId: 'src-7-pool' });
    expect(started.status).toBe(202);
    const download = await old.waitFor('request', (m) => m.request.op === 'image.download');
    expect(asked(old)).toEqual(['image.download']);
    old.send({
      v: 7,
      type: 'response',
      requestId: download.requestId,
      error: { code: 'SOURCE_NOT_ALLOWED', message: words },
    });
    const failed = await until(
      () => quantix.repositories.images.require(started.body.id as string),
      (image) => image.phase === 'error',
      'the refused download to fail',
    );
    expect(failed.error).toMatchObject({ code: 'SOURCE_NOT_ALLOWED' });
  });

  it('agrees with each node on the highest protocol version both speak, and closes one with none in common', async () => {
    const hello = (node: RawNode, v: number, protocol: { min: number; max: number }) =>
      node.send({ v, type: 'hello', nodeId: node.nodeId, hostname: node.nodeId, agentVersion: 'test', protocol });
    // A node a version ahead of this control plane, and one a version behind: both work, each in its version.
    for (const [nodeId, offered, agreed] of [
      ['ahead-1', { min: 1, max: PROTOCOL_VERSIONS.max + 1 }, PROTOCOL_VERSIONS.max],
      ['behind-1', { min: 1, max: 1 }, 1],
      ['behind-2', { min: 1, max: 2 }, 2],
    ] as const) {
      await addNode(nodeId);
      const node = await connect(nodeId);
      node.answer = () => ({ exists: true, sizeBytes: 42 });
      hello(node, offered.max, offered);
      expect((await node.waitFor('welcome')).protocol).toBe(agreed);
      const desired = await node.waitFor('pools.desired');
      expect(desired.v).toBe(agreed);
      await until(
        () => cp.hub.isConnected(nodeId),
        (c) => c,
        `${nodeId} connected`,
      );
      const stat = await cp.hub.request(nodeId, { op: 'file.stat', poolId: 'p', relPath: 'x' }, { timeoutMs: 5000 });
      expect(stat).toEqual({ exists: true, sizeBytes: 42 });
      expect(node.received.find((m) => m.type === 'request')?.v).toBe(agreed);
      if (agreed < 3) {
        // An operation newer than the agreed version is refused here, naming the upgrade; the
        // node is never sent a request it cannot read.
        const refused = cp.hub.request(nodeId, { op: 'node.networks' }, { timeoutMs: 5000 });
        await expect(refused).rejects.toMatchObject({
          code: 'UNSUPPORTED_OPERATION',
          message: expect.stringContaining(`speaks protocol version ${agreed}; node.networks needs 3: upgrade`),
        });
        expect(node.received.filter((m) => m.type === 'request')).toHaveLength(1);
      }
    }
    // A node from the future: no version in common; it is told why and closed.
    await addNode('future-1');
    const future = await connect('future-1');
    const ahead = PROTOCOL_VERSIONS.max + 1;
    hello(future, ahead + 1, { min: ahead, max: ahead + 1 });
    expect(await future.closed).toBe(NODE_CLOSE_CODES.protocolVersion);
    expect(future.received.find((m) => m.type === 'error')).toMatchObject({
      error: {
        code: 'PROTOCOL_VERSION',
        message: expect.stringContaining(
          `node speaks ${ahead}–${ahead + 1}, this control plane 1–${PROTOCOL_VERSIONS.max}`,
        ),
      },
    });
    expect(cp.hub.isConnected('future-1')).toBe(false);
  });

  it('checks each answer against its operation, and passes a node’s error code through unchanged', async () => {
    await addNode('typed-1');
    const node = await connect('typed-1');
    node.hello();
    await node.waitFor('welcome');
    await until(
      () => cp.hub.isConnected('typed-1'),
      (c) => c,
      'typed-1 connected',
    );
    node.answer = () => ({ exists: 'maybe' });
    expect(
      await errorCodeOf(cp.hub.request('typed-1', { op: 'file.stat', poolId: 'p', relPath: 'x' }, { timeoutMs: 5000 })),
    ).toBe('PROTOCOL_INVALID_MESSAGE');
    node.answer = undefined;
    const failing = cp.hub.request('typed-1', { op: 'vm.state', name: 'web' }, { timeoutMs: 5000 });
    const request = await node.waitFor('request', (m) => m.request.op === 'vm.state');
    node.send({
      v: 1,
      type: 'response',
      requestId: request.requestId,
      error: { code: 'ISO_TRUNCATED', message: 'the node’s own reason' },
    });
    await expect(failing).rejects.toMatchObject({ code: 'ISO_TRUNCATED', message: 'the node’s own reason' });
  });

  it('tells a node that floods past its queue NODE_BUSY and disconnects it (4008); the hub stays up', async () => {
    // A hub of its own with a tiny queue that never pauses reading, behind a plain ws server.
    const hub = new NodeHub({
      repositories: quantix.repositories,
      events: quantix.events,
      logger: silent,
      queueLimits: { pauseAt: 1_000_000, resumeAt: 0, maxMessages: 20, maxBytes: 1024 * 1024 },
    });
    const server = new WebSocketServer({ host: '127.0.0.1', port: 0, maxPayload: PROTOCOL_LIMITS.maxNodeMessageBytes });
    server.on('connection', (socket, request) =>
      hub.attach(String(request.headers['x-quantix-node-id']), webSocketChannel(socket, { transport: request.socket })),
    );
    await new Promise((resolve) => server.once('listening', resolve));
    const url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
    try {
      await addNode('flood-1');
      const flooder = new RawNode(url, 'flood-1', 'unused');
      await flooder.opened;
      flooder.sendTogether([
        { v: 1, type: 'hello', nodeId: 'flood-1', hostname: 'flood-1', agentVersion: 'test' },
        ...Array.from({ length: 200 }, (_, i) => ({ v: 1, type: 'response', requestId: `nobody-${i}`, result: i })),
      ]);
      expect(await flooder.closed).toBe(NODE_CLOSE_CODES.busy);
      expect(flooder.received.find((m) => m.type === 'error')).toMatchObject({ error: { code: 'NODE_BUSY' } });
      const calm = new RawNode(url, 'flood-1', 'unused');
      await calm.opened;
      calm.hello();
      await calm.waitFor('welcome');
      await until(
        () => hub.isConnected('flood-1'),
        (c) => c,
        'the calm node to connect',
      );
      calm.socket.close();
    } finally {
      await hub.close();
      await new Promise((resolve) => server.close(resolve));
    }
  });
});
