/** A real test database (PostgreSQL or PGlite, from @quantix/core/testing) for the current describe block. */
import { createRepositories, type Database, openDatabase, type Repositories } from '@quantix/core';
import { createTestDatabase, type TestDatabase, type TestDatabaseClient } from '@quantix/core/testing';
import { afterAll, beforeAll } from 'vitest';

/** Opens a fresh database before the block's tests and drops it after; returns its repositories. */
export function useTestRepositories(client: TestDatabaseClient): () => Repositories {
  let testDb: TestDatabase | undefined;
  let db: Database | undefined;
  let repositories: Repositories | undefined;
  beforeAll(async () => {
    testDb = await createTestDatabase(client);
    db = await openDatabase(testDb.config);
    repositories = createRepositories(db.knex);
  });
  afterAll(async () => {
    await db?.close();
    await testDb?.dispose();
  });
  return () => {
    if (!repositories) throw new Error('the test database is not open yet');
    return repositories;
  };
}
