export { NfsStorageBackend, type NfsStorageBackendOptions } from './backend.js';
export { buildMountArgv } from './commands.js';
export {
  DEFAULT_MOUNT_ROOT,
  NFS_VERSIONS,
  type NfsPoolConfig,
  type NfsPoolConfigInput,
  type NfsVersion,
  nfsPoolType,
} from './config.js';
export {
  findPoolMount,
  type MountInfoEntry,
  type NfsMount,
  nfsMounts,
  type PoolMountMatch,
  parseMountInfo,
  readMountTable,
} from './mountinfo.js';
export {
  createStorageNfsPlugin,
  STORAGE_NFS_PLUGIN_NAME,
  type StorageNfsPluginOptions,
  storageNfsPlugin,
} from './plugin.js';
