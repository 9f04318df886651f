import { randomUUID } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  CatalogRegistry,
  createPoolRootPolicy,
  ErrorCode,
  type FileInspector,
  FileInspectorToken,
  type Image,
  ImageCatalogToken,
  ImageFetcherToken,
  OsDatabaseToken,
  type PoolRootPolicy,
  type PoolTypeDefinition,
  PoolTypeToken,
  poolTypesByName,
  type Quantix,
  QuantixError,
} from '@quantix/core';
import type { Logger } from 'pino';
import { LiveEvents } from './events/live-events.js';
import { NodeHub, type NodeHubOptions } from './hub/node-hub.js';
import { IdempotencyStore } from './idempotency/idempotency-store.js';
import { DownloadService } from './images/downloads.js';
import { type DownloadExecutor, NodeDownloadExecutor } from './images/executors.js';
import { ImageExportService } from './images/exports.js';
import { checksumReaderFor, GoldenImageService } from './images/golden.js';
import { ImageService } from './images/image-service.js';
import { controlPlaneUrlFor, UploadService } from './images/uploads.js';
import { InProcessJobQueue } from './jobs/in-process-queue.js';
import { type JobQueue, jobIdOf } from './jobs/job-queue.js';
import { PgBossJobQueue } from './jobs/pg-boss-queue.js';
import { NodeService } from './nodes/node-service.js';
import { nodesWithActivePool } from './nodes/placement.js';
import { PoolService } from './pools/pool-service.js';
import { ReplicaListener } from './replicas/listener.js';
import { PoolFanout } from './replicas/pool-fanout.js';
import { ReplicaRegistry, type ReplicaRegistryOptions } from './replicas/replica-registry.js';
import { NodeRequestRelay, type ReplicaCall } from './replicas/request-relay.js';
import { ticketKeyFingerprint } from './tokens.js';
import { ConsoleService } from './vms/console-service.js';
import { VmChecksOnConnect } from './vms/vm-checks-on-connect.js';
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
  /** Inspectors that read uploads only (not scans), after the plugins' ones: e.g. a disk-image reader. */
  uploadInspectors?: readonly FileInspector[];
  /** How long a busy download waits for a runner after a start or a runner's loss. */
  resumeGraceMs?: number;
  /**
   * A secret every replica shares (`ticketKeyFrom(apiToken)`, say), with which download and copy
   * tickets are signed: any replica then accepts a ticket another minted. Without it, a random
   * key of this process: its tickets work on this replica only.
   */
  ticketKey?: Buffer;
  /** Where downloads run: on nodes over the hub (default), or an executor of your own. */
  downloadExecutor?: (hub: NodeHub) => DownloadExecutor;
  hub?: Omit<NodeHubOptions, 'repositories' | 'events' | 'logger' | 'leases'>;
  /**
   * This process as one replica among those sharing the database: its id (default a new UUID
   * per start), version, and how long its node leases last (default 15 s).
   */
  replica?: Omit<ReplicaRegistryOptions, 'knex' | 'logger' | 'onNodesLost' | 'onNodesRemoved' | 'keyFingerprint'>;
  /**
   * The durable job queue (default: pg-boss on PostgreSQL, shared by the replicas; an in-process
   * queue on PGlite, where this is the only replica). Started and stopped with the control plane.
   */
  jobs?: JobQueue;
  /** How often the health sweep runs, on one replica at a time (default 5 s). */
  sweepSeconds?: number;
  /** How often due golden-image schedules are looked for (default 30 s): a schedule's granularity. */
  goldenTickSeconds?: number;
  /**
   * How often every pool is scanned again, for ISOs and disk images (default 300 s; 0: only
   * after a node's pool sync and when asked, `ImageService.rescan`): one replica at a time queues
   * the scans, any runs them. Files copied into a pool or removed from it by hand — on an NFS
   * share, by another host — show without anyone asking. A rescan of a pool nothing changed in
   * costs its listing: the node sends what changed since the scan before. The first period after
   * a start is left to the scans after each node's sync.
   */
  rescanSeconds?: number;
  /**
   * How often the records of VMs are checked against their nodes' hypervisors (default 30 s; 0:
   * never), one replica at a time (`VmService.syncStates`): a guest that powered itself off, a
   * domain stopped, started or removed outside Quantix shows within a period. The VMs of a node
   * are checked too as soon as it connects (its host rebooted, say); 0 turns both off.
   */
  vmStateSeconds?: number;
  /**
   * How long a VM stop waits for the guest to power off after the ACPI shutdown, when the request
   * gives no timeout (default 60 s); then it fails with VM_DID_NOT_STOP, or powers off with force.
   * Guests that take long to shut down (Windows updating, say) want more.
   */
  vmStopTimeoutSeconds?: number;
  /** Least time between two live progress events of one image (default 250 ms). */
  liveProgressIntervalMs?: number;
}

