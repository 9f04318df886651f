import { definePlugin, LocalCommandRunner, type QuantixPlugin, StorageBackendToken } from '@quantix/core';
import { NfsStorageBackend, type NfsStorageBackendOptions } from './backend.js';

export const STORAGE_NFS_PLUGIN_NAME = '@quantix/storage-nfs';

/**
 * A plugin providing the 'nfs' storage backend. It runs its commands with the runner given here,
 * or its own LocalCommandRunner (closed with the instance) — deliberately not the instance's
 * CommandRunnerToken, which may reach another host, while mounts must happen where the mount
 * table is read: on this node.
 */
export function createStorageNfsPlugin(options: NfsStorageBackendOptions = {}): QuantixPlugin {
  return definePlugin({
    name: STORAGE_NFS_PLUGIN_NAME,
    // The plugin API this package was written against (not core's constant, which always matches).
    apiVersion: 1,
    register(ctx) {
      const ownRunner = options.runner ? null : new LocalCommandRunner();
      const runner = options.runner ?? (ownRunner as LocalCommandRunner);
      ctx.provide(StorageBackendToken, { value: new NfsStorageBackend({ ...options, runner }) });
      if (ownRunner) ctx.onClose(() => ownRunner.close());
    },
  });
}

/** The 'nfs' storage backend with default options: `createQuantix({ plugins: [storageNfsPlugin] })`. */
export const storageNfsPlugin: QuantixPlugin = createStorageNfsPlugin();
