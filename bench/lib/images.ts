/**
 * What the image benches (export, copy) do through the API of an all-in-one control plane: call
 * it with its token, wait for a pool to be active, and get a catalog image into a pool the way
 * images get there (a verified download), or follow an image until it is ready.
 */

import { join } from 'node:path';
import { startAllInOne } from '@quantix/example-control-plane';
import { startNodeProcess } from './child.js';

/**
 * The all-in-one control plane (embedded PGlite, its node and local pool) in `dataDir`, with one
 * catalog entry `catalogId`: the raw image `file` of the bench file server on `port`, verified
 * against its SHA256SUMS.
 */
export function startImageSystem(options: {
  dataDir: string;
  port: number;
  file: string;
  catalogId: string;
  /** libvirt for VMs (bench/console); none by default. */
  libvirtUri?: string;
}) {
  const base = `http://127.0.0.1:${options.port}`;
  return startAllInOne({
    dataDir: options.dataDir,
    host: '127.0.0.1',
    port: 0,
    libvirtUri: options.libvirtUri ?? null,
    entries: [
      {
        id: options.catalogId,
        name: `${options.catalogId} image`,
        kind: 'cloud',
        format: 'raw',
        sourceUrl: `${base}/${options.file}`,
        checksumUrl: `${base}/SHA256SUMS`,
        checksumAlgorithm: 'sha256',
      },
    ],
    allowSourceAddresses: ['127.0.0.1'],
    log: () => {},
  });
}

/**
 * startImageSystem in a process of its own (bench/__fixtures__/image-system.ts), as `quantix up`
 * runs; resolves once it listens. For a bench whose client is spawned from this process: a
 * server in the process that spawns its client measures slow (bench/README.md).
 */
export async function startImageSystemProcess(args: {
  dataDir: string;
  port: number;
  file: string;
  catalogId: string;
}) {
  const system = await startNodeProcess(
    [
      '--import',
      'tsx',
      join(import.meta.dirname, '../__fixtures__/image-system.ts'),
      args.dataDir,
      String(args.port),
      args.file,
      args.catalogId,
    ],
    'the image system',
  );
  const { url, apiToken } = JSON.parse(system.line) as { url: string; apiToken: string };
  return { url, apiToken, close: system.stop };
}

/** A JSON call of the API with the token. */
export type BenchApi = (method: string, path: string, body?: unknown) => Promise<Record<string, unknown>>;

export function benchApi(system: { url: string; apiToken: string }): BenchApi {
  return async (method, path, body) => {
    const response = await fetch(`${system.url}/api/v1${path}`, {
      method,
      headers: {
        authorization: `Bearer ${system.apiToken}`,
        ...(body ? { 'content-type': 'application/json' } : {}),
      },
      ...(body ? { body: JSON.stringify(body) } : {}),
    });
    return (await response.json()) as Record<string, unknown>;
  };
}

/** Waits until pool `poolId` is active on a node (every node it is assigned to, with `all`). */
export async function poolActive(api: BenchApi, poolId: string, timeoutMs = 120_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const pool = await api('GET', `/pools/${poolId}`);
    if ((pool.nodeStates as { status: string }[] | undefined)?.[0]?.status === 'active') return;
    if (Date.now() > deadline) throw new Error(`pool ${poolId} did not become active`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** Follows an image until it is ready (an error, or the deadline, throws). */
export async function imageReady(
  api: BenchApi,
  started: Record<string, unknown>,
  timeoutMs = 300_000,
): Promise<Record<string, unknown>> {
  const deadline = Date.now() + timeoutMs;
  let image = started;
  while (image.phase !== 'ready') {
    if (image.phase === 'error' || Date.now() > deadline) throw new Error(`image: ${JSON.stringify(image)}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
    image = await api('GET', `/images/${started.id}`);
  }
  return image;
}

/** Downloads catalog entry `catalogId` into pool `poolId` and waits until it is ready. */
export async function downloadReady(
  api: BenchApi,
  catalogId: string,
  poolId: string,
): Promise<Record<string, unknown>> {
  await poolActive(api, poolId);
  return imageReady(api, await api('POST', '/images/download', { catalogId, poolId }));
}