/** The health sweep's queue: periodic, one replica at a time. */
export const HEALTH_SWEEP_QUEUE = 'quantix-health-sweep';
/** One job per quiet download (row and version) the sweep found: recovered once, on one replica. */
export const DOWNLOAD_RECOVERY_QUEUE = 'quantix-download-recovery';
/**
 * The scan of a pool on a node after it reported the pool active (once per link and pool version),
 * and the periodic rescans (once per pool, node and period).
 */
export const POOL_SCAN_QUEUE = 'quantix-pool-scan';
/** The periodic rescan of every ISO pool: one replica at a time. */
export const POOL_RESCAN_QUEUE = 'quantix-pool-rescan';
/** Default of CreateControlPlaneOptions.rescanSeconds. */
export const DEFAULT_RESCAN_SECONDS = 300;
/** The periodic check of VMs' records against their nodes: one replica at a time. */
export const VM_STATE_SYNC_QUEUE = 'quantix-vm-state-sync';
/** Default of CreateControlPlaneOptions.vmStateSeconds. */
export const DEFAULT_VM_STATE_SECONDS = 30;

/** A period option, checked: a whole number of seconds, 0 for none of the periodic `what`. */
function periodSeconds(option: string, seconds: number, what: string): number {
  if (!Number.isInteger(seconds) || seconds < 0) {
    throw new QuantixError(
      ErrorCode.INVALID_INPUT,
      `${option} ${seconds} is not valid: a whole number of seconds, 0 for no periodic ${what}`,
    );
  }
  return seconds;
}

