// Defined in core (clients read them too), exported here as before.
export { GOLDEN_LABELS } from '@quantix/core';
export {
  type ControlPlaneServices,
  type CreateControlPlaneOptions,
  createControlPlane,
  DEFAULT_RESCAN_SECONDS,
  DEFAULT_VM_STATE_SECONDS,
  DOWNLOAD_RECOVERY_QUEUE,
  HEALTH_SWEEP_QUEUE,
  POOL_RESCAN_QUEUE,
  POOL_SCAN_QUEUE,
  VM_STATE_SYNC_QUEUE,
} from './control-plane.js';
export { ControlPlaneErrorCode } from './errors.js';
export { EventFeed, type EventFeedOptions } from './events/event-feed.js';
export { type LiveEvent, type LiveEventListener, LiveEvents, type LiveEventsOptions } from './events/live-events.js';
export { type NodeChannel, type WebSocketChannelOptions, type WebSocketLike, webSocketChannel } from './hub/channel.js';
export {
  NodeHub,
  type NodeHubOptions,
  type NodeLeases,
  type NodeRequestOptions,
  type NodeTokenRead,
  type RemoteNodeRequests,
} from './hub/node-hub.js';
export { DEFAULT_NODE_QUEUE_LIMITS, type NodeQueueLimits } from './hub/node-queue.js';
export { IdempotencyStore, type IdempotentStart, type StoredAnswer } from './idempotency/idempotency-store.js';
export {
  AVAILABILITY,
  type Availability,
  type AvailableImage,
  type AvailableImagesPage,
  listAvailableImages,
  MAX_AVAILABLE_PAGE,
} from './images/available.js';
export {
  COPIED_FROM_LABEL,
  COPY_METHOD_LABEL,
  type CopySources,
  createInProcessDownloads,
  type DownloadHandle,
  DownloadService,
  type DownloadServiceOptions,
  type ReconcileResult,
  type RemoteDownloads,
  type StartDownloadOptions,
} from './images/downloads.js';
export {
  type DownloadExecutor,
  type DownloadProgressUpdate,
  type DownloadRequest,
  type LocalCopyRequest,
  LocalDownloadExecutor,
  NodeDownloadExecutor,
} from './images/executors.js';
export {
  type ByteRange,
  type ExportableImage,
  ImageExportService,
  type ImageExportServiceOptions,
} from './images/exports.js';
export {
  GOLDEN_CHECK_QUEUE,
  GOLDEN_TICK_QUEUE,
  type GoldenCheck,
  type GoldenCheckOutcome,
  type GoldenFollow,
  GoldenImageService,
  type GoldenImageServiceOptions,
  type GoldenRevision,
  type KeptInUse,
  nextRunOf,
} from './images/golden.js';
export {
  ImageService,
  type ImageWithPath,
  isQuantixLabel,
  type RescanResult,
  type UpdateImageInput,
  updateImageSchema,
  type VerifyOutcome,
  type VerifyResult,
} from './images/image-service.js';
export type { DownloadSource } from './images/source.js';
export {
  DEFAULT_MAX_UPLOAD_BYTES,
  STAGED_ON_LABEL,
  stagingDiskFull,
  UPLOAD_KINDS,
  type UploadKind,
  UploadService,
  type UploadServiceOptions,
  type UploadTarget,
} from './images/uploads.js';
export { InProcessJobQueue } from './jobs/in-process-queue.js';
export {
  DEFAULT_QUEUE_DEFINITION,
  type Job,
  type JobHandler,
  type JobInfo,
  type JobQueue,
  type JobState,
  type QueueDefinition,
  type SendOptions as JobSendOptions,
} from './jobs/job-queue.js';
export { PgBossJobQueue, type PgBossJobQueueOptions } from './jobs/pg-boss-queue.js';
export { NodeService } from './nodes/node-service.js';
export { imagePathOnNode, nodesWithActivePool } from './nodes/placement.js';
export { PoolService, type PoolWithStates } from './pools/pool-service.js';
export { type DesiredPools, PoolSyncService } from './pools/pool-sync.js';
export { ReplicaListener } from './replicas/listener.js';
export { type ReplicaInfo, ReplicaRegistry, type ReplicaRegistryOptions } from './replicas/replica-registry.js';
export { NodeRequestRelay, type ReplicaCall } from './replicas/request-relay.js';
export {
  bearerToken,
  newToken,
  SignedTickets,
  SingleUseTickets,
  ticketKeyFingerprint,
  ticketKeyFrom,
  tokenDigest,
  tokenMatches,
} from './tokens.js';
export { ConsoleService, type ConsoleServiceOptions, type ConsoleTicket } from './vms/console-service.js';
export { checkVmImage, type VmImageCheck } from './vms/preflight.js';
export {
  type CreateVmInput,
  createVmSchema,
  DEFAULT_VM_STOP_TIMEOUT_SECONDS,
  type ResizeVmInput,
  resizeVmSchema,
  type VmDefaults,
  type VmDetail,
  type VmMediaOnNode,
  VmService,
  type VmStopOptions,
} from './vms/vm-service.js';
