/**
 * A whole Quantix system for end-to-end tests, from real parts: the all-in-one control plane on
 * embedded PGlite, its node agent connected over a real WebSocket, a local pool in a temporary
 * directory, libvirt (qemu:///system, started by scripts/services.sh), and a real HTTP server
 * serving real qcow2 images with a SHA256SUMS file as the catalog's mirror. One catalog image
 * is downloaded before the tests get the system; another is left for them to download.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { newToken, tokenDigest } from '@quantix/control-plane';
import type { Quantix } from '@quantix/core';
import { waitFor as waitUntil } from '@quantix/core/testing';
import { startNodeDaemon } from '@quantix/example-node-daemon';
import type { VirtType } from '@quantix/example-node-daemon/options';
import { type ImageServer, makeQcow2, sha256Sums, startImageServer } from '@quantix/images-cloud/testing';
import { Command } from 'commander';
import { pino } from 'pino';
import { apiCommands } from '../src/cli/commands.js';
import { LOCAL_NODE_ID, LOCAL_POOL_ID, startAllInOne } from '../src/cli/up.js';

const run = promisify(execFile);
const repoRoot = join(import.meta.dirname, '../../..');

export interface TestSystem {
  url: string;
  token: string;
  nodeId: string;
  poolId: string;
  catalog: { readyId: string; notDownloadedId: string };
  /** The mirror serving the catalog's images (its behaviour can be changed: pace, failures). */
  mirror: ImageServer;
  dataDir: string;
  /** Calls the API with the token; returns status and parsed body. */
  api: ApiCall;
  stop(): Promise<void>;
}

export interface StartSystemOptions {
  /** Pace of the mirror, so a download can be watched (default 1 MiB/s). */
  mirrorBytesPerSecond?: number;
  /** Data MiB written into each qcow2 (default 3). */
  imageMiB?: number;
  /** How often VM records are checked against libvirt (the control plane's default when left out). */
  vmStateSeconds?: number;
  /** How the local node's VMs run (`quantix up --virt-type`; default auto). */
  virtType?: VirtType;
}

/** Installs and starts what the system needs (libvirtd, image tools) through the project's script. */
export async function ensureSystemServices(): Promise<void> {
  await run('bash', [join(repoRoot, 'scripts/services.sh'), 'libvirt'], { timeout: 900_000 });
}

/** A catalog entry for qcow2 `file` under `<mirror>/images/`, checked against its SHA256SUMS there. */
export function mirrorEntry(mirrorUrl: string, id: string, name: string, file: string) {
  return {
    id,
    name,
    description: `${name}, served by the test mirror`,
    kind: 'cloud' as const,
    format: 'qcow2' as const,
    os: {
      family: 'linux' as const,
      distribution: 'tiny',
      version: '1',
      arch: 'x86_64',
      defaultUser: 'tiny',
      cloudInit: true,
    },
    requirements: { minCpu: 1, minMemoryMiB: 64, minDiskGiB: 1, firmware: 'any' as const },
    sourceUrl: `${mirrorUrl}/images/${file}`,
    checksumUrl: `${mirrorUrl}/images/SHA256SUMS`,
    checksumAlgorithm: 'sha256' as const,
  };
}

export async function startSystem(options: StartSystemOptions = {}): Promise<TestSystem> {
  await ensureSystemServices();
  const dataDir = await mkdtemp(join(tmpdir(), 'quantix-e2e-'));
  const mirror = await startImageServer();
  const imageMiB = options.imageMiB ?? 3;
  const ready = await makeQcow2(dataDir, 'tiny-ready.qcow2', imageMiB);
  const later = await makeQcow2(dataDir, 'tiny-later.qcow2', imageMiB);
  mirror.setFile('/images/tiny-ready.qcow2', ready);
  mirror.setFile('/images/tiny-later.qcow2', later);
  mirror.setFile('/images/SHA256SUMS', sha256Sums({ 'tiny-ready.qcow2': ready, 'tiny-later.qcow2': later }));
  const entry = (id: string, name: string, file: string) => mirrorEntry(mirror.url, id, name, file);
  const system = await startAllInOne({
    dataDir,
    host: '127.0.0.1',
    port: 0,
    libvirtUri: 'qemu:///system',
    entries: [
      entry('e2e-tiny-ready', 'Tiny Linux (ready)', 'tiny-ready.qcow2'),
      entry('e2e-tiny-later', 'Tiny Linux (to download)', 'tiny-later.qcow2'),
    ],
    allowSourceAddresses: ['127.0.0.1'],
    ...(options.vmStateSeconds !== undefined ? { vmStateSeconds: options.vmStateSeconds } : {}),
    ...(options.virtType !== undefined ? { virtType: options.virtType } : {}),
    log: () => {},
  });
  const api = apiCaller(() => system.url, system.apiToken);
  const stop = async () => {
    await system.close();
    await mirror.close();
    await rm(dataDir, { recursive: true, force: true });
  };
  try {
    await waitFor(
      async () => (await api('GET', `/pools/${LOCAL_POOL_ID}`)).body?.nodeStates?.[0]?.status === 'active',
      'the local pool to be active',
    );
    const started = await api('POST', '/images/download', { catalogId: 'e2e-tiny-ready', poolId: LOCAL_POOL_ID });
    if (started.status !== 202) throw new Error(`download did not start: ${JSON.stringify(started.body)}`);
    await waitFor(
      async () => {
        const image = (await api('GET', `/images/${started.body.id}`)).body;
        if (image.phase === 'error') throw new Error(`the ready image failed to download: ${image.error?.message}`);
        return image.phase === 'ready';
      },
      'the first catalog image to be ready',
      60_000,
    );
    mirror.behaviour.bytesPerSecond = options.mirrorBytesPerSecond ?? 1024 * 1024;
  } catch (error) {
    await stop();
    throw error;
  }
  return {
    url: system.url,
    token: system.apiToken,
    nodeId: LOCAL_NODE_ID,
    poolId: LOCAL_POOL_ID,
    catalog: { readyId: 'e2e-tiny-ready', notDownloadedId: 'e2e-tiny-later' },
    mirror,
    dataDir,
    api,
    stop,
  };
}

