/**
 * Replicas and node leases on a real database (PGlite and PostgreSQL): who holds which node,
 * takeover by a second connection, a clean stop, a replica that dies (a real process, SIGKILL)
 * and one that loses its database.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { createLogger, createRepositories, type Database, openDatabase } from '@quantix/core';
import {
  type OpenTestDatabase,
  openTestDatabase,
  TEST_DATABASE_CLIENTS,
  type TestDatabaseClient,
  waitFor,
} from '@quantix/core/testing';
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ticketKeyFingerprint, ticketKeyFrom } from '../tokens.js';
import { ReplicaListener } from './listener.js';
import { ReplicaRegistry, type ReplicaRegistryOptions } from './replica-registry.js';

const here = dirname(fileURLToPath(import.meta.url));
const logger = createLogger({ level: 'silent' });

/** A fresh database with nodes n1–n3 for each test, and replicas on it stopped after each. */
function useReplicaDatabase(client: TestDatabaseClient) {
  let testDb: OpenTestDatabase;
  let db: Database;
  const registries: ReplicaRegistry[] = [];
  const replica = async (
    replicaId: string,
    options: Pick<
      Partial<ReplicaRegistryOptions>,
      'leaseSeconds' | 'onNodesLost' | 'listener' | 'keyFingerprint' | 'logger'
    > = {},
  ) => {
    const registry = new ReplicaRegistry({ knex: db.knex, logger, replicaId, version: '1.2.3', ...options });
    await registry.start();
    registries.push(registry);
    return registry;
  };

  beforeAll(async () => {
    testDb = await openTestDatabase(client);
    db = testDb.database;
  });
  afterAll(() => testDb?.close());
  beforeEach(async () => {
    await testDb.reset();
    const repos = createRepositories(db.knex);
    for (const id of ['n1', 'n2', 'n3']) await repos.nodes.create({ id, hostname: id });
  });
  afterEach(async () => {
    await Promise.all(registries.splice(0).map((registry) => registry.stop().catch(() => undefined)));
  });

  return {
    replica,
    testDb: () => testDb,
  };
}

