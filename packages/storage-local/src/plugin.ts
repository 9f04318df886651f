import { definePlugin, PoolTypeToken, type QuantixPlugin, StorageBackendToken } from '@quantix/core';
import { LocalStorageBackend, type LocalStorageBackendOptions } from './backend.js';
import { localPoolType } from './config.js';

export const STORAGE_LOCAL_PLUGIN_NAME = '@quantix/storage-local';

export interface StorageLocalPluginOptions extends LocalStorageBackendOptions {
  /**
   * Provide the 'local' backend (default true). A control plane gives false: it only validates
   * pool definitions (PoolTypeToken) and never touches a node's directories.
   */
  backend?: boolean;
}

/** A plugin providing the 'local' pool type (PoolTypeToken) and, unless `backend: false`, its storage backend. */
export function createStorageLocalPlugin(options: StorageLocalPluginOptions = {}): QuantixPlugin {
  const { backend = true, ...backendOptions } = options;
  return definePlugin({
    name: STORAGE_LOCAL_PLUGIN_NAME,
    // The plugin API range this package was written against (not core's constant, which always matches).
    apiVersion: '^1.1.0',
    // Uses no other plugin's services.
    needs: [],
    register(ctx) {
      ctx.provide(PoolTypeToken, { value: localPoolType });
      if (backend) ctx.provide(StorageBackendToken, { value: new LocalStorageBackend(backendOptions) });
    },
  });
}

/** The 'local' storage backend with default options: `createQuantix({ plugins: [storageLocalPlugin] })`. */
export const storageLocalPlugin: QuantixPlugin = createStorageLocalPlugin();
