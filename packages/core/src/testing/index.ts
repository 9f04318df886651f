export {
  adminPostgresUrl,
  createPostgresTestDatabase,
  createTestDatabase,
  type OpenTestDatabase,
  openTestDatabase,
  TEST_DATABASE_CLIENTS,
  type TestDatabase,
  type TestDatabaseClient,
} from './databases.js';
export { errorCodeOf } from './errors.js';
export { mountSmallFilesystem, type SmallFilesystem } from './filesystems.js';
export { freePort } from './ports.js';
export {
  findOnPath,
  installedLocales,
  missingTools,
  missingToolsMessage,
  type RequiredTool,
  requireLocale,
  requireTools,
} from './system.js';
export { waitFor } from './wait.js';
