import type { ImageCatalog } from '../contracts/catalog.js';
import type { CommandRunner } from '../contracts/command-runner.js';
import type { ImageFetcher } from '../contracts/fetcher.js';
import type { Hypervisor } from '../contracts/hypervisor.js';
import type { FileInspector } from '../contracts/inspector.js';
import type { PoolTypeDefinition } from '../contracts/pool-type.js';
import type { StorageBackend } from '../contracts/storage.js';
import { createServiceToken } from './tokens.js';

/** The extension points plugins fill in. Implementations never import each other, only these. */
export const StorageBackendToken = createServiceToken<StorageBackend>('quantix.storage-backend', { multiple: true });
/** One per pool type: its config schema and roots (no backend), for the control plane and nodes alike. */
export const PoolTypeToken = createServiceToken<PoolTypeDefinition>('quantix.pool-type', { multiple: true });
export const ImageCatalogToken = createServiceToken<ImageCatalog>('quantix.image-catalog', { multiple: true });
export const ImageFetcherToken = createServiceToken<ImageFetcher>('quantix.image-fetcher', { multiple: true });
/** Inspectors of file contents (the ISO reader): scans on nodes, uploads on the control plane. */
export const FileInspectorToken = createServiceToken<FileInspector>('quantix.file-inspector', { multiple: true });
export const HypervisorToken = createServiceToken<Hypervisor>('quantix.hypervisor');
export const CommandRunnerToken = createServiceToken<CommandRunner>('quantix.command-runner');