describe.each(TEST_DATABASE_CLIENTS)('replica registry on %s', (client) => {
  const { replica, testDb } = useReplicaDatabase(client);

  it('knows whether another replica is alive: at once when one starts and announces itself, at a renewal once it stopped', async () => {
    const listeners: ReplicaListener[] = [];
    // Leases of a minute: renewals 20 s apart, so that knowing "at once" cannot be a renewal's doing.
    const started = async (replicaId: string) => {
      const listener = new ReplicaListener({ database: testDb().database, logger });
      listeners.push(listener);
      const registry = await replica(replicaId, { listener, leaseSeconds: 60 });
      await listener.start();
      await registry.announce();
      return registry;
    };
    try {
      const a = await started('replica-a');
      expect(a.hasPeers).toBe(false);
      const b = await started('replica-b');
      expect(b.hasPeers).toBe(true); // counted as it started
      if (client === 'pg') await waitFor('replica-a to hear of replica-b', () => a.hasPeers, 10_000);
      else {
        // PGlite is one process's database: nobody to notify, the renewal counts.
        await a.renew();
        expect(a.hasPeers).toBe(true);
      }
      await b.stop();
      await a.renew();
      expect(a.hasPeers).toBe(false);
    } finally {
      for (const listener of listeners) await listener.stop();
    }
  });

  it('lists live replicas with the nodes each holds', async () => {
    const a = await replica('replica-a');
    const b = await replica('replica-b');
    await a.claim('n1');
    await a.claim('n2');
    await b.claim('n3');
    const live = await a.liveReplicas();
    expect(live.map((r) => [r.id, r.version, r.nodeIds])).toEqual([
      ['replica-a', '1.2.3', ['n1', 'n2']],
      ['replica-b', '1.2.3', ['n3']],
    ]);
    expect(await b.holderOf('n2')).toBe('replica-a');
    expect(await b.holderOf('n9')).toBeNull();
  });

  it('finds a replica started with another API token: each warns of the other once, and lists it so', async () => {
    /** A logger whose warnings are kept, as their messages. */
    const warningsInto = (said: string[]) =>
      pino({ level: 'warn' }, { write: (line: string) => said.push(JSON.parse(line).msg as string) });
    const key = (apiToken: string) => ticketKeyFingerprint(ticketKeyFrom(apiToken));
    const aSaid: string[] = [];
    const bSaid: string[] = [];
    const a = await replica('replica-a', { keyFingerprint: key('token-one'), logger: warningsInto(aSaid) });
    const b = await replica('replica-b', { keyFingerprint: key('token-two'), logger: warningsInto(bSaid) });
    await replica('replica-c', { keyFingerprint: key('token-one') });
    await replica('replica-d'); // no key to compare (an embedder without a ticket key)
    // replica-b found replica-a as it started; replica-a finds replica-b at its next renewal — once.
    expect(bSaid).toEqual([
      expect.stringMatching(/^replica replica-a was started with another API token than this one: .*--api-token-file$/),
    ]);
    expect(aSaid).toEqual([]);
    await a.renew();
    await a.renew();
    expect(aSaid).toEqual([expect.stringMatching(/^replica replica-b was started with another API token/)]);
    expect((await a.liveReplicas()).map((r) => [r.id, r.sameKey])).toEqual([
      ['replica-a', true],
      ['replica-b', false],
      ['replica-c', true],
      ['replica-d', null],
    ]);
    expect((await b.liveReplicas()).find((r) => r.id === 'replica-c')?.sameKey).toBe(false);
    // replica-b goes: nothing more is said of it, and it is not listed.
    await b.stop();
    await a.renew();
    expect(aSaid).toHaveLength(1);
    expect((await a.liveReplicas()).map((r) => r.id)).not.toContain('replica-b');
  });

  it('hands a node to the replica it connects to next, and the first one learns it at its next renewal', async () => {
    const lost: string[] = [];
    const a = await replica('replica-a', { onNodesLost: (ids) => lost.push(...ids) });
    const b = await replica('replica-b');
    await a.claim('n1');
    await a.claim('n2');
    expect(await b.claim('n1')).toEqual({ takenFrom: 'replica-a' });
    await a.renew();
    expect(lost).toEqual(['n1']);
    expect(a.heldNodeIds()).toEqual(['n2']);
    expect(await a.holderOf('n1')).toBe('replica-b');
    // A late release from the first replica does not undo the takeover.
    await a.release('n1');
    expect(await a.holderOf('n1')).toBe('replica-b');
  });

  it('claims many nodes in one batch, telling for each which replica it was taken from', async () => {
    const a = await replica('replica-a');
    const b = await replica('replica-b');
    const c = await replica('replica-c');
    await a.claimAll(['n1']);
    await c.claim('n2');
    const taken = await b.claimAll(['n1', 'n2', 'n3', 'n1']);
    expect(Object.fromEntries(taken)).toEqual({ n1: 'replica-a', n2: 'replica-c', n3: null });
    for (const node of ['n1', 'n2', 'n3']) expect(await a.holderOf(node)).toBe('replica-b');
    // Claiming again what it holds: taken from nobody.
    expect(Object.fromEntries(await b.claimAll(['n1', 'n3']))).toEqual({ n1: null, n3: null });
  });

  it('leaves a lease it holds as it is when its node reconnects, and takes one of its own that ran out again', async () => {
    const a = await replica('replica-a');
    const { knex } = testDb().database;
    const lease = async (nodeId: string) =>
      (await knex('node_leases').where({ node_id: nodeId }).first('replica_id', 'acquired_at', 'expires_at')) as {
        replica_id: string;
        acquired_at: Date;
        expires_at: Date;
      };
    await a.claimAll(['n1', 'n2']);
    // Both leases back-dated by a minute, n2's run out: what a claim rewrites shows in them.
    await knex.raw(
      `update node_leases set acquired_at = acquired_at - interval '1 minute',
         expires_at = case when node_id = 'n2' then now() - interval '1 second' else expires_at end`,
    );
    const before = await lease('n1');
    expect(Object.fromEntries(await a.claimAll(['n1', 'n2']))).toEqual({ n1: null, n2: null });
    expect(await lease('n1')).toEqual(before);
    const retaken = await lease('n2');
    expect(retaken.replica_id).toBe('replica-a');
    expect(retaken.expires_at.getTime()).toBeGreaterThan(Date.now());
    expect(retaken.acquired_at.getTime()).toBeGreaterThan(before.acquired_at.getTime() + 30_000);
    expect(await a.holderOf('n2')).toBe('replica-a');
  });

  it('frees its nodes at once when it stops cleanly', async () => {
    const a = await replica('replica-a');
    const b = await replica('replica-b');
    await a.claim('n1');
    await a.stop();
    expect(await b.holderOf('n1')).toBeNull();
    expect((await b.liveReplicas()).map((r) => r.id)).toEqual(['replica-b']);
    expect(await b.claim('n1')).toEqual({ takenFrom: null });
  });
});

