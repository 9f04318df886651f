import {
  definePlugin,
  type ImageCatalog,
  ImageCatalogToken,
  ImageConverterToken,
  ImageFetcherToken,
  type QuantixPlugin,
} from '@quantix/core';
import { createBuiltinCatalog } from './catalog/builtin.js';
import { type CatalogEntryInput, StaticImageCatalog } from './catalog/static-catalog.js';
import { QemuImgConverter, type QemuImgConverterOptions } from './convert/converter.js';
import { HttpImageFetcher, type HttpImageFetcherOptions } from './fetch/fetcher.js';

export const IMAGES_CLOUD_PLUGIN_NAME = '@quantix/images-cloud';

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
  /** The importer's limits (virtual size) and qemu-img. */
  converter?: QemuImgConverterOptions;
}

/**
 * Provides the cloud-image catalog(s) (ImageCatalogToken), the HTTP fetcher (ImageFetcherToken)
 * and the qemu-img importer (ImageConverterToken). The download lifecycle that uses them is @quantix/control-plane's
 * DownloadService — on nodes, or in process with LocalDownloadExecutor.
 */
export function createImagesCloudPlugin(options: ImagesCloudPluginOptions = {}): QuantixPlugin {
  return definePlugin({
    name: IMAGES_CLOUD_PLUGIN_NAME,
    // The plugin API range this package was written against.
    apiVersion: '^1.1.0',
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
      ctx.provide(ImageConverterToken, { value: new QemuImgConverter(options.converter) });
    },
  });
}

/** The plugin with default options: `createQuantix({ plugins: [storageLocalPlugin, imagesCloudPlugin] })`. */
export const imagesCloudPlugin: QuantixPlugin = createImagesCloudPlugin();