export interface ControlPlaneServices {
  /** Node connections: attach each authenticated node's channel here. */
  hub: NodeHub;
  /** This replica, the others alive, and who holds which node. */
  replicas: ReplicaRegistry;
  /** Registering nodes, their tokens, removing them. */
  nodes: NodeService;
  pools: PoolService;
  images: ImageService;
  downloads: DownloadService;
  uploads: UploadService;
  /** Golden images that follow upstream: schedules, checks, revisions. */
  golden: GoldenImageService;
  vms: VmService;
  /** VM consoles: tickets for viewers, and the relays nodes dial back. */
  consoles: ConsoleService;
  /** What live views are told as it happens, raised on any replica: stream tickets and subscriptions. */
  live: LiveEvents;
  /** Ready images streamed out of their pools, over channels their nodes dial back. */
  exports: ImageExportService;
  /** Durable background work (the health sweep runs on it). */
  jobs: JobQueue;
  /** Answers of writes sent with an idempotency key, for retries on any replica. */
  idempotency: IdempotencyStore;
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
  const rescanSeconds = periodSeconds('rescanSeconds', options.rescanSeconds ?? DEFAULT_RESCAN_SECONDS, 'rescans');
  const vmStateSeconds = periodSeconds('vmStateSeconds', options.vmStateSeconds ?? DEFAULT_VM_STATE_SECONDS, 'checks');
  let hub: NodeHub | undefined;
  const replicaId = options.replica?.replicaId ?? randomUUID();
  const listener = new ReplicaListener({
    database: quantix.database,
    logger,
    applicationName: `quantix-listener ${replicaId}`,
  });
  const replicas = new ReplicaRegistry({
    knex: quantix.database.knex,
    logger,
    version: 'unknown',
    ...options.replica,
    replicaId,
    onNodesLost: (nodeIds) => hub?.letGo(nodeIds),
    onNodesRemoved: (nodeIds) => hub?.letRemovedGo(nodeIds),
    listener,
    // Replicas compare it to find one given another API token (their tickets would not cross).
    ...(options.ticketKey ? { keyFingerprint: ticketKeyFingerprint(options.ticketKey) } : {}),
  });
  const relay = new NodeRequestRelay({
    knex: quantix.database.knex,
    listener,
    replicaId: replicas.replicaId,
    logger,
    holderOf: (nodeId) => replicas.holderOf(nodeId),
    isLive: (replicaId) => replicas.isLive(replicaId),
    requestLocal: (nodeId, request, timeoutMs) =>
      request.op.startsWith('replica.')
        ? doReplicaCall(request as ReplicaCall)
        : (hub as NodeHub).request(nodeId, request as never, { timeoutMs, localOnly: true }),
  });
  // What another replica asks of this one for a node held here: start a download where its
  // progress will arrive (`downloads` is made below; calls come only after start()).
  const doReplicaCall = async (call: ReplicaCall): Promise<unknown> => {
    if (call.op === 'replica.download.start') return (await downloads.start(call.options)).id;
    await downloads.retry(call.imageId, { nodeId: call.nodeId });
    return null;
  };
  /** Requests that start a download on another replica wait for its answer this long. */
  const replicaCallMs = 30_000;
  hub = new NodeHub({ repositories, events, logger, ...options.hub, leases: replicas, remote: relay });
  const exports = new ImageExportService({
    repositories,
    hub,
    logger,
    ...(options.ticketKey ? { ticketKey: options.ticketKey } : {}),
  });
  const downloads = new DownloadService({
    repositories,
    catalog,
    executor: options.downloadExecutor?.(hub) ?? new NodeDownloadExecutor({ hub, repositories }),
    events,
    logger,
    elsewhere: {
      async pick(target, wanted) {
        const pickHeld = async () => {
          const there = { isConnected: (nodeId: string) => replicas.heldElsewhere(nodeId) };
          const usable = await nodesWithActivePool({ repositories, hub: there, ...target });
          if (wanted) return usable.includes(wanted) ? wanted : null;
          return usable[0] ?? null;
        };
        // The holders map is refreshed with each lease renewal: a node that connected to another
        // replica since is not in it yet. Read the leases again before saying nobody can.
        const picked = await pickHeld();
        if (picked) return picked;
        await replicas.heldNodeIdsAnywhere();
        return pickHeld();
      },
      start: async (runner, start) =>
        (await relay.forward(
          runner,
          { op: 'replica.download.start', options: { ...start, nodeId: runner } },
          replicaCallMs,
        )) as string,
      retry: async (runner, imageId) => {
        await relay.forward(runner, { op: 'replica.download.retry', imageId, nodeId: runner }, replicaCallMs);
      },
    },
    ...(options.resumeGraceMs !== undefined ? { resumeGraceMs: options.resumeGraceMs } : {}),
    copies: {
      // The node fetches the source's content from this replica, which minted the ticket.
      async contentUrl(imageId, runner, { ticket }) {
        const base = await controlPlaneUrlFor(repositories, runner, {
          replicaUrl: options.replica?.url,
          publicUrl: options.publicUrl ?? (() => 'http://127.0.0.1'),
        });
        const path = `${base}/api/v1/images/${encodeURIComponent(imageId)}/content`;
        return ticket ? `${path}?ticket=${encodeURIComponent(exports.issueCopyTicket(imageId).ticket)}` : path;
      },
      upstreamChecksum: async (entry) =>
        checksumReaderFor(
          quantix.getAll(ImageFetcherToken),
          entry,
        )({
          sourceUrl: entry.sourceUrl,
          checksumUrl: entry.checksumUrl as string,
          checksumAlgorithm: entry.checksumAlgorithm,
          // A download's start waits for this: a sums file that does not answer soon is skipped.
          signal: AbortSignal.timeout(15_000),
        }),
    },
    // A copy of a file a scan found reads its checksum first (images is made below; called later).
    checksums: { record: async (imageId): Promise<Image> => (await images.verify(imageId)).image },
  });
  const uploads = new UploadService({
    repositories,
    hub,
    logger,
    stagingDir: options.stagingDir ?? join(tmpdir(), 'quantix-uploads'),
    publicUrl: options.publicUrl ?? (() => ''),
    inspectors: [...quantix.getAll(FileInspectorToken), ...(options.uploadInspectors ?? [])],
    replica: { id: replicas.replicaId, url: options.replica?.url },
    events,
    ...(options.maxUploadBytes !== undefined ? { maxBytes: options.maxUploadBytes } : {}),
  });
  const fanout = new PoolFanout({
    listener,
    replicaId: replicas.replicaId,
    logger,
    pushToOwnNodes: () => hub.pushPoolsToAll(),
  });
  const live = new LiveEvents({
    events,
    listener,
    knex: quantix.database.knex,
    replicaId: replicas.replicaId,
    hasPeers: () => replicas.hasPeers,
    logger,
    ...(options.liveProgressIntervalMs !== undefined ? { progressIntervalMs: options.liveProgressIntervalMs } : {}),
  });
  const jobs = options.jobs ?? defaultJobQueue(quantix, logger);
  const idempotency = new IdempotencyStore({
    knex: quantix.database.knex,
    replicaId: replicas.replicaId,
    isLive: (replicaId) => replicas.isLive(replicaId),
  });
  const images = new ImageService({
    repositories,
    hub,
    isDownloading: (id) => downloads.isRunning(id),
    events,
  });
  const golden = new GoldenImageService({
    knex: quantix.database.knex,
    repositories,
    downloads,
    images,
    fetchers: quantix.getAll(ImageFetcherToken),
    jobs,
    logger,
    ...(options.goldenTickSeconds !== undefined ? { tickSeconds: options.goldenTickSeconds } : {}),
  });
  const vms = new VmService({
    repositories,
    hub,
    events,
    logger,
    osDatabase: quantix.has(OsDatabaseToken) ? quantix.get(OsDatabaseToken) : undefined,
    stopTimeoutSeconds: options.vmStopTimeoutSeconds,
  });
  const vmChecksOnConnect = new VmChecksOnConnect({ vms, events, logger });
  const nodes = new NodeService({ repositories, hub, replicas, listener });
  return {
    hub,
    replicas,
    nodes,
    jobs,
    idempotency,
    pools: new PoolService({
      repositories,
      fanout,
      poolTypes,
      poolRoots: options.poolRoots ?? createPoolRootPolicy(),
    }),
    images,
    downloads,
    uploads,
    golden,
    consoles: new ConsoleService({ repositories, knex: quantix.database.knex, hub, logger }),
    live,
    exports,
    vms,
    catalog,
    async start() {
      await replicas.start();
      await listener.start();
      await replicas.announce();
      await uploads.removeLeftovers();
      const liveReplicaIds = async () => new Set((await replicas.liveReplicas()).map((replica) => replica.id));
      await uploads.sweepOrphaned(await liveReplicaIds());
      await hub.reconcileOnStart();
      await downloads.reconcileOnStart();
      await jobs.start();
      await jobs.define(POOL_SCAN_QUEUE, { retryLimit: 3, retryDelaySeconds: 2, retryBackoff: true });
      await jobs.work<{ nodeId: string; poolId: string }>(
        POOL_SCAN_QUEUE,
        (job) => hub.scanPool(job.data.nodeId, job.data.poolId),
        { concurrency: 2 },
      );
      hub.onScanWanted = async ({ nodeId, poolId, key }) => {
        await jobs.send(POOL_SCAN_QUEUE, { nodeId, poolId }, { id: jobIdOf('pool-scan', nodeId, poolId, key) });
      };
      await jobs.define(DOWNLOAD_RECOVERY_QUEUE, { retryLimit: 5, retryDelaySeconds: 2, retryBackoff: true });
      await jobs.work<{ imageId: string; version: number }>(DOWNLOAD_RECOVERY_QUEUE, async (job) => {
        const outcome = await downloads.recover(job.data.imageId, job.data.version);
        if (outcome !== 'unchanged') logger.info({ imageId: job.data.imageId, outcome }, 'recovered a quiet download');
      });
      // What a dead replica leaves — nodes it recorded connected, downloads it ran — is
      // recorded by whichever replica runs the sweep; with one replica, what a lost runner leaves.
      await jobs.every(HEALTH_SWEEP_QUEUE, options.sweepSeconds ?? 5, async () => {
        const nodes = await hub.sweepOrphanedNodes();
        const quiet = await downloads.quietDownloads();
        for (const row of quiet) {
          await jobs.send(DOWNLOAD_RECOVERY_QUEUE, row, {
            id: jobIdOf('download-recovery', row.imageId, String(row.version)),
          });
        }
        const uploadsLost = await uploads.sweepOrphaned(await liveReplicaIds());
        await idempotency.expire();
        if (nodes.length + quiet.length + uploadsLost.length > 0) {
          logger.info({ nodes, quiet, uploadsLost }, 'health sweep: recorded what a lost replica or runner left');
        }
      });
      if (rescanSeconds > 0) {
        const startedAt = Date.now();
        await jobs.every(POOL_RESCAN_QUEUE, rescanSeconds, async () => {
          // A period's first run comes at once; right after a start, nodes are still connecting
          // and each scans its pools after its sync. (Half a period: timers are not exact.)
          if (Date.now() - startedAt < (rescanSeconds * 1000) / 2) return;
          // Queued, not run here: a node that does not answer holds up its own scan only, and
          // the replicas' scan workers share them. One job per pool, node and period.
          const period = String(Math.floor(Date.now() / (rescanSeconds * 1000)));
          // The job scans the content types the pool holds when it runs.
          for (const { nodeId, poolId } of await images.rescanTargets()) {
            await jobs.send(
              POOL_SCAN_QUEUE,
              { nodeId, poolId },
              { id: jobIdOf('pool-rescan', nodeId, poolId, period) },
            );
          }
        });
      }
      if (vmStateSeconds > 0) {
        vmChecksOnConnect.start();
        await jobs.every(VM_STATE_SYNC_QUEUE, vmStateSeconds, async () => {
          const changed = await vms.syncStates();
          if (changed.length > 0) logger.info({ vms: changed.map((vm) => vm.id) }, 'VM records taken from their nodes');
        });
      }
      await golden.start();
    },
    async close() {
      // First: open streams end, so an HTTP server closing after this does not wait on them.
      live.close();
      await jobs.stop({ timeoutMs: 5_000 });
      await downloads.close();
      await hub.close();
      await vmChecksOnConnect.close();
      // What this replica raised until now reaches the others before the database is let go.
      await live.flushed();
      await listener.stop();
      // Last: the leases go, so the nodes this replica held may be held elsewhere at once.
      await replicas.stop();
    },
  };
}

/** pg-boss on the PostgreSQL the instance uses (the replicas share it); in-process on PGlite. */
function defaultJobQueue(quantix: Quantix, logger: Logger): JobQueue {
  const { database } = quantix;
  if (database.client !== 'pg') return new InProcessJobQueue();
  const connection = database.knex.client.config.connection as { connectionString: string };
  return new PgBossJobQueue({ connectionString: connection.connectionString, logger, maxConnections: 2 });
}
