export * from './contracts/index.js';
export * from './domain/index.js';
export * from './error-registry.js';
export * from './errors.js';
export * from './events/bus.js';
export * from './kernel/core-tokens.js';
export * from './kernel/plugin.js';
export * from './kernel/quantix.js';
export * from './kernel/tokens.js';
export { createLogger, redactSecrets } from './logging.js';
export * from './persistence/database.js';
export { type DatabaseErrorContext, isDatabaseUnavailable, mapDatabaseError } from './persistence/errors.js';
export {
  MIGRATIONS,
  migrateDownAll,
  migrateToLatest,
  migrateUpOne,
  migrationStatus,
} from './persistence/migrations/index.js';
export * from './persistence/repositories/index.js';
export * from './protocol/index.js';
export * from './runners/local.js';
export * from './services/catalog-registry.js';
export * from './services/pool-types.js';
export * from './services/storage.js';
export { ConcurrencyLimiter } from './util/limiter.js';
export { fileNameOfUrl } from './util/url.js';
