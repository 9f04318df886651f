import {
  backendFor,
  createServiceToken,
  definePlugin,
  FileInspectorToken,
  ImageCatalogToken,
  type PluginContext,
  type QuantixPlugin,
  RepositoriesToken,
  StorageBackendToken,
  type StoragePool,
} from '@quantix/core';
import { IsoCatalog, type IsoCatalogOptions } from './catalog.js';
import { getOsinfoDatabase, type LoadOsinfoOptions } from './osinfo.js';
import { createIsoInspector, type ScanPoolResult, scanPool } from './scanner.js';
import { type UploadIsoOptions, type UploadIsoResult, uploadIso } from './upload.js';

export const IMAGES_ISO_PLUGIN_NAME = '@quantix/images-iso';

/** Scanning and uploading with the instance's repositories and storage backends filled in. */
export interface IsoImageService {
  /** Scans one pool (by id or definition) with the backend for its type. */
  scanPool(options: {
    pool: string | StoragePool;
    nodeId?: string | null;
    signal?: AbortSignal;
  }): Promise<ScanPoolResult>;
  /** Uploads into a pool (by id or definition) and records the image. */
  upload(
    options: Omit<UploadIsoOptions, 'pool' | 'backend' | 'images' | 'osinfo' | 'logger' | 'events'> & {
      pool: string | StoragePool;
    },
  ): Promise<UploadIsoResult>;
}

export const IsoImageServiceToken = createServiceToken<IsoImageService>('quantix.images-iso');

export interface ImagesIsoPluginOptions {
  catalog?: IsoCatalogOptions;
  /** osinfo-db location and cache directory, or false to identify with the built-in table only. */
  osinfo?: LoadOsinfoOptions | false;
  /** Load osinfo-db when the instance starts instead of at the first scan. Default false. */
  preloadOsinfo?: boolean;
  /** Files read at once by a scan. */
  concurrency?: number;
}

/**
 * Provides the ISO catalog (ImageCatalogToken), the ISO inspector (FileInspectorToken) and, on
 * an instance with a database, an
 * IsoImageService (IsoImageServiceToken) that scans pools and takes uploads with the instance's
 * repositories and the storage backends other plugins provide. The reader, identification,
 * scanner and upload functions are exported for direct use as well.
 */
export function createImagesIsoPlugin(options: ImagesIsoPluginOptions = {}): QuantixPlugin {
  return definePlugin({
    name: IMAGES_ISO_PLUGIN_NAME,
    // The plugin API range this package was written against (not core's constant, which always matches).
    apiVersion: '^1.1.0',
    // Scans and uploads record images; a node has no repositories and gets the catalog and inspector only.
    optional: [RepositoriesToken],
    register(ctx) {
      // Built here, not lazily: a bad catalog entry fails start-up, naming this plugin.
      ctx.provide(ImageCatalogToken, { value: new IsoCatalog(options.catalog) });
      ctx.provide(FileInspectorToken, {
        value: createIsoInspector({
          ...(options.osinfo !== undefined ? { osinfo: options.osinfo } : {}),
          logger: ctx.logger,
        }),
      });
      if (ctx.has(RepositoriesToken)) provideService(ctx, options);
      if (options.preloadOsinfo && options.osinfo !== false) {
        const osinfo = options.osinfo;
        ctx.onReady(async () => {
          await getOsinfoDatabase(osinfo ?? {});
        });
      }
    },
  });
}

/** The IsoImageService: scanning and uploading record images, so only with repositories. */
function provideService(ctx: PluginContext, options: ImagesIsoPluginOptions): void {
  ctx.provide(IsoImageServiceToken, {
    factory: (c) => {
      const poolOf = async (pool: string | StoragePool) =>
        typeof pool === 'string' ? c.repositories.pools.require(pool) : pool;
      const backendOf = (pool: StoragePool) => backendFor(c.getAll(StorageBackendToken), pool.type);
      return {
        async scanPool({ pool: which, nodeId, signal }) {
          const pool = await poolOf(which);
          return scanPool({
            pool,
            backend: backendOf(pool),
            images: c.repositories.images,
            nodeId,
            signal,
            osinfo: options.osinfo,
            concurrency: options.concurrency,
            logger: c.logger,
            events: c.events,
          });
        },
        async upload({ pool: which, ...rest }) {
          const pool = await poolOf(which);
          return uploadIso({
            ...rest,
            pool,
            backend: backendOf(pool),
            images: c.repositories.images,
            osinfo: options.osinfo,
            logger: c.logger,
            events: c.events,
          });
        },
      };
    },
  });
}

/** The plugin with default options: `createQuantix({ plugins: [storageLocalPlugin, imagesIsoPlugin] })`. */
export const imagesIsoPlugin: QuantixPlugin = createImagesIsoPlugin();
