import type { ImageCatalog } from '../contracts/catalog.js';
import type { CommandRunner } from '../contracts/command-runner.js';
import type { ImageFetcher } from '../contracts/fetcher.js';
import type { Hypervisor } from '../contracts/hypervisor.js';
import type { StorageBackend } from '../contracts/storage.js';
import { createServiceToken } from './tokens.js';

/** The extension points plugins fill in. Implementations never import each other, only these. */
export const StorageBackendToken = createServiceToken<StorageBackend>('quantix.storage-backend', { multiple: true });
export const ImageCatalogToken = createServiceToken<ImageCatalog>('quantix.image-catalog', { multiple: true });
export const ImageFetcherToken = createServiceToken<ImageFetcher>('quantix.image-fetcher', { multiple: true });
export const HypervisorToken = createServiceToken<Hypervisor>('quantix.hypervisor');
export const CommandRunnerToken = createServiceToken<CommandRunner>('quantix.command-runner');
