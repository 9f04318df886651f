import {
  definePlugin,
  FileInspectorToken,
  ImageCatalogToken,
  OsDatabaseToken,
  type QuantixPlugin,
} from '@quantix/core';
import { IsoCatalog, type IsoCatalogOptions } from './catalog.js';
import { createIsoInspector } from './inspect.js';
import { createOsResourcesDatabase } from './os-resources.js';
import { getOsinfoDatabase, type LoadOsinfoOptions } from './osinfo.js';

export const IMAGES_ISO_PLUGIN_NAME = '@quantix/images-iso';

export interface ImagesIsoPluginOptions {
  catalog?: IsoCatalogOptions;
  /** osinfo-db location and cache directory, or false to identify with the built-in table only. */
  osinfo?: LoadOsinfoOptions | false;
  /** Load osinfo-db when the instance starts instead of at the first scan. Default false. */
  preloadOsinfo?: boolean;
}

/**
 * Provides the ISO catalog (ImageCatalogToken), the ISO inspector (FileInspectorToken) and, unless
 * osinfo is off, osinfo-db's OS resources (OsDatabaseToken: the VM defaults). Scans
 * and uploads are not done here: a node agent scans with the inspector and the control plane
 * ingests what it sends (@quantix/control-plane's ingestScan), and the control plane's
 * UploadService keeps an upload only if the inspector reads it as an ISO. One path each, the one
 * that runs. The reader and identification functions are exported for direct use as well.
 */
export function createImagesIsoPlugin(options: ImagesIsoPluginOptions = {}): QuantixPlugin {
  return definePlugin({
    name: IMAGES_ISO_PLUGIN_NAME,
    // The plugin API range this package was written against (not core's constant, which always matches).
    apiVersion: '^1.1.0',
    register(ctx) {
      // Built here, not lazily: a bad catalog entry fails start-up, naming this plugin.
      ctx.provide(ImageCatalogToken, { value: new IsoCatalog(options.catalog) });
      ctx.provide(FileInspectorToken, {
        value: createIsoInspector({
          ...(options.osinfo !== undefined ? { osinfo: options.osinfo } : {}),
          logger: ctx.logger,
        }),
      });
      if (options.osinfo !== false) {
        const dir = options.osinfo?.dir;
        ctx.provide(OsDatabaseToken, { value: createOsResourcesDatabase(dir ? { dir } : {}) });
      }
      if (options.preloadOsinfo && options.osinfo !== false) {
        const osinfo = options.osinfo;
        ctx.onReady(async () => {
          await getOsinfoDatabase(osinfo ?? {});
        });
      }
    },
  });
}

/** The plugin with default options: `createQuantix({ plugins: [storageLocalPlugin, imagesIsoPlugin] })`. */
export const imagesIsoPlugin: QuantixPlugin = createImagesIsoPlugin();
