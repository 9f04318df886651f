export {
  createPostgresTestDatabase,
  createTestDatabase,
  TEST_DATABASE_CLIENTS,
  type TestDatabase,
  type TestDatabaseClient,
} from './databases.js';
export { errorCodeOf } from './errors.js';
