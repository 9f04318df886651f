export type { CatalogEntry, ImageCatalog } from './contracts/catalog.js';
export type { CommandResult, CommandRunner, RunCommandOptions } from './contracts/command-runner.js';
export {
  IMAGE_IMPORT_STAGES,
  IMAGE_IMPORT_TARGETS,
  type ImageConverter,
  type ImageImportProgress,
  type ImageImportRequest,
  type ImageImportResult,
  type ImageImportStage,
  type ImageImportTarget,
  type ImportedDisk,
  type OvfFacts,
} from './contracts/converter.js';
export type {
  ChecksumRequest,
  FetchProgress,
  FetchRequest,
  FetchResult,
  ImageFetcher,
} from './contracts/fetcher.js';
export {
  CONSOLE_TYPES,
  type ConsoleStream,
  type ConsoleType,
  DOMAIN_STATE_REASONS,
  DOMAIN_STATES,
  type DomainInfo,
  type DomainResources,
  type DomainState,
  type DomainStateReason,
  type HostInfo,
  type Hypervisor,
} from './contracts/hypervisor.js';
export type { FileInspector, InspectedFile } from './contracts/inspector.js';
export type { OsDatabase, OsRef, OsResourceFigures, OsResources } from './contracts/os-database.js';
export type { PoolTypeDefinition } from './contracts/pool-type.js';
export type {
  ImageFileState,
  ImageFilter,
  ImagePage,
  ImagePageQuery,
  ImageRepository,
  ImageUpdateOptions,
  NodeConnectionChange,
  NodeFilter,
  NodeRepository,
  Page,
  PoolFilter,
  PoolRepository,
  RankedImages,
  RankedImagesQuery,
  Repositories,
  UpdateOptions,
  UpsertResult,
  VmFilter,
  VmRepository,
} from './contracts/repositories.js';
export type {
  ConnectionCheck,
  DiscoveredPool,
  PoolFile,
  PoolListing,
  PoolStatus,
  StorageBackend,
  StorageOperation,
} from './contracts/storage.js';
export { GOLDEN_LABELS } from './domain/golden-labels.js';
export { imageIdForLocation, newId } from './domain/ids.js';
export {
  CHECKSUM_ALGORITHMS,
  type Checksum,
  type ChecksumAlgorithm,
  canTransitionImage,
  checksumSchema,
  type DiscoveredImage,
  FIRMWARE_KINDS,
  type Firmware,
  IMAGE_FORMATS,
  IMAGE_KINDS,
  IMAGE_PHASES,
  IMAGE_PROGRESS_STAGES,
  type Image,
  type ImageError,
  type ImageFormat,
  type ImageKind,
  type ImagePatch,
  type ImagePhase,
  type ImageProgress,
  type ImageProgressStage,
  type ImageRequirements,
  ISO_BOOT_LABEL,
  isDataDisc,
  type NewImage,
  OS_CONFIDENCES,
  OS_FAMILIES,
  type OsConfidence,
  type OsFamily,
  type OsInfo,
  type PoolLocation,
} from './domain/image.js';
export {
  type ForeignFileReference,
  foreignFileReference,
  IMAGE_HEADER_BYTES,
  isQcow2Header,
  isSparseVmdkHeader,
  qemuImgInfoForeignFile,
  SELF_CONTAINED_VMDK,
} from './domain/image-headers.js';
export {
  ADDRESS_SOURCES,
  bridgeNameSchema,
  generateMac,
  type HostNetwork,
  hostNetworkSchema,
  MAC_PREFIX,
  macAddressSchema,
  NIC_ATTACHMENTS,
  NIC_MODELS,
  type NicAttachment,
  type NicRequest,
  networkNameSchema,
  nicRequestSchema,
  parseNicReference,
  type VmAddress,
  type VmNic,
  vmAddressSchema,
  vmNicSchema,
} from './domain/network.js';
export {
  type NewNode,
  NODE_CONNECTION_STATES,
  type Node,
  type NodeConnectionState,
  type NodePatch,
} from './domain/node.js';
export { assertRelPath } from './domain/paths.js';
export {
  type NewStoragePool,
  POOL_CONTENT_TYPES,
  POOL_NODE_STATUSES,
  type PoolContentType,
  type PoolNodeState,
  type PoolNodeStateInput,
  type PoolNodeStatus,
  type StoragePool,
  type StoragePoolPatch,
  validateNewPool,
  validatePoolPatch,
} from './domain/pool.js';
export {
  checkPoolRootShape,
  createPoolRootPolicy,
  DEFAULT_POOL_ROOTS,
  findOverlappingPool,
  type PoolOverlap,
  type PoolRootPolicy,
  type PoolRoots,
  poolRootOverlaps,
  poolRootPathSchema,
} from './domain/pool-roots.js';
export {
  replaceUnsafeLabelCharacters,
  replaceUnsafeNameCharacters,
  terminalSafe,
  terminalSafeJson,
} from './domain/unsafe-text.js';
export {
  hasUnsafeNameCharacter,
  labelKeySchema,
  labelValueSchema,
  nameSchema,
  parseOrThrow,
} from './domain/validation.js';
export {
  DISK_BUSES,
  type DiskBus,
  isVmFileRelPath,
  type NewVm,
  VM_FILES_DIRECTORY,
  VM_STATES,
  type Vm,
  type VmCdrom,
  type VmDisk,
  type VmPatch,
  type VmState,
  vmFileRelPath,
  vmNameSchema,
  vmsUsingImage,
} from './domain/vm.js';
export {
  defineErrorCodes,
  type ErrorCodeSpec,
  errorCodeInfo,
  listErrorCodes,
  type QuantixErrorCode,
  type RegisteredErrorCode,
} from './error-registry.js';
export { ErrorCode, isQuantixError, isRetryableError, QuantixError, type QuantixErrorOptions } from './errors.js';
export { createEventBus, type EventBus, type QuantixEvents } from './events/bus.js';
export {
  CommandRunnerToken,
  DatabaseToken,
  FileInspectorToken,
  HypervisorToken,
  ImageCatalogToken,
  ImageConverterToken,
  ImageFetcherToken,
  OsDatabaseToken,
  PoolTypeToken,
  RepositoriesToken,
  StorageBackendToken,
} from './kernel/core-tokens.js';
export {
  definePlugin,
  type PluginContext,
  QUANTIX_PLUGIN_API_VERSION,
  type QuantixPlugin,
  type ServiceProvider,
} from './kernel/plugin.js';
export {
  type CreateQuantixOptions,
  createQuantix,
  DEFAULT_DATA_DIR,
  type Quantix,
  type QuantixNode,
} from './kernel/quantix.js';
export {
  type AnyServiceToken,
  createMultiServiceToken,
  createServiceToken,
  isServiceToken,
  type MultiServiceToken,
  type ServiceToken,
} from './kernel/tokens.js';
export {
  createLogger,
  defaultLogFormat,
  formatLogLine,
  type LogFormat,
  logDestination,
  redactSecrets,
} from './logging.js';
export {
  type Database,
  type DatabaseConfig,
  type DatabaseTimeouts,
  DEFAULT_DATABASE_TIMEOUTS,
  describeDatabase,
  type OpenDatabaseOptions,
  openDatabase,
} from './persistence/database.js';
export { type DatabaseErrorContext, isDatabaseUnavailable, mapDatabaseError } from './persistence/errors.js';
export { migrateDownAll, migrateToLatest, migrateUpOne, migrationStatus } from './persistence/migrations/index.js';
export { createRepositories } from './persistence/repositories/index.js';
export { fromJson } from './persistence/rows.js';
export { desiredPoolsFingerprint, scanEntryHash, scanFingerprint, stableJson } from './protocol/fingerprint.js';
export {
  agreeProtocolVersion,
  type ControlMessage,
  controlMessageSchema,
  DELTA_SCAN_SINCE_VERSION,
  type HelloDownload,
  type ImageDownloadResult,
  type ImageImportResultMessage,
  isSendableFileTime,
  NODE_CLOSE_CODES,
  NODE_CONSOLE_PATH,
  NODE_EXPORT_PATH,
  NODE_OPERATIONS,
  type NodeMessage,
  type NodeOperation,
  type NodeRequest,
  type NodeRequestOf,
  type NodeResultOf,
  nodeMessageSchema,
  OPERATION_SINCE_VERSION,
  POOLS_IN_HELLO_SINCE_VERSION,
  type PoolReport,
  PROTOCOL_LIMITS,
  PROTOCOL_VERSION,
  PROTOCOL_VERSIONS,
  type ProtocolPool,
  parseControlMessage,
  parseNodeMessage,
  parseNodeResult,
  type ScanInvalid,
  type ScannedFile,
  type ScanSkipped,
  truncateText,
  type VmSpec,
} from './protocol/messages.js';
export {
  COMMAND_LOCALE_ENV,
  DEFAULT_COMMAND_TIMEOUT_MS,
  DEFAULT_MAX_OUTPUT_BYTES,
  LocalCommandRunner,
  type LocalCommandRunnerOptions,
} from './runners/local.js';
export { type CatalogListing, CatalogRegistry, type RegisteredCatalogEntry } from './services/catalog-registry.js';
export {
  type CheckedPool,
  checkPoolDefinition,
  checkPoolOnDisk,
  checkPoolRootOnDisk,
  poolRootsOf,
  poolTypesByName,
} from './services/pool-types.js';
export { backendFor, callBackend } from './services/storage.js';
export { freeBytesAt, requireRoom } from './util/free-space.js';
export { hashFile, sha256OfFile } from './util/hash-file.js';
export { ConcurrencyLimiter } from './util/limiter.js';
export { readFileHead } from './util/read-file-head.js';
export { fileNameOfUrl } from './util/url.js';
export { WriteBehind } from './util/write-behind.js';
export { writeFileAtomic } from './util/write-file-atomic.js';
