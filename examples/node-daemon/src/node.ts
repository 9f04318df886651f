import { hostname as osHostname } from 'node:os';
import { resolve } from 'node:path';
import { createPoolRootPolicy, createQuantix, type HostInfo, HypervisorToken, LocalCommandRunner } from '@quantix/core';
import { createImagesCloudPlugin, type SourcePolicy } from '@quantix/images-cloud';
import { createImagesIsoPlugin } from '@quantix/images-iso';
import { createNodeAgent, createNodeRuntimePlugin, type NodeAgent } from '@quantix/node-runtime';
import { createStorageLocalPlugin } from '@quantix/storage-local';
import { createStorageNfsPlugin } from '@quantix/storage-nfs';
import type { Logger } from 'pino';
import { ControlPlaneConnection } from './connection.js';
import { type Endpoint, parseControlPlaneUrls } from './endpoints.js';
import type { VirtType } from './options.js';

export const AGENT_VERSION = '0.1.0';

export interface NodeDaemonOptions {
  /**
   * The control plane, http(s)://host:port: every replica's URL, or one name that resolves to
   * them all. The node keeps one connection, to any of them, and moves when it drops.
   */
  urls: readonly string[];
  nodeId: string;
  token: string;
  /** Where `token` was read from: read again before each dial (ControlPlaneConnectionOptions.tokenFile). */
  tokenFile?: string;
  hostname?: string;
  /** libvirt URI for VMs; null runs the node without VMs (pools, scans and downloads only). */
  libvirtUri?: string | null;
  /** kvm, qemu (TCG) or auto (kvm when libvirt offers it; the default). */
  virtType?: VirtType;
  /** Extra download sources allowed although they are private/loopback addresses (a local mirror). */
  allowSourceAddresses?: readonly string[];
  /** Where NFS pools without a configured mount point are mounted. */
  nfsMountRoot?: string;
  /** Replaces /proc/self/mountinfo (tests on machines without an NFS client). */
  mountTablePath?: string;
  /**
   * Directories pool roots may be in on this node (`--pool-root`, QUANTIX_POOL_ROOTS). Default
   * /var/lib/quantix and /srv. A pushed pool outside them is refused and reported `error`.
   */
  poolRoots?: readonly string[];
  /** Directories no pool may be, contain or lie in beyond the system ones (an all-in-one data dir). */
  protectedPaths?: readonly string[];
  logger: Logger;
  initialBackoffMs?: number;
  maxBackoffMs?: number;
  /** How often the node checks its pools again between pushes (default 30 s). */
  poolRecheckIntervalMs?: number;
}

export interface NodeDaemon {
  agent: NodeAgent;
  connection: ControlPlaneConnection;
  /** Why VMs are not available on this node, or null when they are. */
  hypervisorProblem: string | null;
  close(): Promise<void>;
}

/**
 * The allowed pool roots from `--pool-root` flags, else QUANTIX_POOL_ROOTS (colon-separated), each
 * made absolute against the working directory; nothing when neither is set (the default applies).
 */
export function poolRootsOption(
  flags: readonly string[] | undefined,
  env: string | undefined,
): { poolRoots?: string[] } {
  const given = flags?.length ? flags : (env ?? '').split(':').filter((root) => root.trim() !== '');
  return given.length > 0 ? { poolRoots: given.map((root) => resolve(root)) } : {};
}

/** Whether libvirt answers at `uri`: null when it does, else why not (as virsh says). */
export async function probeLibvirt(runner: LocalCommandRunner, uri: string): Promise<string | null> {
  try {
    await runner.run({ argv: ['virsh', '-c', uri, 'version'], timeoutMs: 10_000 });
    return null;
  } catch (error) {
    return (error as Error).message;
  }
}

/**
 * A node daemon: the node agent (storage backends, downloads, ISO inspection, libvirt VMs)
 * behind one connection to the control plane. It keeps no state of its own: everything it
 * needs arrives in the pool push that follows every (re)connect.
 */
