/**
 * Driver errors as the real drivers raise them (PGlite, and `pg` against real PostgreSQL and
 * against a port nothing listens on), turned into domain errors whose messages carry neither
 * the statement nor its bindings.
 */

import { type AddressInfo, createServer, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ErrorCode } from '../errors.js';
import { createTestDatabase, TEST_DATABASE_CLIENTS, type TestDatabase } from '../testing/databases.js';
import { type Database, openDatabase } from './database.js';
import { isDatabaseUnavailable, mapDatabaseError } from './errors.js';

const secret = 'bindings-must-not-leak-4711';

describe.each(TEST_DATABASE_CLIENTS)('mapDatabaseError on %s', (client) => {
  let testDb: TestDatabase;
  let database: Database;
  beforeAll(async () => {
    testDb = await createTestDatabase(client);
    database = await openDatabase(testDb.config);
  });
  afterAll(async () => {
    await database?.close();
    await testDb?.dispose();
  });

  const failure = async (sql: string, bindings: unknown[]) => {
    try {
      await database.knex.raw(sql, bindings as never[]);
    } catch (error) {
      return mapDatabaseError(error, 'Thing');
    }
    throw new Error('the statement succeeded');
  };

  it('turns a NUL byte into INVALID_INPUT, naming no statement and no value', async () => {
    const error = await failure('select ?::text as a, ?::text as b', ['a\u0000b', secret]);
    expect(error).toMatchObject({ code: ErrorCode.INVALID_INPUT });
    expect(error.message).not.toMatch(/select|4711/i);
  });

  it('turns an unknown failure into DATABASE_ERROR with its SQLSTATE only', async () => {
    const error = await failure('select * from no_such_table where x = ?', [secret]);
    expect(error).toMatchObject({ code: ErrorCode.DATABASE_ERROR, details: { sqlState: '42P01' } });
    expect(error.message).not.toMatch(/select|no_such_table|4711/i);
  });
});

// PGlite runs in this thread and has no timer to cancel a statement with: PostgreSQL only.
describe('a statement over its timeout on PostgreSQL', () => {
  it('is cancelled by the server and reported as DATABASE_UNAVAILABLE', async () => {
    const testDb = await createTestDatabase('pg');
    const database = await openDatabase(testDb.config);
    try {
      const error = await database.knex
        .transaction(async (trx) => {
          await trx.raw("set local statement_timeout = '50ms'");
          await trx.raw('select pg_sleep(2)');
        })
        .then(
          () => null,
          (e) => mapDatabaseError(e, 'Thing'),
        );
      expect(error).toMatchObject({ code: ErrorCode.DATABASE_UNAVAILABLE });
    } finally {
      await database.close();
      await testDb.dispose();
    }
  });
});

describe('a PostgreSQL that cannot be reached', () => {
  it('is DATABASE_UNAVAILABLE within the connect timeout, not a hang', async () => {
    const started = Date.now();
    const error = await openDatabase({
      client: 'pg',
      // Port 1 on loopback: nothing listens, the connection is refused at once.
      connectionString: 'postgres://quantix:quantix@127.0.0.1:1/quantix',
      timeouts: { connectMs: 1_000, acquireMs: 2_000 },
    }).then(
      () => null,
      (e) => e,
    );
    expect(error).toMatchObject({ code: ErrorCode.DATABASE_UNAVAILABLE });
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(isDatabaseUnavailable((error as Error).cause)).toBe(true);
  });

  it('is DATABASE_UNAVAILABLE when the server accepts but never answers (the connect times out)', async () => {
    // A frozen server: the TCP connection opens, no byte ever comes back.
    const sockets = new Set<Socket>();
    const silent = createServer((socket) => sockets.add(socket));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const { port } = silent.address() as AddressInfo;
    try {
      const started = Date.now();
      const error = await openDatabase({
        client: 'pg',
        connectionString: `postgres://quantix:quantix@127.0.0.1:${port}/quantix`,
        timeouts: { connectMs: 500, acquireMs: 5_000 },
      }).then(
        () => null,
        (e) => e,
      );
      expect(error).toMatchObject({ code: ErrorCode.DATABASE_UNAVAILABLE });
      expect(Date.now() - started).toBeLessThan(5_000);
      // What a query meets when its pool must open a connection to a frozen server: unavailable.
      expect(isDatabaseUnavailable((error as Error).cause)).toBe(true);
    } finally {
      for (const socket of sockets) socket.destroy();
      silent.close();
    }
  });
});
