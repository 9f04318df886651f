export { BUILTIN_CATALOG_ENTRIES, BUILTIN_CATALOG_NAME, createBuiltinCatalog } from './catalog/builtin.js';
export { type CatalogEntryInput, defineCatalogEntry, StaticImageCatalog } from './catalog/static-catalog.js';
export { COMPRESSIONS, type Compression, compressionOfHead } from './convert/compression.js';
export {
  claimedFormatOfName,
  DEFAULT_MAX_VIRTUAL_SIZE_BYTES,
  IMPORT_SOURCE_FORMATS,
  type ImportDiskRequest,
  type ImportDiskResult,
  type ImportImageResult,
  type ImportSourceFormat,
  type ImportTargetFormat,
  parseConvertProgress,
  QemuImgConverter,
  type QemuImgConverterOptions,
} from './convert/converter.js';
export { parseOvf } from './convert/ova.js';
export { ImagesCloudErrorCode } from './errors.js';
export {
  type CloudFetchRequest,
  type CloudFetchResult,
  type FetchStage,
  HttpImageFetcher,
  type HttpImageFetcherOptions,
  type RetryOptions,
} from './fetch/fetcher.js';
export {
  createDiskImageInspector,
  type ImageInspection,
  type ImageInspector,
  QemuImgInspector,
  type QemuImgInspectorOptions,
} from './fetch/inspect.js';
export { DEFAULT_DENIED_ADDRESSES, DEFAULT_SOURCE_POLICY, type SourcePolicy } from './fetch/policy.js';
export {
  createImagesCloudPlugin,
  IMAGES_CLOUD_PLUGIN_NAME,
  type ImagesCloudPluginOptions,
  imagesCloudPlugin,
} from './plugin.js';