// Failures of a replica among several: only PostgreSQL has several replicas (the embedded PGlite is one).
describe('replica registry on PostgreSQL, when a replica fails', () => {
  const { replica, testDb } = useReplicaDatabase('pg');

  it('lets its nodes go when it cannot reach the database for a whole lease', async () => {
    const own = await openDatabase(testDb().config, { migrate: false });
    const lost: string[] = [];
    const a = new ReplicaRegistry({
      knex: own.knex,
      logger,
      replicaId: 'replica-cut-off',
      version: '1',
      leaseSeconds: 1,
      onNodesLost: (ids) => lost.push(...ids),
    });
    await a.start();
    await a.claim('n1');
    await a.claim('n2');
    await own.close(); // its connection to the database is gone
    await waitFor('the nodes let go', () => lost.length === 2, 5_000);
    expect(lost.sort()).toEqual(['n1', 'n2']);
    expect(a.heldNodeIds()).toEqual([]);
    const b = await replica('replica-b');
    await waitFor('the lease ran out', async () => (await b.holderOf('n1')) === null, 5_000);
    await a.stop().catch(() => undefined); // its database is gone: only the timer stops
  });

  it('lets its nodes go within a lease when its renewal hangs rather than fails', async () => {
    const lost: string[] = [];
    const a = await replica('replica-hung', { leaseSeconds: 1, onNodesLost: (ids) => lost.push(...ids) });
    await a.claim('n1');
    await a.claim('n2');
    // Another session holds the replica's row locked: the renewal waits (as on a link that drops
    // packets), with no error until the statement timeout (30 s), far beyond the lease.
    const locker = await openDatabase(testDb().config, { migrate: false });
    const transaction = await locker.knex.transaction();
    await transaction.raw('select id from replicas where id = ? for update', ['replica-hung']);
    const lockedAt = Date.now();
    try {
      await waitFor('the nodes let go', () => lost.length === 2, 5_000);
      expect(lost.sort()).toEqual(['n1', 'n2']);
      expect(Date.now() - lockedAt).toBeLessThan(2 * 1_000 + 1_000);
    } finally {
      await transaction.rollback();
      await locker.close();
    }
  });

  it('frees the nodes of a replica that died once its lease runs out', async () => {
    const connectionString = (testDb().config as { connectionString: string }).connectionString;
    const child = spawn(
      process.execPath,
      [
        '--import',
        'tsx',
        join(here, '..', '__fixtures__', 'replica-child.ts'),
        connectionString,
        'replica-dead',
        '2',
        'n1',
        'n2',
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    await new Promise<void>((resolve, reject) => {
      createInterface({ input: child.stdout as NodeJS.ReadableStream }).once('line', () => resolve());
      child.once('exit', (code) => reject(new Error(`the child replica exited (${code})`)));
    });
    const b = await replica('replica-b');
    expect(await b.holderOf('n1')).toBe('replica-dead');
    child.kill('SIGKILL');
    const killedAt = Date.now();
    await waitFor('the dead replica’s leases ran out', async () => (await b.holderOf('n1')) === null);
    expect(Date.now() - killedAt).toBeLessThan(2_000 + 1_000);
    expect((await b.liveReplicas()).map((r) => r.id)).toEqual(['replica-b']);
    expect(await b.claim('n1')).toEqual({ takenFrom: null });
  });

  it('drops the leases a crashed predecessor with the same id left, as it starts', async () => {
    const connectionString = (testDb().config as { connectionString: string }).connectionString;
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', join(here, '..', '__fixtures__', 'replica-child.ts'), connectionString, 'cp-a', '30', 'n1'],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    await new Promise<void>((resolve, reject) => {
      createInterface({ input: child.stdout as NodeJS.ReadableStream }).once('line', () => resolve());
      child.once('exit', (code) => reject(new Error(`the child replica exited (${code})`)));
    });
    child.kill('SIGKILL');
    await once(child, 'exit');
    // Restarted under its stable id, 30 s before the dead run's lease would run out.
    const restarted = await replica('cp-a');
    expect(await restarted.holderOf('n1')).toBeNull();
    expect(restarted.heldNodeIds()).toEqual([]);
    expect((await restarted.liveReplicas()).find((r) => r.id === 'cp-a')?.nodeIds).toEqual([]);
  });
});