/**
 * The all-in-one control plane without libvirt (its node agent and local pool only), in
 * `dataDir`, once its local pool is active: for tests of images and uploads, which need no VMs.
 */
export async function startStorageSystem(dataDir: string) {
  const system = await startAllInOne({ dataDir, host: '127.0.0.1', port: 0, libvirtUri: null, log: () => {} });
  const api = apiCaller(() => system.url, system.apiToken);
  try {
    await waitFor(
      async () => (await api('GET', `/pools/${LOCAL_POOL_ID}`)).body?.nodeStates?.[0]?.status === 'active',
      'the local pool to be active',
    );
  } catch (error) {
    await system.close();
    throw error;
  }
  return { system, api };
}

/**
 * Calls a control plane's API with a bearer token; returns status and parsed body. `baseUrl` is
 * read per call, so a test can make the caller before its control plane has a port.
 */
/** A call of the API: `token` undefined sends the caller's token, null none, a string that one. */
export type ApiCall = (
  method: string,
  path: string,
  body?: unknown,
  token?: string | null,
  // biome-ignore lint/suspicious/noExplicitAny: tests read whatever the route answers
) => Promise<{ status: number; body: any }>;

/**
 * The one way tests call the API: JSON in and out, the token as a bearer header, and a deadline
 * (`timeoutMs`, 60 s by default) so a hung request fails the test instead of hanging it.
 */
export function apiCaller(baseUrl: () => string, token: string, options: { timeoutMs?: number } = {}): ApiCall {
  return async (method, path, body, callToken) => {
    const bearer = callToken === undefined ? token : callToken;
    const response = await fetch(`${baseUrl()}/api/v1${path}`, {
      method,
      headers: {
        ...(bearer !== null ? { authorization: `Bearer ${bearer}` } : {}),
        ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
      },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      signal: AbortSignal.timeout(options.timeoutMs ?? 60_000),
    });
    const text = await response.text();
    return { status: response.status, body: text ? JSON.parse(text) : null };
  };
}

/** core/testing's waitFor with the probe first, as these tests call it, 20 s, an API call per 100 ms. */
/**
 * The CLI's API commands, run in this process through the typed client against `url` with the
 * API token in `tokenFile`: each call is one command, and answers what it printed.
 */
export function inProcessCli(url: () => string, tokenFile: string): (...args: string[]) => Promise<string> {
  return async (...args) => {
    const printed: string[] = [];
    const program = new Command('quantix').exitOverride();
    apiCommands(program, (text) => printed.push(text));
    await program.parseAsync(['--url', url(), '--token-file', tokenFile, ...args], { from: 'user' });
    return printed.join('\n');
  };
}

export async function waitFor(probe: () => Promise<boolean>, what: string, timeoutMs = 20_000): Promise<void> {
  await waitUntil(what, probe, timeoutMs, 100);
}

/**
 * A real node daemon `n1` registered with the control plane at `controlPlaneUrl`, connected, and a
 * local pool `p1` under `root` assigned to it and active there: the smallest system a download
 * can run on. The daemon may fetch from `allowSourceAddresses`. `nodeId` and `poolId` name
 * another node and pool (its directory `<root>/<poolId>`), for systems of several nodes.
 */
export async function startNodeWithPool(options: {
  quantix: Quantix;
  controlPlaneUrl: string;
  api: TestSystem['api'];
  root: string;
  allowSourceAddresses: string[];
  nodeId?: string;
  poolId?: string;
}): Promise<Awaited<ReturnType<typeof startNodeDaemon>>> {
  const { quantix, api, root } = options;
  const nodeId = options.nodeId ?? 'n1';
  const poolId = options.poolId ?? 'p1';
  await quantix.repositories.nodes.create({ id: nodeId, hostname: nodeId });
  const token = newToken();
  await quantix.repositories.nodes.setTokenDigest(nodeId, tokenDigest(token));
  const node = await startNodeDaemon({
    urls: [options.controlPlaneUrl],
    nodeId,
    token,
    libvirtUri: null,
    allowSourceAddresses: options.allowSourceAddresses,
    poolRoots: [root],
    logger: pino({ level: 'silent' }),
    initialBackoffMs: 50,
  });
  await node.connection.ready;
  const pool = await api('POST', '/pools', {
    id: poolId,
    name: poolId,
    type: 'local',
    config: { path: join(root, options.poolId ? poolId : 'pool'), create: true },
    nodeIds: [nodeId],
  });
  if (pool.status !== 201) throw new Error(`pool ${poolId} was not made: ${JSON.stringify(pool.body)}`);
  await waitFor(
    async () => (await api('GET', `/pools/${poolId}`)).body.nodeStates[0]?.status === 'active',
    `pool ${poolId}`,
  );
  return node;
}
