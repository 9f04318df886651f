import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  CatalogRegistry,
  createPoolRootPolicy,
  FileInspectorToken,
  ImageCatalogToken,
  type PoolRootPolicy,
  type PoolTypeDefinition,
  PoolTypeToken,
  poolTypesByName,
  type Quantix,
} from '@quantix/core';
import type { Logger } from 'pino';
import { NodeHub, type NodeHubOptions } from './hub/node-hub.js';
import { DownloadService } from './images/downloads.js';
import { type DownloadExecutor, NodeDownloadExecutor } from './images/executors.js';
import { ImageService } from './images/image-service.js';
import { UploadService } from './images/uploads.js';
import { PoolService } from './pools/pool-service.js';
import { ReplicaListener } from './replicas/listener.js';
import { PoolFanout } from './replicas/pool-fanout.js';
import { ReplicaRegistry, type ReplicaRegistryOptions } from './replicas/replica-registry.js';
import { NodeRequestRelay } from './replicas/request-relay.js';
import { VmService } from './vms/vm-service.js';

export interface CreateControlPlaneOptions {
  /** The instance: its database, and the plugins whose catalogs, pool types and file inspectors it uses. */
  quantix: Quantix;
  logger?: Logger;
  /** Where pool roots may be (default /var/lib/quantix and /srv). */
  poolRoots?: PoolRootPolicy;
  /** Pool types pools may have (default: what the plugins provide through PoolTypeToken). */
  poolTypes?: readonly PoolTypeDefinition[];
  /** Where uploads wait until a node has fetched them (default: under the OS temp directory). */
  stagingDir?: string;
  /** The control plane's URL as nodes reach it, for staged uploads (a node's own report wins). */
  publicUrl?: () => string;
  maxUploadBytes?: number;
  /** How long a busy download waits for a runner after a start or a runner's loss. */
  resumeGraceMs?: number;
  /** Where downloads run: on nodes over the hub (default), or an executor of your own. */
  downloadExecutor?: (hub: NodeHub) => DownloadExecutor;
  hub?: Omit<NodeHubOptions, 'repositories' | 'events' | 'logger' | 'leases'>;
  /**
   * This process as one replica among those sharing the database: its id (default a new UUID
   * per start), version, and how long its node leases last (default 15 s).
   */
  replica?: Omit<ReplicaRegistryOptions, 'knex' | 'logger' | 'onNodesLost'>;
}

export interface ControlPlaneServices {
  /** Node connections: attach each authenticated node's channel here. */
  hub: NodeHub;
  /** This replica, the others alive, and who holds which node. */
  replicas: ReplicaRegistry;
  pools: PoolService;
  images: ImageService;
  downloads: DownloadService;
  uploads: UploadService;
  vms: VmService;
  /** Every catalog the plugins provide, merged. */
  catalog: CatalogRegistry;
  /** Call once at start, before nodes connect: what a previous run left is reconciled (staged uploads removed). */
  start(): Promise<void>;
  /** Closes the hub and stops downloads without failing their rows (the next start resumes them). */
  close(): Promise<void>;
}

/**
 * The control plane as a library: every workflow — node connections and pool sync, pools,
 * images (downloads, uploads, scans, deletion), VMs — wired on one Quantix instance. No
 * transport: an app attaches node channels to `hub` and serves what it likes (the example app
 * serves HTTP and a WebSocket).
 */
export function createControlPlane(options: CreateControlPlaneOptions): ControlPlaneServices {
  const { quantix } = options;
  const logger = options.logger ?? quantix.logger.child({ component: 'control-plane' });
  const { repositories, events } = quantix;
  const catalog = new CatalogRegistry({ catalogs: quantix.getAll(ImageCatalogToken) });
  const poolTypes = options.poolTypes ?? quantix.getAll(PoolTypeToken);
  poolTypesByName(poolTypes); // two definitions of one type fail start-up
  let hub: NodeHub | undefined;
  const listener = new ReplicaListener({ database: quantix.database, logger });
  const replicas = new ReplicaRegistry({
    knex: quantix.database.knex,
    logger,
    version: 'unknown',
    ...options.replica,
    onNodesLost: (nodeIds) => hub?.letGo(nodeIds),
  });
  const relay = new NodeRequestRelay({
    knex: quantix.database.knex,
    listener,
    replicaId: replicas.replicaId,
    logger,
    holderOf: (nodeId) => replicas.holderOf(nodeId),
    requestLocal: (nodeId, request, timeoutMs) =>
      (hub as NodeHub).request(nodeId, request as never, { timeoutMs, localOnly: true }),
  });
  hub = new NodeHub({ repositories, events, logger, ...options.hub, leases: replicas, remote: relay });
  const downloads = new DownloadService({
    repositories,
    catalog,
    executor: options.downloadExecutor?.(hub) ?? new NodeDownloadExecutor({ hub, repositories }),
    events,
    logger,
    ...(options.resumeGraceMs !== undefined ? { resumeGraceMs: options.resumeGraceMs } : {}),
  });
  const uploads = new UploadService({
    repositories,
    hub,
    logger,
    stagingDir: options.stagingDir ?? join(tmpdir(), 'quantix-uploads'),
    publicUrl: options.publicUrl ?? (() => ''),
    inspectors: quantix.getAll(FileInspectorToken),
    ...(options.maxUploadBytes !== undefined ? { maxBytes: options.maxUploadBytes } : {}),
  });
  const fanout = new PoolFanout({
    listener,
    replicaId: replicas.replicaId,
    logger,
    pushToOwnNodes: () => hub.pushPoolsToAll(),
  });
  return {
    hub,
    replicas,
    pools: new PoolService({
      repositories,
      fanout,
      poolTypes,
      poolRoots: options.poolRoots ?? createPoolRootPolicy(),
    }),
    images: new ImageService({ repositories, hub, isDownloading: (id) => downloads.isRunning(id) }),
    downloads,
    uploads,
    vms: new VmService({ repositories, hub, events, logger }),
    catalog,
    async start() {
      await replicas.start();
      await listener.start();
      await uploads.removeLeftovers();
      await hub.reconcileOnStart();
      await downloads.reconcileOnStart();
    },
    async close() {
      await downloads.close();
      await hub.close();
      await listener.stop();
      // Last: the leases go, so the nodes this replica held may be held elsewhere at once.
      await replicas.stop();
    },
  };
}
