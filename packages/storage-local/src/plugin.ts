import { definePlugin, type QuantixPlugin, StorageBackendToken } from '@quantix/core';
import { LocalStorageBackend, type LocalStorageBackendOptions } from './backend.js';

export const STORAGE_LOCAL_PLUGIN_NAME = '@quantix/storage-local';

/** A plugin providing the 'local' storage backend, with options for the backend. */
export function createStorageLocalPlugin(options: LocalStorageBackendOptions = {}): QuantixPlugin {
  return definePlugin({
    name: STORAGE_LOCAL_PLUGIN_NAME,
    // The plugin API this package was written against (not core's constant, which always matches).
    apiVersion: 1,
    register(ctx) {
      ctx.provide(StorageBackendToken, { value: new LocalStorageBackend(options) });
    },
  });
}

/** The 'local' storage backend with default options: `createQuantix({ plugins: [storageLocalPlugin] })`. */
export const storageLocalPlugin: QuantixPlugin = createStorageLocalPlugin();
