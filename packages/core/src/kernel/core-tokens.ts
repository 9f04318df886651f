import type { ImageCatalog } from '../contracts/catalog.js';
import type { CommandRunner } from '../contracts/command-runner.js';
import type { ImageConverter } from '../contracts/converter.js';
import type { ImageFetcher } from '../contracts/fetcher.js';
import type { Hypervisor } from '../contracts/hypervisor.js';
import type { FileInspector } from '../contracts/inspector.js';
import type { OsDatabase } from '../contracts/os-database.js';
import type { PoolTypeDefinition } from '../contracts/pool-type.js';
import type { Repositories } from '../contracts/repositories.js';
import type { StorageBackend } from '../contracts/storage.js';
import type { Database } from '../persistence/database.js';
import { createMultiServiceToken, createServiceToken } from './tokens.js';

/** The extension points plugins fill in. Implementations never import each other, only these. */
export const StorageBackendToken = createMultiServiceToken<StorageBackend>('quantix.storage-backend');
/** One per pool type: its config schema and roots (no backend), for the control plane and nodes alike. */
export const PoolTypeToken = createMultiServiceToken<PoolTypeDefinition>('quantix.pool-type');
export const ImageCatalogToken = createMultiServiceToken<ImageCatalog>('quantix.image-catalog');
export const ImageFetcherToken = createMultiServiceToken<ImageFetcher>('quantix.image-fetcher');
/** Imports disk images and OVAs on the node that holds the pool (qemu-img, from @quantix/images-cloud); optional. */
export const ImageConverterToken = createServiceToken<ImageConverter>('quantix.image-converter');
/** Inspectors of file contents (the ISO reader): scans on nodes, uploads on the control plane. */
export const FileInspectorToken = createMultiServiceToken<FileInspector>('quantix.file-inspector');
/** The OS facts the VM defaults come from (osinfo-db, from @quantix/images-iso); optional. */
export const OsDatabaseToken = createServiceToken<OsDatabase>('quantix.os-database');
export const HypervisorToken = createServiceToken<Hypervisor>('quantix.hypervisor');
export const CommandRunnerToken = createServiceToken<CommandRunner>('quantix.command-runner');

/**
 * Provided by the kernel itself when the instance has a database, and by nobody on a node
 * (`createQuantix({ database: false })`). A plugin that keeps records lists one of them in
 * `needs`, so that a node given it fails at start-up with PLUGIN_MISSING_SERVICE; one that only
 * uses them when present lists it in `optional` and asks `ctx.has()`.
 */
export const DatabaseToken = createServiceToken<Database>('quantix.database');
export const RepositoriesToken = createServiceToken<Repositories>('quantix.repositories');
