/**
 * Database errors are told apart by SQLSTATE and constraint name, never by the server's message:
 * the same refusals give the same domain errors on PGlite, on PostgreSQL, and on a PostgreSQL
 * whose messages are German (lc_messages = de_DE.UTF-8), where no English text is there to match.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { Repositories } from '../contracts/repositories.js';
import { ErrorCode, isQuantixError, type QuantixError } from '../errors.js';
import {
  createTestDatabase,
  type OpenTestDatabase,
  openTestDatabase,
  type TestDatabase,
} from '../testing/databases.js';
import { requireLocale } from '../testing/system.js';
import { startPrivatePostgres } from './__fixtures__/private-postgres.js';
import type { Database } from './database.js';
import { mapDatabaseError } from './errors.js';

const GERMAN = 'de_DE.UTF-8';

interface Server {
  name: string;
  /** Whether the server speaks German (its raw messages are checked to be German). */
  german: boolean;
  /** Several connections, so two transactions can race (PGlite has one). */
  concurrent: boolean;
  start(): Promise<TestDatabase>;
}

const servers: Server[] = [
  { name: 'PGlite', german: false, concurrent: false, start: () => createTestDatabase('pglite') },
  { name: 'PostgreSQL', german: false, concurrent: true, start: () => createTestDatabase('pg') },
  {
    name: 'PostgreSQL with lc_messages=de_DE.UTF-8',
    german: true,
    concurrent: true,
    async start() {
      requireLocale(GERMAN);
      const server = await startPrivatePostgres({ lc_messages: GERMAN });
      return { config: { client: 'pg', connectionString: server.url }, dispose: () => server.dispose() };
    },
  },
];

/** The QuantixError a promise rejects with; anything else fails the test. */
async function refusal(promise: Promise<unknown>): Promise<QuantixError> {
  const error = await promise.then(
    () => new Error('the operation succeeded'),
    (e: unknown) => e,
  );
  if (isQuantixError(error)) return error;
  throw error;
}

/** The driver's own error under a domain error: what the server said. */
function serverSaid(error: QuantixError): { message: string; detail?: string; code?: string } {
  return error.cause as { message: string; detail?: string; code?: string };
}

