/**
 * The live event stream (GET /api/v1/events, server-sent events) of real control planes on a
 * real PostgreSQL, read over real HTTP: its ticket, the order of its events, a reader that stops
 * reading, shutdown, and an event raised on one replica reaching a stream opened on another.
 * Events enter through each instance's real event bus (where the workflows raise them) or from
 * a real node connection.
 */
import { request as httpRequest, type IncomingMessage } from 'node:http';
import type { LiveEvent } from '@quantix/control-plane';
import { createQuantix, type Quantix } from '@quantix/core';
import { createTestDatabase, type TestDatabase, waitFor } from '@quantix/core/testing';
import { ControlPlaneConnection } from '@quantix/example-node-daemon';
import pg from 'pg';
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type ControlPlane, type ControlPlaneOptions, startControlPlane } from '../control-plane.js';

const API_TOKEN = 'test-api-token';
const silent = pino({ level: 'silent' });

/** A stream as a reader sees it: the events and comment lines it has read so far. */
interface Reader {
  events: LiveEvent[];
  comments: string[];
  fields: string[];
  ended: Promise<void>;
  close(): void;
}

describe('the live event stream', () => {
  let testDb: TestDatabase;
  const instances: Quantix[] = [];
  const planes: ControlPlane[] = [];
  const cleanup: (() => Promise<unknown> | unknown)[] = [];

  const start = async (id: string, extra: Partial<ControlPlaneOptions> = {}) => {
    const quantix = await createQuantix({ database: testDb.config, logger: silent });
    instances.push(quantix);
    const cp = await startControlPlane({ quantix, apiToken: API_TOKEN, replica: { id, leaseSeconds: 3 }, ...extra });
    planes.push(cp);
    return { cp, quantix };
  };

  const ticketOf = async (cp: ControlPlane) => {
    const response = await fetch(`${cp.url}/api/v1/events/tickets`, {
      method: 'POST',
      headers: { authorization: `Bearer ${API_TOKEN}` },
    });
    expect(response.status).toBe(201);
    return (await response.json()) as { ticket: string; path: string; expiresAt: string };
  };

  /**
   * Opens the stream with a new ticket, over a connection of its own (node:http, not fetch:
   * fetch's pool may open a spare connection that never sends a request, which a closing
   * server waits for).
   */
  const connect = async (cp: ControlPlane): Promise<IncomingMessage> => {
    const { path } = await ticketOf(cp);
    const response = await new Promise<IncomingMessage>((resolve, reject) => {
      const request = httpRequest(`${cp.url}${path}`, resolve);
      request.on('error', reject);
      request.end();
    });
    expect(response.statusCode).toBe(200);
    expect(response.headers['content-type']).toMatch(/^text\/event-stream/);
    cleanup.push(() => response.destroy());
    return response;
  };

  /** Splits what a stream sends into events, comments and other fields, as they come. */
  const parse = (response: IncomingMessage, reader: Omit<Reader, 'ended' | 'close'>) => {
    let buffer = '';
    response.setEncoding('utf8');
    response.on('data', (chunk: string) => {
      buffer += chunk;
      let end = buffer.indexOf('\n\n');
      while (end >= 0) {
        for (const line of buffer.slice(0, end).split('\n')) {
          if (line.startsWith('data: ')) reader.events.push(JSON.parse(line.slice(6)) as LiveEvent);
          else if (line.startsWith(':')) reader.comments.push(line);
          else reader.fields.push(line);
        }
        buffer = buffer.slice(end + 2);
        end = buffer.indexOf('\n\n');
      }
    });
  };

  /** Opens the stream and reads it as it comes. */
  const open = async (cp: ControlPlane): Promise<Reader> => {
    const response = await connect(cp);
    const reader: Reader = {
      events: [],
      comments: [],
      fields: [],
      ended: new Promise((resolve) => response.once('close', () => resolve())),
      close: () => response.destroy(),
    };
    parse(response, reader);
    return reader;
  };

  /** Opens the stream and never reads it: the socket backs up. */
  const openPaused = async (cp: ControlPlane) => {
    const response = await connect(cp);
    response.pause();
    return response;
  };

  const vmState = (quantix: Quantix, id: string, to: 'running' | 'stopped') =>
    quantix.events.emit('vm.state', { vmId: id, from: null, to });

  beforeAll(async () => {
    testDb = await createTestDatabase('pg');
  });
  afterEach(async () => {
    for (const step of cleanup.splice(0).reverse()) await step();
  });
  afterAll(async () => {
    for (const cp of planes) await cp.close().catch(() => undefined);
    for (const quantix of instances) await quantix.close();
    await testDb?.dispose();
  });

  it('opens only with a ticket from the API token, and each ticket once', async () => {
    const { cp } = await start('events-auth');
    /** The status and error code of a request's answer. */
    const answer = async (path: string, init?: RequestInit) => {
      const response = await fetch(`${cp.url}${path}`, init);
      return [response.status, ((await response.json()) as { error?: { code: string } }).error?.code];
    };
    const refused = [401, 'UNAUTHORIZED'];
    expect(await answer('/api/v1/events/tickets', { method: 'POST' })).toEqual(refused);
    expect(await answer('/api/v1/events')).toEqual(refused);
    expect(await answer('/api/v1/events?ticket=made-up')).toEqual(refused);
    // The API token itself opens nothing here: the stream takes its ticket only.
    expect(await answer('/api/v1/events', { headers: { authorization: `Bearer ${API_TOKEN}` } })).toEqual(refused);

    const { path } = await ticketOf(cp);
    const first = await new Promise<IncomingMessage>((resolve) => httpRequest(`${cp.url}${path}`, resolve).end());
    cleanup.push(() => first.destroy());
    expect(first.statusCode).toBe(200);
    const again = await fetch(`${cp.url}${path}`);
    expect(again.status).toBe(401);
    expect(((await again.json()) as { error: { message: string } }).error.message).toMatch(/used/);

    // The document says so: the ticket is the stream's credential, its answer a stream of LiveEvents.
    const document = (await (await fetch(`${cp.url}/api/v1/openapi.json`)).json()) as {
      paths: Record<string, Record<string, { security?: unknown; responses: Record<string, { content?: unknown }> }>>;
      components: { schemas: Record<string, { oneOf?: unknown[] }> };
    };
    const stream = document.paths['/api/v1/events']?.get;
    expect(stream?.security).toEqual([{ eventTicket: [] }]);
    expect(stream?.responses['200']?.content).toEqual({
      'text/event-stream': { schema: { $ref: '#/components/schemas/LiveEvent' } },
    });
    expect(document.components.schemas.LiveEvent?.oneOf).toHaveLength(7);
  });

  it('starts with retry:, keeps a quiet stream alive with comments, and delivers events in the order raised', async () => {
    const { cp, quantix } = await start('events-order', { eventStream: { heartbeatMs: 100 } });
    const reader = await open(cp);
    await waitFor('a heartbeat', () => reader.comments.length >= 2);
    expect(reader.fields[0]).toBe('retry: 3000');
    await waitFor('the subscription', () => cp.live.listenerCount === 1);

    const sent: string[] = [];
    for (let i = 0; i < 300; i++) {
      const state = i % 2 === 0 ? 'running' : 'stopped';
      vmState(quantix, `vm-${i % 7}`, state);
      sent.push(`vm-${i % 7}:${state}`);
    }
    // Progress held back by the throttle goes out before the phase that ends it.
    quantix.events.emit('image.progress', {
      imageId: 'img-1',
      progress: { bytesDone: 10, bytesTotal: 100, percent: 10 },
      bytesPerSecond: null,
      etaSeconds: null,
    });
    quantix.events.emit('image.progress', {
      imageId: 'img-1',
      progress: { bytesDone: 50, bytesTotal: 100, percent: 50 },
      bytesPerSecond: null,
      etaSeconds: null,
    });
    quantix.events.emit('image.progress', {
      imageId: 'img-1',
      progress: { bytesDone: 100, bytesTotal: 100, percent: 100 },
      bytesPerSecond: null,
      etaSeconds: null,
    });
    quantix.events.emit('image.phase', { imageId: 'img-1', from: 'downloading', to: 'verifying', error: null });

    await waitFor('every event', () => reader.events.length >= 303);
    const vms = reader.events.filter((e) => e.type === 'vm.state');
    expect(vms.map((e) => `${e.id}:${e.state}`)).toEqual(sent);
    expect(vms[0]).toEqual({ type: 'vm.state', kind: 'vm', id: 'vm-0', state: 'running' });
    const image = reader.events.filter((e) => e.kind === 'image');
    expect(image.map((e) => (e.type === 'image.progress' ? e.progress.bytesDone : e.type))).toEqual([
      10,
      100,
      'image.phase',
    ]);
    expect(image[2]).toEqual({ type: 'image.phase', kind: 'image', id: 'img-1', phase: 'verifying', error: null });
  });

  it('throttles progress to 4 a second per image', async () => {
    const { cp, quantix } = await start('events-throttle');
    const reader = await open(cp);
    await waitFor('the subscription', () => cp.live.listenerCount === 1);
    const began = Date.now();
    let bytesDone = 0;
    // Progress every 10 ms for 1.2 s: 120 updates of one image.
    await new Promise<void>((resolve) => {
      const timer = setInterval(() => {
        bytesDone += 1000;
        quantix.events.emit('image.progress', {
          imageId: 'img-t',
          progress: { bytesDone, bytesTotal: null, percent: null },
          bytesPerSecond: 100_000,
          etaSeconds: null,
        });
        if (Date.now() - began >= 1200) {
          clearInterval(timer);
          resolve();
        }
      }, 10);
    });
    // The last figure always arrives (held back, then sent when its interval ends).
    await waitFor('the last figure', () =>
      reader.events.some((e) => e.type === 'image.progress' && e.progress.bytesDone === bytesDone),
    );
    const received = reader.events.filter((e) => e.type === 'image.progress' && e.id === 'img-t');
    // At most one per 250 ms, plus the last one held back.
    expect(received.length).toBeLessThanOrEqual(Math.ceil((Date.now() - began) / 250) + 1);
    expect(received.length).toBeGreaterThanOrEqual(3);
  });

  it('coalesces progress for a reader that stopped reading, and cuts one that falls too far behind', async () => {
    const { cp, quantix } = await start('events-slow', {
      eventStream: { maxQueuedEvents: 200 },
      liveProgressIntervalMs: 0,
    });
    const paused = await openPaused(cp);
    const reading = await open(cp);
    await waitFor('both subscriptions', () => cp.live.listenerCount === 2);
    const latest = new Map<string, number>();
    let emitted = 0;
    // 200 rounds of 500 progress events over 20 images (~25 MB of events), across event-loop
    // turns so the sockets can drain what they can: far more than a paused reader's buffers hold.
    for (let round = 0; round < 200; round++) {
      for (let i = 0; i < 500; i++) {
        const imageId = `img-${i % 20}`;
        const bytesDone = round * 500 + i;
        latest.set(imageId, bytesDone);
        quantix.events.emit('image.progress', {
          imageId,
          progress: { bytesDone, bytesTotal: 100_000, percent: null },
          bytesPerSecond: 1,
          etaSeconds: 1,
        });
        emitted++;
      }
      await new Promise((resolve) => setImmediate(resolve));
    }
    // The paused reader is still subscribed: coalesced progress never passes 20 waiting events.
    expect(cp.live.listenerCount).toBe(2);
    // The reading one ends with each image's latest figure.
    await waitFor('the latest figures', () =>
      [...latest].every(([id, done]) =>
        reading.events.some((e) => e.type === 'image.progress' && e.id === id && e.progress.bytesDone === done),
      ),
    );
    // Now the paused reader reads: it got fewer events than were raised, the last of each image among them.
    const late: Omit<Reader, 'ended' | 'close'> = { events: [], comments: [], fields: [] };
    parse(paused, late);
    paused.resume();
    const lastOf = (id: string) =>
      late.events.findLast((e) => e.type === 'image.progress' && e.id === id) as
        | Extract<LiveEvent, { type: 'image.progress' }>
        | undefined;
    await waitFor('the paused reader to catch up', () =>
      [...latest].every(([id, done]) => lastOf(id)?.progress.bytesDone === done),
    );
    expect(late.events.filter((e) => e.type === 'image.progress').length).toBeLessThan(emitted);

    // Events that cannot be coalesced (VM states) pile up for a paused reader: past 200 it is cut.
    const stuck = await openPaused(cp);
    await waitFor('its subscription', () => cp.live.listenerCount === 3);
    const closed = new Promise((resolve) => stuck.socket.once('close', resolve));
    // Large events (4 KB ids), so the socket's buffers fill in a few rounds.
    const longId = 'v'.repeat(4000);
    for (let round = 0; round < 200 && cp.live.listenerCount === 3; round++) {
      for (let i = 0; i < 200; i++) vmState(quantix, `${longId}-${i}`, i % 2 ? 'running' : 'stopped');
      await new Promise((resolve) => setImmediate(resolve));
    }
    await waitFor('the cut reader to be let go', () => cp.live.listenerCount === 2);
    // Its connection was closed: what it reads now ends.
    stuck.resume();
    await closed;
  });

  it('closes open streams on shutdown — a paused one too — without holding shutdown up', async () => {
    const { cp } = await start('events-shutdown');
    const reader = await open(cp);
    const paused = await openPaused(cp);
    const pausedClosed = new Promise((resolve) => paused.socket.once('close', resolve));
    await waitFor('both subscriptions', () => cp.live.listenerCount === 2);
    const began = Date.now();
    await cp.close();
    expect(Date.now() - began).toBeLessThan(5000);
    await reader.ended;
    await pausedClosed;
  });

  describe('across replicas', () => {
    it('delivers an event raised on replica A to a stream opened on replica B', async () => {
      const a = await start('events-replica-a');
      const b = await start('events-replica-b');
      const onB = await open(b.cp);
      await waitFor('the subscription on B', () => b.cp.live.listenerCount === 1);

      // A real node connecting to A: B's stream hears of it.
      const registered = await fetch(`${a.cp.url}/api/v1/nodes`, {
        method: 'POST',
        headers: { authorization: `Bearer ${API_TOKEN}`, 'content-type': 'application/json' },
        body: JSON.stringify({ id: 'n-live', hostname: 'hv-live' }),
      });
      const { token } = (await registered.json()) as { token: string };
      const connection = new ControlPlaneConnection({
        urls: [a.cp.url],
        nodeId: 'n-live',
        token,
        hostname: 'hv-live',
        agentVersion: 'test',
        logger: silent,
        handler: { handle: () => {} },
      });
      connection.start();
      cleanup.push(() => connection.close());
      const connected = await waitFor('B to hear n-live connect', () =>
        onB.events.find((e) => e.type === 'node.connection' && e.id === 'n-live' && e.connected),
      );
      expect(connected).toEqual({ type: 'node.connection', kind: 'node', id: 'n-live', connected: true, reason: null });

      // In order, and with the fields a view shows; a long reason is cut to fit a notification.
      a.quantix.events.emit('image.phase', {
        imageId: 'img-r',
        from: 'downloading',
        to: 'error',
        error: { code: 'DOWNLOAD_FAILED', message: 'x'.repeat(20_000), retryable: true },
      });
      for (let i = 0; i < 50; i++) vmState(a.quantix, `vm-r${i}`, 'running');
      // Other tests' control planes on this database still tell their events: only these ids count.
      const ours = () => onB.events.filter((e) => e.id === 'img-r' || e.id.startsWith('vm-r'));
      await waitFor('the VM states on B', () => ours().length === 51);
      const fromA = ours();
      expect(fromA.map((e) => e.id)).toEqual(['img-r', ...Array.from({ length: 50 }, (_, i) => `vm-r${i}`)]);
      const failed = fromA[0] as Extract<LiveEvent, { type: 'image.phase' }>;
      expect(failed.phase).toBe('error');
      expect(failed.error?.message.length).toBeLessThanOrEqual(1000);

      // Each event once: B does not also hear its own events back.
      b.quantix.events.emit('vm.state', { vmId: 'vm-b', from: null, to: 'stopped' });
      const onA = await open(a.cp);
      await waitFor('the subscription on A', () => a.cp.live.listenerCount === 1);
      b.quantix.events.emit('vm.state', { vmId: 'vm-b2', from: null, to: 'running' });
      await waitFor('A to hear vm-b2', () => onA.events.some((e) => e.id === 'vm-b2'));
      expect(onB.events.filter((e) => e.id === 'vm-b' || e.id === 'vm-b2')).toHaveLength(2);
    });

    it('tells a stream on replica B of an image changed, then deleted, over replica A’s API', async () => {
      const a = await start('events-edit-a');
      const b = await start('events-edit-b');
      const onB = await open(b.cp);
      await waitFor('the subscription on B', () => b.cp.live.listenerCount === 1);
      const image = await a.quantix.repositories.images.create({ name: 'told.iso', kind: 'iso', phase: 'ready' });
      const call = (method: string, body?: unknown) =>
        fetch(`${a.cp.url}/api/v1/images/${image.id}`, {
          method,
          headers: { authorization: `Bearer ${API_TOKEN}`, ...(body ? { 'content-type': 'application/json' } : {}) },
          ...(body ? { body: JSON.stringify(body) } : {}),
        });
      expect((await call('PATCH', { labels: { tier: 'gold' } })).status).toBe(200);
      const changed = await waitFor('B to hear of the edit', () => onB.events.find((e) => e.id === image.id));
      expect(changed).toEqual({ type: 'image.changed', kind: 'image', id: image.id, deleted: false });
      expect((await call('DELETE')).status).toBe(204);
      await waitFor('B to hear of the deletion', () => onB.events.filter((e) => e.id === image.id).length === 2);
      expect(onB.events.filter((e) => e.id === image.id)[1]).toEqual({
        type: 'image.changed',
        kind: 'image',
        id: image.id,
        deleted: true,
      });
    });

    it('a replica alone tells nobody; once another starts, it tells its events from the next one on', async () => {
      // A database of its own: the other tests' replicas stay alive on theirs.
      const own = await createTestDatabase('pg');
      cleanup.push(() => own.dispose());
      const started: { cp: ControlPlane; quantix: Quantix }[] = [];
      cleanup.push(async () => {
        for (const { cp, quantix } of started.reverse()) {
          await cp.close();
          await quantix.close();
        }
      });
      const startOn = async (id: string) => {
        const quantix = await createQuantix({ database: own.config, logger: silent });
        const cp = await startControlPlane({ quantix, apiToken: API_TOKEN, replica: { id, leaseSeconds: 60 } });
        started.push({ cp, quantix });
        return { cp, quantix };
      };
      const watcher = new pg.Client({
        connectionString: (own.config as { connectionString: string }).connectionString,
      });
      await watcher.connect();
      cleanup.push(() => watcher.end());
      const payloads: string[] = [];
      watcher.on('notification', (message) => payloads.push(message.payload ?? ''));
      await watcher.query('LISTEN quantix_live_events');

      const a = await startOn('lone-replica-a');
      for (let i = 0; i < 100; i++) vmState(a.quantix, `vm-alone-${i}`, 'running');
      await a.cp.live.flushed();
      await watcher.query('select 1'); // a notification sent before this reply would have come before it
      expect(payloads).toEqual([]);

      const b = await startOn('lone-replica-b');
      // Told as B started, not at A's next renewal (20 s away with leases of a minute).
      await waitFor('A to know of B', () => a.cp.replicas.hasPeers, 10_000);
      const onB = await open(b.cp);
      await waitFor('the subscription on B', () => b.cp.live.listenerCount === 1);
      vmState(a.quantix, 'vm-not-alone', 'running');
      await waitFor('B to hear vm-not-alone', () => onB.events.some((e) => e.id === 'vm-not-alone'));
      expect(payloads.some((p) => p.includes('vm-not-alone'))).toBe(true);
      expect(payloads.some((p) => p.includes('vm-alone-'))).toBe(false);
    });

    it('tells a burst of 2,000 events (a reconnect storm) to replica B whole and in order, in a few notifications', async () => {
      const a = await start('events-burst-a');
      const b = await start('events-burst-b');
      const onB = await open(b.cp);
      await waitFor('the subscription on B', () => b.cp.live.listenerCount === 1);
      // The notifications themselves, as PostgreSQL delivers them to a listener of the channel.
      const watcher = new pg.Client({
        connectionString: (testDb.config as { connectionString: string }).connectionString,
      });
      await watcher.connect();
      cleanup.push(() => watcher.end());
      const payloads: string[] = [];
      watcher.on('notification', (message) => {
        if (message.payload?.includes('"events-burst-a"')) payloads.push(message.payload);
      });
      await watcher.query('LISTEN quantix_live_events');

      const count = 2_000;
      for (let i = 0; i < count; i++) {
        a.quantix.events.emit('pool.state', {
          poolId: 'burst-pool',
          nodeId: `burst-node-${i}`,
          status: i % 2 ? 'active' : 'unknown',
          reason: i % 2 ? null : `node burst-node-${i} is not connected (closed by its end)`,
        });
      }
      const ours = () => onB.events.filter((e) => e.type === 'pool.state' && e.id === 'burst-pool');
      await waitFor('every event of the burst on B', () => ours().length === count, 30_000);
      expect(ours().map((e) => (e as Extract<LiveEvent, { type: 'pool.state' }>).nodeId)).toEqual(
        Array.from({ length: count }, (_, i) => `burst-node-${i}`),
      );
      // Each a valid NOTIFY payload (under 8000 bytes), many events to each.
      expect(payloads.length).toBeGreaterThan(0);
      expect(payloads.length).toBeLessThan(count / 20);
      for (const payload of payloads) expect(Buffer.byteLength(payload)).toBeLessThan(8000);
    });
  });
});
