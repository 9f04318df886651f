import {
  CatalogRegistry,
  createServiceToken,
  definePlugin,
  type ImageCatalog,
  ImageCatalogToken,
  ImageFetcherToken,
  type QuantixPlugin,
  RepositoriesToken,
  StorageBackendToken,
} from '@quantix/core';
import { createBuiltinCatalog } from './catalog/builtin.js';
import { type CatalogEntryInput, StaticImageCatalog } from './catalog/static-catalog.js';
import { HttpImageFetcher, type HttpImageFetcherOptions } from './fetch/fetcher.js';
import { CloudImageService, type ResolvePoolPath } from './lifecycle/service.js';

export const IMAGES_CLOUD_PLUGIN_NAME = '@quantix/images-cloud';

/** The download lifecycle service of an instance: `quantix.get(CloudImageServiceToken).startDownload(…)`. */
export const CloudImageServiceToken = createServiceToken<CloudImageService>('quantix.images-cloud.service');

export interface ImagesCloudPluginOptions {
  /** Offer the built-in catalog (Ubuntu, Debian, Rocky, AlmaLinux, Fedora, CentOS Stream, openSUSE). Default true. */
  builtinCatalog?: boolean;
  /** Entries of your own, offered as one more catalog (named `entriesCatalogName`), after the built-in one. */
  entries?: readonly CatalogEntryInput[];
  /** Default 'user'. */
  entriesCatalogName?: string;
  /** Whole catalogs of your own; each is provided as an ImageCatalog. Later catalogs override earlier entries with the same id. */
  catalogs?: readonly ImageCatalog[];
  /** Source policy, concurrency, retries, … of the HTTP fetcher. */
  fetcher?: Omit<HttpImageFetcherOptions, 'logger'>;
  /** The node this instance runs downloads on; rows of node-local pools get it, and reconciliation is scoped to it. */
  nodeId?: string | null;
  /** Resume (or fail) downloads left unfinished by a previous process when the instance starts. Default true. */
  reconcileOnStart?: boolean;
  progressWriteIntervalMs?: number;
  /** How relPaths become node paths; default the pool type's StorageBackend.resolve. */
  resolvePath?: ResolvePoolPath;
}

/**
 * Provides the cloud-image catalog(s) (ImageCatalogToken), the HTTP fetcher (ImageFetcherToken)
 * and, on an instance with a database, the download lifecycle (CloudImageServiceToken). The
 * service merges every ImageCatalog any plugin provides, and resolves pool paths through the
 * StorageBackends provided. On a node (`database: false`) it provides the catalogs and fetcher only.
 */
export function createImagesCloudPlugin(options: ImagesCloudPluginOptions = {}): QuantixPlugin {
  return definePlugin({
    name: IMAGES_CLOUD_PLUGIN_NAME,
    // The plugin API range this package was written against.
    apiVersion: '^1.1.0',
    // The repositories hold the download rows; a node has none and gets only catalogs and the fetcher.
    optional: [RepositoriesToken],
    register(ctx) {
      if (options.builtinCatalog !== false) ctx.provide(ImageCatalogToken, { value: createBuiltinCatalog() });
      if (options.entries && options.entries.length > 0) {
        ctx.provide(ImageCatalogToken, {
          value: new StaticImageCatalog({ name: options.entriesCatalogName ?? 'user', entries: options.entries }),
        });
      }
      for (const catalog of options.catalogs ?? []) ctx.provide(ImageCatalogToken, { value: catalog });

      const fetcher = new HttpImageFetcher({ ...options.fetcher, logger: ctx.logger.child({ component: 'fetcher' }) });
      ctx.provide(ImageFetcherToken, { value: fetcher });

      if (!ctx.has(RepositoriesToken)) return;
      let service: CloudImageService | undefined;
      ctx.provide(CloudImageServiceToken, {
        factory: (c) => {
          service = new CloudImageService({
            images: c.repositories.images,
            pools: c.repositories.pools,
            fetcher,
            catalog: new CatalogRegistry({ catalogs: c.getAll(ImageCatalogToken) }),
            backends: c.getAll(StorageBackendToken),
            resolvePath: options.resolvePath,
            events: c.events,
            nodeId: options.nodeId ?? null,
            progressWriteIntervalMs: options.progressWriteIntervalMs,
            logger: c.logger.child({ component: 'cloud-images' }),
          });
          return service;
        },
      });

      if (options.reconcileOnStart !== false) {
        ctx.onReady(async () => {
          const result = await ctx.get(CloudImageServiceToken).reconcileInterrupted();
          if (result.resumed.length + result.failed.length > 0) {
            ctx.logger.info(
              {
                resumed: result.resumed.map((r) => r.image.id),
                failed: result.failed.map((f) => ({ id: f.id, error: f.error })),
              },
              'reconciled downloads interrupted by a restart',
            );
          }
        });
      }
      // Running downloads stop with their rows left `downloading`: the next start resumes them.
      ctx.onClose(() => service?.close());
    },
  });
}

/** The plugin with default options: `createQuantix({ plugins: [storageLocalPlugin, imagesCloudPlugin] })`. */
export const imagesCloudPlugin: QuantixPlugin = createImagesCloudPlugin();
