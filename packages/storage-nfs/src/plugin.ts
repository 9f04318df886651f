import {
  definePlugin,
  LocalCommandRunner,
  PoolTypeToken,
  type QuantixPlugin,
  StorageBackendToken,
} from '@quantix/core';
import { NfsStorageBackend, type NfsStorageBackendOptions } from './backend.js';
import { createNfsPoolType } from './config.js';

export interface StorageNfsPluginOptions extends NfsStorageBackendOptions {
  /**
   * Provide the 'nfs' backend (default true). A control plane gives false: it only validates pool
   * definitions (PoolTypeToken), and mounts nothing.
   */
  backend?: boolean;
}

export const STORAGE_NFS_PLUGIN_NAME = '@quantix/storage-nfs';

/**
 * A plugin providing the 'nfs' pool type (PoolTypeToken) and, unless `backend: false`, the 'nfs'
 * storage backend. The backend runs its commands with the runner given here,
 * or its own LocalCommandRunner (closed with the instance) — deliberately not the instance's
 * CommandRunnerToken, which may reach another host, while mounts must happen where the mount
 * table is read: on this node.
 */
export function createStorageNfsPlugin(pluginOptions: StorageNfsPluginOptions = {}): QuantixPlugin {
  const { backend = true, ...options } = pluginOptions;
  return definePlugin({
    name: STORAGE_NFS_PLUGIN_NAME,
    // The plugin API range this package was written against (not core's constant, which always matches).
    apiVersion: '^1.1.0',
    // Uses no other plugin's services: not even CommandRunnerToken (see above).
    needs: [],
    register(ctx) {
      ctx.provide(PoolTypeToken, {
        value: createNfsPoolType(options.mountRoot ? { mountRoot: options.mountRoot } : {}),
      });
      if (!backend) return;
      const ownRunner = options.runner ? null : new LocalCommandRunner();
      const runner = options.runner ?? (ownRunner as LocalCommandRunner);
      ctx.provide(StorageBackendToken, { value: new NfsStorageBackend({ ...options, runner }) });
      if (ownRunner) ctx.onClose(() => ownRunner.close());
    },
  });
}

/** The 'nfs' storage backend with default options: `createQuantix({ plugins: [storageNfsPlugin] })`. */
export const storageNfsPlugin: QuantixPlugin = createStorageNfsPlugin();