describe.each(servers)('database refusals on $name', (server) => {
  let testDb: OpenTestDatabase;
  let db: Database;
  let repos: Repositories;

  beforeAll(async () => {
    testDb = await openTestDatabase(await server.start());
    ({ database: db, repositories: repos } = testDb);
  });
  afterAll(() => testDb?.close());
  beforeEach(async () => {
    await testDb.reset();
  });

  it('gives every foreign key a name of ours', async () => {
    const result = await db.knex.raw(
      "select conname from pg_constraint where contype = 'f' and connamespace = 'public'::regnamespace order by conname",
    );
    expect((result.rows as { conname: string }[]).map((r) => r.conname)).toEqual([
      'golden_image_revisions_golden_fk',
      'golden_image_revisions_image_fk',
      'golden_images_pool_fk',
      'images_node_fk',
      'images_pool_fk',
      'node_leases_node_fk',
      'node_leases_replica_fk',
      'pool_node_states_node_fk',
      'pool_node_states_pool_fk',
      'vm_macs_vm_fk',
      'vms_boot_image_fk',
      'vms_node_fk',
    ]);
  });

  it('a taken pool name is ALREADY_EXISTS, by the unique constraint it violates', async () => {
    await repos.pools.create({ name: 'ISO library', type: 'local' });
    const error = await refusal(repos.pools.create({ name: 'ISO library', type: 'nfs' }));
    expect(error).toMatchObject({
      code: ErrorCode.ALREADY_EXISTS,
      details: { constraint: 'storage_pools_name_unique' },
    });
    expect(error.message).toMatch(/a pool with this name/);
    if (server.german) expect(serverSaid(error).message).toMatch(/doppelter Schlüsselwert verletzt/);
  });

  it('an image in a pool that does not exist is NOT_FOUND, naming the pool', async () => {
    const error = await refusal(
      repos.images.create({ name: 'x', kind: 'iso', location: { poolId: 'nowhere', relPath: 'x.iso' } }),
    );
    expect(error).toMatchObject({ code: ErrorCode.NOT_FOUND, details: { constraint: 'images_pool_fk' } });
    expect(error.message).toMatch(/refers to a pool that does not exist/);
    if (server.german) expect(serverSaid(error).detail).toMatch(/ist nicht in Tabelle »storage_pools« vorhanden/);
  });

  it('a VM on a node that does not exist is NOT_FOUND, naming the node', async () => {
    const error = await refusal(repos.vms.create({ name: 'web-01', nodeId: 'ghost' }));
    expect(error).toMatchObject({ code: ErrorCode.NOT_FOUND, details: { constraint: 'vms_node_fk' } });
    expect(error.message).toMatch(/refers to a node that does not exist/);
  });

  it('deleting a pool that holds images is IN_USE, naming the images, and keeps both', async () => {
    const pool = await repos.pools.create({ name: 'Pool A', type: 'local', config: { path: '/srv/a' } });
    await repos.images.create({ name: 'x', kind: 'iso', location: { poolId: pool.id, relPath: 'x.iso' } });
    const error = await refusal(repos.pools.delete(pool.id));
    expect(error).toMatchObject({
      code: ErrorCode.IN_USE,
      details: { constraint: 'images_pool_fk', referencedFrom: 'images' },
    });
    expect(error.message).toMatch(/images refer to it/);
    // What a message matcher would have had to read: no English in it on a German server.
    if (server.german) expect(serverSaid(error).detail).toMatch(/wird noch aus Tabelle »images« verwiesen/);
    expect(await repos.pools.get(pool.id)).toBeDefined();
    expect(await repos.images.count()).toBe(1);
  });

  it('deleting a node that runs VMs is IN_USE, naming the VMs', async () => {
    const node = await repos.nodes.create({ hostname: 'hv1' });
    await repos.vms.create({ name: 'web-01', nodeId: node.id });
    const error = await refusal(repos.nodes.delete(node.id));
    expect(error).toMatchObject({
      code: ErrorCode.IN_USE,
      details: { constraint: 'vms_node_fk', referencedFrom: 'vms' },
    });
    expect(await repos.nodes.get(node.id)).toBeDefined();
  });

  it('a missing required value and a failed check are INVALID_INPUT, with SQLSTATE and constraint', async () => {
    const write = (work: Promise<unknown>) => refusal(work.catch((e) => Promise.reject(mapDatabaseError(e, 'Node'))));
    const notNull = await write(db.knex('nodes').insert({ id: 'n1', hostname: null }));
    expect(notNull).toMatchObject({
      code: ErrorCode.INVALID_INPUT,
      details: { sqlState: '23502', column: 'hostname' },
    });
    const node = await repos.nodes.create({ hostname: 'hv1' });
    const check = await write(
      db.knex('vms').insert({ id: 'v1', name: 'v1', node_id: node.id, cpu: 0, memory_mib: 512, state: 'stopped' }),
    );
    expect(check).toMatchObject({
      code: ErrorCode.INVALID_INPUT,
      details: { sqlState: '23514', constraint: 'vms_cpu_check' },
    });
  });

  // PGlite has one connection: no second transaction to race with.
  if (server.concurrent) {
    it('a serialization failure between two transactions is VERSION_CONFLICT, retryable', async () => {
      const node = await repos.nodes.create({ hostname: 'hv1' });
      const first = await db.knex.transaction({ isolationLevel: 'repeatable read' });
      try {
        await first('nodes').where({ id: node.id }).first();
        // Another writer changes the row after the first transaction's snapshot was taken.
        await db.knex('nodes').where({ id: node.id }).update({ hostname: 'hv2' });
        const error = await refusal(
          first('nodes')
            .where({ id: node.id })
            .update({ hostname: 'hv3' })
            .catch((e) => Promise.reject(mapDatabaseError(e, 'Node'))),
        );
        expect(error).toMatchObject({
          code: ErrorCode.VERSION_CONFLICT,
          details: { sqlState: '40001', retryable: true },
        });
        if (server.german) expect(serverSaid(error).message).toMatch(/konnte Zugriff nicht serialisieren/);
      } finally {
        await first.rollback().catch(() => undefined);
      }
    });
  }
});
