export type { IdentifiedOs, MediaPurpose } from './builtin-rules.js';
export {
  createIsoCatalog,
  defineIsoCatalogEntry,
  ISO_CATALOG_ENTRIES,
  ISO_CATALOG_NAME,
  IsoCatalog,
  type IsoCatalogEntryInput,
  type IsoCatalogOptions,
} from './catalog.js';
export { ImagesIsoErrorCode } from './errors.js';
export {
  type IdentificationSource,
  type IdentifyIsoOptions,
  type IdentifyOsOptions,
  type IsoIdentity,
  identifyIso,
  identifyOs,
  type OsIdentification,
} from './identify.js';
export {
  createIsoInspector,
  type InspectedIso,
  type InspectIsoOptions,
  ISO_LABELS,
  type IsoScanDetails,
  inspectIso,
} from './inspect.js';
export {
  type BootEntry,
  type BootMedia,
  type BootPlatform,
  type ElToritoInfo,
  type IsoInfo,
  type JolietInfo,
  type ReadIsoInfoOptions,
  readIsoInfo,
  type UdfInfo,
} from './iso9660.js';
export { createOsResourcesDatabase, type OsResourcesDatabaseOptions } from './os-resources.js';
export {
  clearOsinfoDatabaseCache,
  defaultOsinfoDir,
  getOsinfoDatabase,
  type LoadOsinfoOptions,
  loadOsinfoDatabase,
  type OsinfoDatabase,
  type OsinfoMatch,
} from './osinfo.js';
export { type ImportedOsinfo, type ImportOsinfoArchiveOptions, importOsinfoArchive } from './osinfo-import.js';
export {
  createImagesIsoPlugin,
  IMAGES_ISO_PLUGIN_NAME,
  type ImagesIsoPluginOptions,
  imagesIsoPlugin,
} from './plugin.js';
