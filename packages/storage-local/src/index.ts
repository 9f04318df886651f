export { LocalStorageBackend, type LocalStorageBackendOptions, type PoolDirectory } from './backend.js';
export {
  type DirectorySettings,
  directoryPathSchema,
  directorySettingsSchema,
  type LocalPoolConfig,
  type LocalPoolConfigInput,
  localPoolType,
} from './config.js';
export { assertWritable, directoryStatus, unavailableStatus } from './directory.js';
export {
  createStorageLocalPlugin,
  STORAGE_LOCAL_PLUGIN_NAME,
  type StorageLocalPluginOptions,
  storageLocalPlugin,
} from './plugin.js';