export async function startNodeDaemon(options: NodeDaemonOptions): Promise<NodeDaemon> {
  const { logger } = options;
  // Uploads are fetched from the control plane's staged-upload endpoint: exactly that, by URL —
  // not its host, which would open every other service on it.
  const urls = parseControlPlaneUrls(options.urls);
  const policy: SourcePolicy = {
    // Staged uploads, and image content for copies between nodes (a copy ticket opens one image's content;
    // nothing else under /images/ answers without the API token, which a node never holds).
    allowUrlPrefixes: urls.flatMap((url) => [
      new URL('/api/v1/uploads/', url).href,
      new URL('/api/v1/images/', url).href,
    ]),
    allowAddresses: [...(options.allowSourceAddresses ?? [])],
  };
  // Fails start-up on a bad --pool-root, naming it, rather than every pool later.
  const rootPolicy = createPoolRootPolicy({
    ...(options.poolRoots ? { allowedRoots: options.poolRoots } : {}),
    ...(options.protectedPaths ? { protectedPaths: options.protectedPaths } : {}),
  });

  let hypervisorProblem: string | null = 'VMs are turned off for this node';
  if (options.libvirtUri) {
    const probe = new LocalCommandRunner();
    hypervisorProblem = await probeLibvirt(probe, options.libvirtUri);
    await probe.close();
    if (hypervisorProblem !== null) {
      logger.warn(
        { uri: options.libvirtUri, reason: hypervisorProblem },
        'libvirt is not reachable: this node runs without VMs',
      );
    }
  }

  // The node is what its plugins provide: storage, downloads, ISO reading, and VMs when libvirt
  // answers. It keeps no database: everything it needs arrives in the pool push of each connect.
  const node = await createQuantix({
    database: false,
    logger,
    plugins: [
      createStorageLocalPlugin({ rootPolicy }),
      createStorageNfsPlugin({
        rootPolicy,
        ...(options.nfsMountRoot ? { mountRoot: options.nfsMountRoot } : {}),
        ...(options.mountTablePath ? { mountInfoPath: options.mountTablePath } : {}),
      }),
      createImagesCloudPlugin({ builtinCatalog: false, fetcher: { policy } }),
      createImagesIsoPlugin(),
      ...(options.libvirtUri && hypervisorProblem === null
        ? [createNodeRuntimePlugin({ libvirt: { uri: options.libvirtUri, virtType: options.virtType ?? 'auto' } })]
        : []),
    ],
  });
  const host: HostInfo | null = node.has(HypervisorToken)
    ? ((await node
        .get(HypervisorToken)
        .hostInfo?.()
        .catch((error) => {
          logger.warn({ err: error }, 'the host’s CPUs and memory could not be read; VM sizes are not checked');
          return null;
        })) ?? null)
    : null;
  const agent = createNodeAgent(node, {
    nodeId: options.nodeId,
    poolRoots: rootPolicy,
    logger,
    ...(options.poolRecheckIntervalMs !== undefined ? { poolRecheckIntervalMs: options.poolRecheckIntervalMs } : {}),
    // A console is relayed over a socket of its own to the replica this node is connected to.
    openConsoleChannel: (sessionId, relayUrl) => connection.openConsoleChannel(sessionId, relayUrl),
    // An exported file is streamed over a connection of its own too, never the protocol's.
    openExportChannel: (sessionId, lengthBytes, relayUrl) =>
      connection.openExportChannel(sessionId, lengthBytes, relayUrl),
  });
  const hostname = options.hostname ?? osHostname();
  // Built on every (re)connect: it carries the downloads the agent has in hand. controlPlaneUrl:
  // where this node reaches the control plane it is connected to, so that what it is told to
  // fetch from there (staged uploads) uses that address, whatever the control plane listens on.
  const hello = (endpoint: Endpoint) => {
    const message = agent.hello({ hostname, agentVersion: AGENT_VERSION });
    const controlPlaneUrl = endpoint.url.origin;
    return { ...message, capabilities: { ...message.capabilities, hypervisorProblem, host, controlPlaneUrl } };
  };
  const connection = new ControlPlaneConnection({
    urls: options.urls,
    nodeId: options.nodeId,
    token: options.token,
    ...(options.tokenFile ? { tokenFile: options.tokenFile } : {}),
    hostname,
    agentVersion: AGENT_VERSION,
    hello,
    handler: { handle: (message, send) => agent.handle(message, send) },
    logger,
    ...(options.initialBackoffMs !== undefined ? { initialBackoffMs: options.initialBackoffMs } : {}),
    ...(options.maxBackoffMs !== undefined ? { maxBackoffMs: options.maxBackoffMs } : {}),
  });
  connection.start();
  return {
    agent,
    connection,
    hypervisorProblem,
    async close() {
      await connection.close();
      await agent.close();
      await node.close();
    },
  };
}
