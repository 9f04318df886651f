export {
  adminPostgresUrl,
  createPostgresTestDatabase,
  createTestDatabase,
  TEST_DATABASE_CLIENTS,
  type TestDatabase,
  type TestDatabaseClient,
} from './databases.js';
export { errorCodeOf } from './errors.js';
export {
  findOnPath,
  installedLocales,
  missingTools,
  missingToolsMessage,
  type RequiredTool,
  requireLocale,
  requireTools,
} from './system.js';
