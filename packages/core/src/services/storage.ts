import type { StorageBackend, StorageOperation } from '../contracts/storage.js';
import { ErrorCode, QuantixError } from '../errors.js';

type OperationOf<K extends StorageOperation> = NonNullable<StorageBackend[K]>;

/**
 * Calls an optional backend operation. The core, not the backend, reports a missing
 * operation, with one code for all of them (as libvirt's storage driver does).
 */
export async function callBackend<K extends StorageOperation>(
  backend: StorageBackend,
  operation: K,
  options: Parameters<OperationOf<K>>[0],
): Promise<Awaited<ReturnType<OperationOf<K>>>> {
  const method = backend[operation] as ((options: unknown) => Promise<unknown>) | undefined;
  if (typeof method !== 'function') {
    throw new QuantixError(
      ErrorCode.UNSUPPORTED_OPERATION,
      `Storage backend '${backend.type}' does not support '${operation}'`,
      { details: { backend: backend.type, operation } },
    );
  }
  return (await method.call(backend, options)) as Awaited<ReturnType<OperationOf<K>>>;
}

/** The backend serving a pool type, from those the plugins provided. */
export function backendFor(backends: readonly StorageBackend[], type: string): StorageBackend {
  const backend = backends.find((candidate) => candidate.type === type);
  if (!backend) {
    const known = backends.map((b) => b.type).join(', ') || 'none';
    throw new QuantixError(
      ErrorCode.UNSUPPORTED_OPERATION,
      `No storage backend for pool type '${type}' (installed: ${known}); add the plugin that provides it`,
      { details: { type } },
    );
  }
  return backend;
}
