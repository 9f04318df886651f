import { createHash, randomBytes } from 'node:crypto';
import { constants as fsConstants, type Stats } from 'node:fs';
import { copyFile, mkdir, open, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, posix } from 'node:path';
import { type Duplex, pipeline, type Writable } from 'node:stream';
import {
  backendFor,
  type CommandRunner,
  type ConsoleStream,
  type ConsoleType,
  type ControlMessage,
  callBackend,
  checkPoolOnDisk,
  checkPoolRootOnDisk,
  createPoolRootPolicy,
  type DomainState,
  desiredPoolsFingerprint,
  ErrorCode,
  type FileInspector,
  findOverlappingPool,
  foreignFileReference,
  freeBytesAt,
  type HelloDownload,
  type Hypervisor,
  hashFile,
  type IMAGE_FORMATS,
  IMAGE_HEADER_BYTES,
  type ImageConverter,
  type ImageDownloadResult,
  type ImageFetcher,
  type ImageImportResultMessage,
  type InspectedFile,
  isQcow2Header,
  isQuantixError,
  isSendableFileTime,
  isSparseVmdkHeader,
  isVmFileRelPath,
  LocalCommandRunner,
  type NodeMessage,
  type NodeOperation,
  type NodeRequest,
  type NodeResultOf,
  type PluginContext,
  type PoolContentType,
  type PoolFile,
  type PoolReport,
  type PoolRootPolicy,
  type PoolRoots,
  type PoolTypeDefinition,
  PROTOCOL_LIMITS,
  PROTOCOL_VERSION,
  PROTOCOL_VERSIONS,
  type ProtocolPool,
  parseControlMessage,
  poolRootOverlaps,
  QuantixError,
  readFileHead,
  requireRoom,
  type ScanInvalid,
  type ScannedFile,
  type ScanSkipped,
  type StorageBackend,
  type StoragePool,
  scanEntryHash,
  scanFingerprint,
  stableJson,
  truncateText,
  type VmSpec,
  WriteBehind,
} from '@quantix/core';
import { NodeRuntimeErrorCode } from '../errors.js';
import type { CreatedVm, VmProvisioner } from '../vm/provisioner.js';

type Logger = PluginContext['logger'];
type Send = (message: NodeMessage) => void | Promise<void>;
type ImageFormat = (typeof IMAGE_FORMATS)[number];

/** The VM operations the agent needs beyond the Hypervisor contract (VmProvisioner has them). */
export type VmLifecycle = Pick<
  VmProvisioner,
  'createFromCloudImage' | 'createFromIso' | 'deleteVm' | 'ejectCdroms' | 'insertCdrom'
>;

export interface NodeAgentOptions {
  nodeId: string;
  /** One per pool type this node serves (from the StorageBackendToken). */
  backends: readonly StorageBackend[];
  /**
   * The definition of each pool type (from the PoolTypeToken): the agent checks a pushed pool's
   * config and roots with it before its backend sees it. A pool of a type without one is refused.
   */
  poolTypes: readonly PoolTypeDefinition[];
  /**
   * Where pool roots may be on this node. Default: createPoolRootPolicy() (/var/lib/quantix, /srv).
   * Every pushed pool's roots are checked against it — symbolic links followed — before anything
   * is created, mounted or listed; a pool outside it is reported `error` with the reason.
   */
  poolRoots?: PoolRootPolicy;
  /** Where messages go; a call to handle() may give its own instead. */
  send?: Send;
  /** Downloads: the fetcher for each URL scheme. Without one, image.download is UNSUPPORTED_OPERATION. */
  fetchers?: readonly ImageFetcher[];
  inspector?: FileInspector;
  /** Imports (image.import): converts what a fetcher brought. Without one, image.import is UNSUPPORTED_OPERATION. */
  converter?: ImageConverter;
  hypervisor?: Hypervisor;
  vms?: VmLifecycle;
  /** Runs qemu-img on this node to describe downloaded images. Default: a LocalCommandRunner. */
  runner?: CommandRunner;
  /** Least time between two image.progress messages of one download. Default 500 ms. */
  progressIntervalMs?: number;
  /**
   * How often every assigned pool is checked again between pushes (an active pool's status; a
   * pool that is not active is activated again, so a mount that appeared is found). Changes
   * only are reported. Default 30 s; 0 turns it off.
   */
  poolRecheckIntervalMs?: number;
  /**
   * Dials the control plane's console relay for a console.open (NODE_CONSOLE_PATH/{sessionId},
   * with this node's token) and gives its byte stream. Without it, console.open is CONSOLE_UNAVAILABLE.
   * `relayUrl`: the replica to dial instead of the one this node is connected to (the request was
   * carried from there).
   */
  openConsoleChannel?: (sessionId: string, relayUrl?: string) => Promise<Duplex>;
  /**
   * Opens the control plane's channel for a file.export (NODE_EXPORT_PATH/{sessionId}, with this
   * node's token) for `lengthBytes` bytes, and gives the stream to write them to. Without it,
   * file.export is UNSUPPORTED_OPERATION. `relayUrl`: as for openConsoleChannel.
   */
  openExportChannel?: (sessionId: string, lengthBytes: number, relayUrl?: string) => Promise<Writable>;
  logger?: Logger;
}

/** What image.download answers; kept a while after it finished (see `finished`). */
type DownloadAnswer = ImageDownloadResult & { format: ImageFormat | null; virtualSizeBytes: number | null };

interface RunningDownload {
  poolId: string;
  relPath: string;
  controller: AbortController;
  result: Promise<DownloadAnswer>;
  readonly bytesDone: number;
}

interface FinishedDownload {
  poolId: string;
  relPath: string;
  /** An import's answer (image.import) carries what the file came from too. */
  result: DownloadAnswer | (DownloadAnswer & ImageImportResultMessage);
  finishedAt: number;
  /** The file's mtime once written (null: unknown): a file written over since is not its result. */
  mtimeMs: number | null;
}

// An exported file is read in chunks this large: fewer, larger writes cost less per byte.
const EXPORT_CHUNK_BYTES = 512 * 1024;

/** Least time between a copy's progress reports (the last byte is always reported). */
const COPY_PROGRESS_MS = 250;

// Finished downloads are remembered this long, this many: long enough for a control plane
// that restarted meanwhile to come back and collect the result.
const FINISHED_KEEP_MS = 24 * 3600_000;
const FINISHED_KEEP = 64;

/** What a scan read in one file, and the size and mtime the file had then. */
interface Inspection {
  sizeBytes: number;
  modifiedMs: number;
  inspected: InspectedFile | null;
  invalid: { code: string; message: string } | null;
  /**
   * The file as the last scan sent it (cut to the protocol's limits) and its JSON size: an unchanged
   * file is sent again as it is, without being rebuilt or measured again. Null when it was not sent.
   */
  sent?: SizedFile | null;
}

/** Same size and modification time as when it was read: trusted without reading, as `make` trusts a file. */
function unchangedSince(
  last: Inspection | undefined,
  file: { sizeBytes: number; modifiedAt: Date },
): last is Inspection {
  return last !== undefined && last.sizeBytes === file.sizeBytes && last.modifiedMs === file.modifiedAt.getTime();
}

/** A scanned file within the protocol's limits, with the bytes it takes in a scan.result and its entry hash. */
interface SizedFile {
  file: ScannedFile;
  bytes: number;
  /** Its term in the fingerprint of the scan (scanEntryHash), kept so a warm scan hashes nothing. */
  hash: number;
}

/** What the last scan of one pool's content read, and made of its listing. */
interface InspectionRecord {
  definition: string;
  files: Map<string, Inspection>;
  report?: Report | undefined;
  /**
   * The last listing and what the scan made of it, when it left nothing to read again (no file it
   * could not inspect, nothing skipped): the same listing next time gives the same files, found by
   * comparing the two listings in order instead of looking each file up.
   */
  settled?: { listing: readonly PoolFile[]; files: readonly SizedFile[]; invalid: readonly ScanInvalid[] };
}

/** Whether two listings (sorted by relPath, as listings come) hold the same files with the same sizes and mtimes. */
function sameListing(a: readonly PoolFile[], b: readonly PoolFile[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) {
    const x = a[i] as PoolFile;
    const y = b[i] as PoolFile;
    if (x.relPath !== y.relPath || x.sizeBytes !== y.sizeBytes || x.modifiedAt.getTime() !== y.modifiedAt.getTime()) {
      return false;
    }
  }
  return true;
}

/** What the node last reported of one pool's content: the base a delta is computed against. */
interface Report {
  definition: string;
  fingerprint: string;
  files: Map<string, SizedFile>;
  /** Unusable files by relPath, with their code: a delta names only those new or changed since. */
  invalid: Map<string, string>;
}

/** The JSON size of one item of a scan.result's arrays, with its separating comma. */
const jsonBytes = (item: unknown): number => Buffer.byteLength(JSON.stringify(item)) + 1;

/** Whether a scan found exactly what `report` holds: the same files, sent as they were, and the same unusable ones. */
function reportsSame(report: Report, files: readonly SizedFile[], invalid: readonly ScanInvalid[]): boolean {
  if (files.length !== report.files.size || invalid.length !== report.invalid.size) return false;
  for (const sized of files) if (report.files.get(sized.file.relPath) !== sized) return false;
  for (const item of invalid) if (report.invalid.get(item.relPath) !== item.code) return false;
  return true;
}

/** A scanned file ready to send: within the protocol's limits and measured; null when its path is too long to send. */
function sizedFile(file: ScannedFile): SizedFile | null {
  if (file.relPath.length > PROTOCOL_LIMITS.path) return null;
  const limited = withinLimits(file);
  const hash = scanEntryHash({
    relPath: limited.relPath,
    sizeBytes: limited.sizeBytes,
    modifiedMs: Date.parse(limited.modifiedAt),
  });
  return { file: limited, bytes: jsonBytes(limited), hash };
}

interface ActivePool {
  definition: ProtocolPool;
  pool: StoragePool;
  /** Its roots on this node's disk, every symbolic link resolved. */
  realRoots: readonly string[];
}

/** A pool checked on this node's disk (checkPoolOnDisk), or why it is refused here. */
type CheckedOnDisk = Awaited<ReturnType<typeof checkPoolOnDisk>> | Error;

const IMAGE_EXTENSIONS: Record<string, ImageFormat> = {
  '.iso': 'iso',
  '.qcow2': 'qcow2',
  '.raw': 'raw',
  '.vmdk': 'vmdk',
  '.vhdx': 'vhdx',
};

/**
 * Inspection failures that prove a file is not a usable ISO; it is left out of the scan. Codes of
 * @quantix/images-iso (the inspector a daemon plugs in), named by their registered strings:
 * plugins never import each other.
 */
const NOT_AN_ISO = ['ISO_EMPTY', 'ISO_TRUNCATED', 'ISO_NOT_ISO9660', 'ISO_MALFORMED'];
/** A scanned disk image that names other files: images-cloud's code for the same finding. */
const IMAGE_UNSAFE = 'IMAGE_UNSAFE';

/**
 * New or changed files a scan looks at ahead of the one it is at (a header read, an ISO's
 * reading): one after another, each waits on its resolve, open, stat, reads and close in turn
 * (1,000 disk-image headers: ~220-460 ms; 8 at once: ~130 ms).
 */
const LOOK_AHEAD = 8;

/**
 * What a scan's look at one file found: a disk image that cannot be offered (it names other files,
 * or is not what its name says), the inspector's answer (with the format a disk image's header
 * shows), or an error.
 */
type FileLook =
  | { unusable: { code: string; message: string } }
  | { inspected: InspectedFile | null }
  | { error: unknown };

/** A scanned file named .qcow2 that is not one: images-cloud's code for the same finding in a download. */
const IMAGE_INVALID = 'IMAGE_INVALID';

/**
 * What a disk image's first bytes say of it in a scan: unusable when it names other files
 * (IMAGE_UNSAFE) or is named .qcow2 without being one (IMAGE_INVALID); else its format — qcow2 by
 * its magic (an Ubuntu `.img` is qcow2), a sparse VMDK by its, anything else raw bytes.
 */
function lookAtDiskImageHead(
  relPath: string,
  head: Buffer,
): { unusable: { code: string; message: string } } | { format: ImageFormat } {
  const foreign = foreignFileReference(head);
  if (foreign)
    return { unusable: { code: IMAGE_UNSAFE, message: `${relPath} ${foreign.message}; an image must stand alone` } };
  if (isQcow2Header(head)) return { format: 'qcow2' };
  if (relPath.toLowerCase().endsWith('.qcow2')) {
    return { unusable: { code: IMAGE_INVALID, message: `${relPath} is named .qcow2 but is not a qcow2 image` } };
  }
  return { format: isSparseVmdkHeader(head) ? 'vmdk' : 'raw' };
}

/**
 * The node side of the control-plane ⇄ node protocol, with no transport of its own: the daemon
 * hands it each message it receives (handle) and sends on what it emits.
 *
 * - `pools.desired` is reconciled: every pool in the push is checked (a known type, a valid
 *   config, roots inside this node's pool-root policy, symbolic links followed), activated through
 *   its storage backend and reported with the push's generation (`pools.state`); pools no longer in the push
 *   are deactivated. The agent keeps only the last push, which the control plane resends on every
 *   connect: nothing it holds cannot be rebuilt from it. Pushes are applied one at a time, and a
 *   push that arrives during a reconcile waits, with only the newest kept.
 * - `request`s are answered with `response` (result, or error { code, message }): pool.scan (and
 *   `scan.result` with every file), image.download (with `image.progress`), image.cancel,
 *   image.remove, file.stat, vm.create/start/stop/delete/state.
 */
export class NodeAgent {
  private readonly options: NodeAgentOptions;
  private readonly logger: Logger | undefined;
  private readonly runner: CommandRunner;
  private active = new Map<string, ActivePool>();
  private generation: number | null = null;
  /** The fingerprint of the last push applied (desiredPoolsFingerprint), said in the hello. */
  private appliedFingerprint: string | null = null;
  private reconciling: Promise<void> | null = null;
  private nextPush: { generation: number; pools: ProtocolPool[]; send: Send } | null = null;
  /** Downloads in flight, by image id: a second request for one attaches to it. */
  private readonly downloads = new Map<string, RunningDownload>();
  /** Imports under way (download, then conversion), by image id. */
  private readonly imports = new Map<
    string,
    { relPath: string; controller: AbortController; result: Promise<ImageImportResultMessage> }
  >();
  /** Downloads that finished lately, oldest first: asked again, they answer without fetching. */
  private readonly finished = new Map<string, FinishedDownload>();
  /** What was last reported for each pool, and where to: the re-check reports changes only. */
  private readonly lastReports = new Map<string, PoolReport>();
  private lastSend: Send | undefined;
  private checking: Promise<PoolReport[]> | null = null;
  private readonly recheckTimer: NodeJS.Timeout | undefined;
  /** The largest frame the control plane takes (from its welcome); null: it did not say. */
  /** The protocol version of this connection, from the welcome (until then, this release's). */
  private protocolVersion: number = PROTOCOL_VERSION;
  private maxMessageBytes: number | null = null;
  private readonly poolRoots: PoolRootPolicy;
  /**
   * What the last scan of each pool read in each file, by relPath, with the size and mtime it had:
   * a file unchanged since is not read again (a warm scan of 21,000 ISOs is a listing). Memory
   * only, rebuilt by the next scan after a restart; kept per pool definition, and holding only
   * the files of the last scan.
   */
  private readonly inspections = new Map<string, InspectionRecord>();
  /**
   * What the last scan of each pool reported, by the same key, when it skipped nothing: a request
   * whose `since` is its fingerprint gets the changes since it. Memory only: after a restart the
   * first scan of each pool is full.
   */
  private readonly reports = new Map<string, Report>();

  constructor(options: NodeAgentOptions) {
    this.options = options;
    this.logger = options.logger;
    this.runner = options.runner ?? new LocalCommandRunner();
    this.poolRoots = options.poolRoots ?? createPoolRootPolicy();
    const interval = options.poolRecheckIntervalMs ?? 30_000;
    if (interval > 0) {
      this.recheckTimer = setInterval(() => {
        this.recheckPools().catch((error) => this.logger?.warn({ err: String(error) }, 'pool re-check failed'));
      }, interval);
      this.recheckTimer.unref();
    }
  }

  /**
   * The hello this node introduces itself with, built afresh for every (re)connect: what it can
   * do is in `capabilities`, and the downloads it has in hand (running, or finished and perhaps
   * never reported to a control plane that restarted) in `downloads`.
   */
  hello(options: { hostname: string; agentVersion: string }): Extract<NodeMessage, { type: 'hello' }> {
    const pools = this.poolsInHand();
    return {
      v: PROTOCOL_VERSION,
      type: 'hello',
      nodeId: this.options.nodeId,
      hostname: options.hostname,
      agentVersion: options.agentVersion,
      protocol: { min: PROTOCOL_VERSIONS.min, max: PROTOCOL_VERSIONS.max },
      capabilities: {
        poolTypes: this.options.backends.map((b) => b.type),
        downloadSchemes: (this.options.fetchers ?? []).flatMap((f) => [...f.schemes]),
        vms: Boolean(this.options.hypervisor && this.options.vms),
      },
      downloads: this.downloadsInHand(),
      ...(pools ? { pools } : {}),
    };
  }

  /**
   * The pools of the last push applied, with their last reported states: a control plane whose
   * desired set for this node is the same stores these states and pushes nothing. None while a
   * push is being applied (its states are not known yet) or before the first.
   */
  private poolsInHand(): NonNullable<Extract<NodeMessage, { type: 'hello' }>['pools']> | undefined {
    if (this.reconciling || this.generation === null || this.appliedFingerprint === null) return undefined;
    return {
      generation: this.generation,
      fingerprint: this.appliedFingerprint,
      reports: [...this.lastReports.values()],
    };
  }

  /** Running downloads first, then the latest finished ones, within the protocol's limit. */
  downloadsInHand(): HelloDownload[] {
    this.pruneFinished();
    const running: HelloDownload[] = [...this.downloads].map(([imageId, d]) => ({
      imageId,
      poolId: d.poolId,
      relPath: d.relPath,
      state: 'running',
      bytesDone: d.bytesDone,
    }));
    const done: HelloDownload[] = [...this.finished]
      .filter(([imageId]) => !this.downloads.has(imageId))
      .reverse()
      .map(([imageId, d]) => ({ imageId, poolId: d.poolId, relPath: d.relPath, state: 'done', result: d.result }));
    return [...running, ...done].slice(0, PROTOCOL_LIMITS.downloads);
  }

  /** The generation last reconciled, or null before the first push. */
  get appliedGeneration(): number | null {
    return this.generation;
  }

  /**
   * Takes one message from the control plane (a frame as received, or a parsed message) and
   * resolves once it has been dealt with: a reconcile reported, a request answered.
   */
  async handle(data: unknown, send: Send | undefined = this.options.send): Promise<void> {
    if (!send) throw new QuantixError(ErrorCode.INVALID_INPUT, 'The node agent has nowhere to send its answers');
    let message: ControlMessage;
    try {
      message = parseControlMessage(data);
    } catch (error) {
      // A request we cannot read is still answered, when its id can be found.
      const requestId = requestIdOf(data);
      if (requestId)
        await this.emit(send, { v: PROTOCOL_VERSION, type: 'response', requestId, error: errorBody(error) });
      else this.logger?.warn({ err: String(error) }, 'ignored a control-plane message that could not be read');
      return;
    }
    switch (message.type) {
      case 'pools.desired':
        return this.reconcile(message.generation, message.pools, send);
      case 'request':
        return this.answer(message.requestId, message.request, send);
      case 'welcome':
        this.maxMessageBytes = message.maxMessageBytes ?? null;
        // The version agreed for this connection; a control plane that does not say speaks 1.
        this.protocolVersion = message.protocol ?? 1;
        if (message.poolsCurrent) return this.resumePools(message.poolsCurrent.generation, send);
        return;
      case 'error':
        this.logger?.warn({ error: message.error }, 'the control plane reported an error');
        return;
    }
  }

  /** Cancels downloads in flight and deactivates every active pool. */
  async close(): Promise<void> {
    clearInterval(this.recheckTimer);
    for (const stream of this.consoles) stream.close();
    for (const channel of this.exports) channel.destroy();
    for (const download of this.downloads.values()) download.controller.abort(new Error('node agent closing'));
    await this.reconciling?.catch(() => undefined);
    await this.checking?.catch(() => undefined);
    for (const { pool } of this.active.values()) await this.deactivate(pool);
    this.active.clear();
  }

  private async reconcile(generation: number, pools: ProtocolPool[], send: Send): Promise<void> {
    if (this.reconciling) {
      // One reconcile at a time; of the pushes that wait, only the newest matters.
      this.nextPush = { generation, pools, send };
      await this.reconciling;
      return;
    }
    let push: { generation: number; pools: ProtocolPool[]; send: Send } | null = { generation, pools, send };
    const run = async () => {
      // A re-check under way finishes first: pools are activated by one of them at a time.
      await this.checking?.catch(() => undefined);
      while (push) {
        const current = push;
        await this.applyPush(current.generation, current.pools, current.send);
        push = this.nextPush;
        this.nextPush = null;
      }
    };
    this.reconciling = run().finally(() => {
      this.reconciling = null;
    });
    await this.reconciling;
  }

  /**
   * The control plane took the pools of our hello as current: they are kept as they are, of its
   * generation from now on, and checked again at once — a state that changed while we were away is
   * reported now, not at the next re-check.
   */
  private async resumePools(generation: number, send: Send): Promise<void> {
    if (this.reconciling || this.generation === null) return; // a push under way reports anyway
    if (generation > this.generation) this.generation = generation;
    this.lastSend = send;
    await this.recheckPools();
  }

  private async applyPush(generation: number, definitions: ProtocolPool[], send: Send): Promise<void> {
    if (this.generation !== null && generation < this.generation) {
      this.logger?.warn({ generation, applied: this.generation }, 'ignored an older pool push');
      return;
    }
    const wanted = new Map(definitions.map((d) => [d.id, d]));
    // Pools no longer assigned, or assigned with another definition, are let go first.
    for (const [id, current] of [...this.active]) {
      const next = wanted.get(id);
      if (!next || !sameDefinition(next, current.definition)) {
        await this.deactivate(current.pool);
        this.active.delete(id);
        for (const key of this.inspections.keys()) if (key.startsWith(`${id}\u0000`)) this.inspections.delete(key);
      }
    }
    const onDisk = await this.checkPushOnDisk(definitions);
    const reports = await Promise.all(
      definitions.map((definition) => this.activate(definition, 'activate', undefined, onDisk.get(definition.id))),
    );
    // In push order from now on: of two pools that meet, the older keeps working.
    const active = this.active;
    this.active = new Map(
      definitions.flatMap((d) => (active.has(d.id) ? [[d.id, active.get(d.id) as ActivePool]] : [])),
    );
    this.generation = generation;
    this.appliedFingerprint = desiredPoolsFingerprint(definitions);
    this.lastSend = send;
    this.lastReports.clear();
    for (const report of reports) this.lastReports.set(report.poolId, report);
    const refused = await this.refuseMountsMeetingOthers();
    const pools = reports.map((report) => refused.get(report.poolId) ?? report);
    await this.emit(send, { v: PROTOCOL_VERSION, type: 'pools.state', generation, pools });
  }

  /**
   * Each pool of a push checked on this node's disk, once: its type, config and roots (every
   * symbolic link resolved), or why it is refused. A pool whose real roots meet an earlier one's
   * is refused too (the push lists the oldest first, so the pool defined first keeps working);
   * the control plane compares the spellings only.
   */
  private async checkPushOnDisk(definitions: readonly ProtocolPool[]): Promise<Map<string, CheckedOnDisk>> {
    const checks = new Map<string, CheckedOnDisk>();
    const placed: PoolRoots[] = [];
    for (const definition of definitions) {
      try {
        const checked = await checkPoolOnDisk({
          types: this.options.poolTypes,
          policy: this.poolRoots,
          pool: definition,
        });
        checks.set(definition.id, checked);
        placed.push({ id: definition.id, name: definition.name, roots: checked.realRoots });
      } catch (error) {
        // Refused on its own: it holds nothing here, so it is in no other pool's way.
        checks.set(definition.id, error instanceof Error ? error : new Error(String(error)));
      }
    }
    for (const refusal of this.overlapsInOrder(placed)) checks.set(refusal.poolId, refusal.error);
    return checks;
  }

  /**
   * Of pools in push order, each that meets an earlier one still standing, with its
   * POOL_ROOT_OVERLAPS: the older pool keeps working.
   */
  private overlapsInOrder(pools: readonly PoolRoots[]): { poolId: string; error: QuantixError }[] {
    const apart: PoolRoots[] = [];
    const refused: { poolId: string; error: QuantixError }[] = [];
    for (const pool of pools) {
      const overlap = findOverlappingPool(pool, apart);
      if (overlap)
        refused.push({ poolId: pool.id, error: poolRootOverlaps(pool, overlap, { id: this.options.nodeId }) });
      else apart.push(pool);
    }
    return refused;
  }

  /**
   * A pool its backend found mounted somewhere else (an NFS export mounted by hand) may lie in
   * another pool's directory, or hold it, where their definitions are apart: checked once the
   * pools say where they are (after a push, after a re-check), in push order. A pool meeting an
   * earlier one is let go and reported in error, as checkPushOnDisk does for definitions. Returns
   * the reports of the pools let go.
   */
  private async refuseMountsMeetingOthers(): Promise<Map<string, PoolReport>> {
    const placed = [...this.active.values()].map(({ definition, realRoots }) => {
      const mountPath = this.lastReports.get(definition.id)?.mountPath;
      const roots = mountPath && !realRoots.includes(mountPath) ? [...realRoots, mountPath] : [...realRoots];
      return { id: definition.id, name: definition.name, roots };
    });
    const refused = new Map<string, PoolReport>();
    for (const { poolId, error } of this.overlapsInOrder(placed)) {
      const held = this.active.get(poolId);
      if (!held) continue;
      const report = await this.activate(held.definition, 'activate', held.pool, error);
      this.lastReports.set(poolId, report);
      refused.set(poolId, report);
    }
    return refused;
  }

  /**
   * Checks every assigned pool again and reports those whose state changed since the last
   * report (status; for an active pool where it is mounted, its size, or its free space by a
   * step: sameReport), with the generation applied. Runs on the re-check
   * interval; skipped while a push is being reconciled (that reports everything anyway).
   */
  async recheckPools(): Promise<PoolReport[]> {
    if (this.reconciling || this.checking || this.generation === null || !this.lastSend) return [];
    const send = this.lastSend;
    const generation = this.generation;
    const run = async (): Promise<PoolReport[]> => {
      const changed: PoolReport[] = [];
      for (const { definition, pool } of [...this.active.values()]) {
        const last = this.lastReports.get(definition.id);
        // An active pool is asked for its status; any other is activated again (a mount may have appeared).
        const report = await this.activate(definition, last?.status === 'active' ? 'status' : 'activate', pool);
        if (last && sameReport(last, report)) continue;
        this.lastReports.set(definition.id, report);
        changed.push(report);
      }
      // A mount that appeared (a server back) may meet another pool: let go, and said so.
      for (const report of (await this.refuseMountsMeetingOthers()).values()) {
        const index = changed.findIndex((r) => r.poolId === report.poolId);
        if (index >= 0) changed[index] = report;
        else changed.push(report);
      }
      if (changed.length > 0) {
        this.logger?.info({ pools: changed.map((r) => [r.poolId, r.status]) }, 'pool state changed');
        await this.emit(send, { v: PROTOCOL_VERSION, type: 'pools.state', generation, pools: changed });
      }
      return changed;
    };
    this.checking = run().finally(() => {
      this.checking = null;
    });
    return this.checking;
  }

  /**
   * Activates a pool (or asks an active one its status) and says how it is. `onDisk` is the
   * push's own check of it (checkPushOnDisk); without one the pool is checked here.
   */
  private async activate(
    definition: ProtocolPool,
    how: 'activate' | 'status' = 'activate',
    existing?: StoragePool,
    onDisk?: CheckedOnDisk,
  ): Promise<PoolReport> {
    const pool = existing ?? toStoragePool(definition, this.options.nodeId);
    const report = (status: PoolReport['status'], fields: Partial<PoolReport> = {}): PoolReport => ({
      poolId: definition.id,
      status,
      mountPath: null,
      capacityBytes: null,
      availableBytes: null,
      ...fields,
      // The node's own words, cut to the protocol's limit so that the report is never refused.
      reason: fields.reason == null ? null : truncateText(fields.reason),
    });
    let roots: string[];
    let realRoots: string[];
    try {
      // Before any backend sees the pool: a known type, a valid config, and roots this node allows.
      const checked =
        onDisk ?? (await checkPoolOnDisk({ types: this.options.poolTypes, policy: this.poolRoots, pool: definition }));
      if (!('roots' in checked)) throw checked;
      ({ roots, realRoots } = checked);
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error);
      this.logger?.warn({ poolId: definition.id, err: reason }, 'pool refused');
      // Active until now (its root became a link elsewhere since the last push or check, say):
      // let go, so that nothing more is done in it.
      const held = existing ?? this.active.get(definition.id)?.pool;
      if (held) {
        this.active.delete(definition.id);
        await this.deactivate(held);
      }
      return report('error', { reason });
    }
    this.active.set(definition.id, { definition, pool, realRoots });
    try {
      const backend = backendFor(this.options.backends, definition.type);
      const status =
        how === 'activate' && backend.activate ? await backend.activate({ pool }) : await backend.status({ pool });
      // Where the backend put the pool (an NFS export found mounted elsewhere) must be allowed too.
      if (status.rootPath && !roots.includes(status.rootPath)) {
        try {
          await checkPoolRootOnDisk(status.rootPath, this.poolRoots);
        } catch (error) {
          this.active.delete(definition.id);
          await this.deactivate(pool);
          throw error;
        }
      }
      if (!status.available) return report('unavailable', { mountPath: status.rootPath, reason: status.reason });
      return report('active', {
        mountPath: status.rootPath,
        capacityBytes: wholeBytes(status.capacityBytes),
        availableBytes: wholeBytes(status.availableBytes),
      });
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error);
      // A backend with a root policy of its own refused it: nothing may be done in that pool.
      if (isQuantixError(error, ErrorCode.POOL_ROOT_NOT_ALLOWED)) this.active.delete(definition.id);
      // A pool that cannot be reached is "unavailable" (it may come back); anything else is an error.
      const unavailable =
        isQuantixError(error, ErrorCode.POOL_UNAVAILABLE) || isQuantixError(error, ErrorCode.POOL_MOUNT_FAILED);
      this.logger?.warn({ poolId: definition.id, err: reason }, 'pool could not be activated');
      return report(unavailable ? 'unavailable' : 'error', { reason });
    }
  }

  private async deactivate(pool: StoragePool): Promise<void> {
    try {
      const backend = backendFor(this.options.backends, pool.type);
      await backend.deactivate?.({ pool });
    } catch (error) {
      this.logger?.warn({ poolId: pool.id, err: String(error) }, 'pool could not be deactivated');
    }
  }

  private async answer(requestId: string, request: NodeRequest, send: Send): Promise<void> {
    let reply: NodeMessage;
    try {
      const result = await this.perform(request, send);
      reply = { v: PROTOCOL_VERSION, type: 'response', requestId, result };
    } catch (error) {
      if (!isQuantixError(error)) this.logger?.error({ err: error, op: request.op }, 'request failed unexpectedly');
      reply = { v: PROTOCOL_VERSION, type: 'response', requestId, error: errorBody(error) };
    }
    await this.emit(send, reply);
  }

  /**
   * One handler per protocol operation, each typed by the operation's result schema
   * (NODE_OPERATIONS): what a node answers cannot drift from what the control plane checks.
   */
  private readonly handlers: {
    [Op in NodeOperation]: (request: Extract<NodeRequest, { op: Op }>, send: Send) => Promise<NodeResultOf<Op>>;
  } = {
    'pool.scan': (request, send) => this.scan(request.poolId, request.content, send, request.since),
    'image.download': (request, send) => this.download(request, send),
    'image.import': (request, send) => this.importImage(request, send),
    'source.check': async (request) => {
      // The source's fetcher reads its checksum file too, so it judges both.
      await this.fetcherFor(request.sourceUrl).checkSource?.(request);
      return { allowed: true };
    },
    'image.cancel': async (request) => {
      const cancelled = new QuantixError(
        ErrorCode.DOWNLOAD_CANCELLED,
        `Download of image ${request.imageId} was cancelled`,
      );
      const running = this.downloads.get(request.imageId);
      const importing = this.imports.get(request.imageId);
      running?.controller.abort(cancelled);
      importing?.controller.abort(cancelled);
      const copies = [...this.copies.values()].filter((copy) => copy.imageId === request.imageId);
      for (const copy of copies) copy.controller.abort(cancelled);
      return { cancelled: Boolean(running ?? importing) || copies.length > 0 };
    },
    'image.remove': async (request) => {
      const { pool, backend } = this.poolFor(request.poolId);
      // A file that is not there is removed already: a download that failed never made one, and
      // its image must still be deletable.
      let removed = true;
      try {
        await callBackend(backend, 'remove', { pool, relPath: request.relPath });
      } catch (error) {
        if (!isQuantixError(error, ErrorCode.NOT_FOUND)) throw error;
        removed = false;
      }
      // What downloads toward it left to resume from goes with it (a failed 2 GiB download leaves
      // up to 2 GiB, hidden from scans), and so does an import's original: the download the
      // conversion started from, hidden from scans as well.
      const paths = [await this.resolve(request.poolId, request.relPath)];
      if (request.importOriginal) {
        const original = `${request.relPath}.orig`;
        paths.push(await this.resolve(request.poolId, original));
        await callBackend(backend, 'remove', { pool, relPath: original }).catch((error: unknown) => {
          if (!isQuantixError(error, ErrorCode.NOT_FOUND)) throw error;
        });
      }
      for (const path of paths) for (const fetcher of this.options.fetchers ?? []) await fetcher.discard?.(path);
      for (const [imageId, done] of [...this.finished]) {
        if (done.poolId === request.poolId && done.relPath === request.relPath) this.finished.delete(imageId);
      }
      return { removed };
    },
    'file.stat': async (request) => {
      const path = await this.resolve(request.poolId, request.relPath);
      // The file system the file is (or would be) on; where statfs says nothing, the writes will tell.
      const availableBytes = await freeBytesAt(dirname(path));
      try {
        const info = await stat(path);
        return { exists: info.isFile(), sizeBytes: info.isFile() ? info.size : null, availableBytes };
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
        return { exists: false, sizeBytes: null, availableBytes };
      }
    },
    'file.hash': (request) => this.hashPoolFile(request),
    'vm.create': (request) => this.createVm(request.vm),
    'vm.start': async (request) => {
      const hypervisor = this.hypervisor();
      // Paused (by someone, or by QEMU when a disk failed to write): started means it runs on.
      if ((await hypervisor.state({ name: request.name })) === 'paused') {
        await hypervisor.resume({ name: request.name });
        return { name: request.name, state: await hypervisor.state({ name: request.name }) };
      }
      return this.powerAction(request.name, 'running', () => hypervisor.start({ name: request.name }));
    },
    'vm.stop': async (request) => {
      const hypervisor = this.hypervisor();
      // An ACPI shutdown would wait, unseen, until the guest runs again (and stop it then).
      if (!request.force && (await hypervisor.state({ name: request.name })) === 'paused') {
        throw new QuantixError(
          NodeRuntimeErrorCode.INVALID_STATE,
          `VM '${request.name}' is paused: its guest cannot shut itself down; start it to let it run on, or stop it with force to power it off`,
          { details: { name: request.name, state: 'paused' } },
        );
      }
      return this.powerAction(request.name, 'shutoff', () =>
        request.force ? hypervisor.destroy({ name: request.name }) : hypervisor.shutdown({ name: request.name }),
      );
    },
    'vm.reboot': async (request) => {
      await this.hypervisor().reboot({ name: request.name });
      return { name: request.name, state: await this.hypervisor().state({ name: request.name }) };
    },
    'vm.delete': (request) => this.vms().deleteVm({ name: request.name }),
    'vm.eject': async (request) => {
      // Paths from the pools' backends, as for a VM's creation: never one the request spells out.
      const paths = await Promise.all(request.cdroms.map((cdrom) => this.resolve(cdrom.poolId, cdrom.relPath)));
      return { name: request.name, ...(await this.vms().ejectCdroms({ name: request.name, paths })) };
    },
    'vm.insert': async (request) => {
      const path = await this.resolve(request.cdrom.poolId, request.cdrom.relPath);
      return { name: request.name, ...(await this.vms().insertCdrom({ name: request.name, path })) };
    },
    'vm.resize': async (request) => {
      const hypervisor = this.hypervisor();
      if (!hypervisor.setResources) {
        throw new QuantixError(ErrorCode.UNSUPPORTED_OPERATION, 'This hypervisor cannot change a VM’s CPUs or memory');
      }
      const { name, cpu, memoryMiB } = request;
      return { name, ...(await hypervisor.setResources({ name, cpu, memoryMiB })) };
    },
    'vm.state': async (request) => ({
      name: request.name,
      state: await this.hypervisor().state({ name: request.name }),
    }),
    'vm.states': async (request) => {
      // One listing of every domain (two virsh calls), however many are asked about.
      const domains = new Map((await this.hypervisor().list()).map((domain) => [domain.name, domain]));
      return {
        states: request.names.map((name) => {
          const domain = domains.get(name);
          return { name, state: domain?.state ?? null, ...(domain?.reason ? { reason: domain.reason } : {}) };
        }),
      };
    },
    'console.open': async (request) => {
      await this.relayConsole(request);
      return { sessionId: request.sessionId, type: request.type };
    },
    'file.export': (request) => this.exportFile(request),
    'file.copy': (request, send) => {
      // Asked again while it runs (the control plane restarted): the same copy, not a second
      // writer of its partial file.
      const key = `${request.imageId}\0${request.poolId}\0${request.relPath}`;
      const running = this.copies.get(key);
      if (running?.controller.signal.aborted) {
        return windDown(running).then(() => this.handlers['file.copy'](request, send));
      }
      if (running) return running.result;
      const controller = new AbortController();
      const result = this.copyFile(request, send, controller.signal).finally(() => this.copies.delete(key));
      this.copies.set(key, { imageId: request.imageId, controller, result });
      return result;
    },
    'node.networks': async () => {
      const hypervisor = this.hypervisor();
      if (!hypervisor.networks)
        throw new QuantixError(ErrorCode.UNSUPPORTED_OPERATION, 'This hypervisor lists no networks');
      return { networks: (await hypervisor.networks()).slice(0, PROTOCOL_LIMITS.networks) };
    },
    'vm.addresses': async (request) => {
      const hypervisor = this.hypervisor();
      // A hypervisor that cannot tell addresses reports none, rather than failing the VM's page.
      const addresses = hypervisor.interfaceAddresses
        ? await hypervisor.interfaceAddresses({ name: request.name })
        : [];
      return { name: request.name, addresses: addresses.slice(0, PROTOCOL_LIMITS.networks * 8) };
    },
  };

  /** Consoles being relayed now: closed with the agent. */
  private readonly consoles = new Set<ConsoleStream>();

  /**
   * Opens a VM's console and relays it, both ways, over a channel of its own to the control
   * plane; whichever side ends first ends the other (the viewer left, or the VM stopped).
   */
  private async relayConsole(request: {
    sessionId: string;
    name: string;
    type: ConsoleType;
    relayUrl?: string | undefined;
  }): Promise<void> {
    const hypervisor = this.hypervisor();
    const dial = this.options.openConsoleChannel;
    if (!hypervisor.openConsole || !dial) {
      throw new QuantixError(ErrorCode.CONSOLE_UNAVAILABLE, 'This node cannot relay VM consoles');
    }
    const stream = await hypervisor.openConsole({ name: request.name, type: request.type });
    let channel: Duplex;
    try {
      channel = await dial(request.sessionId, request.relayUrl);
    } catch (error) {
      stream.close();
      throw error;
    }
    this.consoles.add(stream);
    const end = () => {
      stream.close();
      channel.destroy();
    };
    pipeline(stream.output, channel, end);
    pipeline(channel, stream.input, end);
    void stream.ended.then(() => {
      this.consoles.delete(stream);
      channel.destroy();
    });
    this.logger?.info({ name: request.name, type: request.type, sessionId: request.sessionId }, 'console relayed');
  }

  /** Copies running now, by imageId, poolId and relPath: a copy asked again joins its run; image.cancel stops it. */
  private readonly copies = new Map<
    string,
    { imageId: string; controller: AbortController; result: Promise<NodeResultOf<'file.copy'>> }
  >();

  /** Files being streamed to the control plane now: their channels are closed with the agent. */
  private readonly exports = new Set<Writable>();

  /**
   * file.export: opens the file (resolved inside its pool by the pool's backend), checks it is the
   * size the control plane expects, dials the export channel and streams the range into it. The
   * read follows the channel's pace (pipeline: back-pressure), and a channel that closes early —
   * the client went away — ends the read and closes the file.
   */
  private async exportFile(request: Extract<NodeRequest, { op: 'file.export' }>): Promise<NodeResultOf<'file.export'>> {
    const dial = this.options.openExportChannel;
    if (!dial) throw new QuantixError(ErrorCode.UNSUPPORTED_OPERATION, 'This node cannot stream files out');
    const path = await this.resolve(request.poolId, request.relPath);
    const where = { poolId: request.poolId, relPath: request.relPath };
    const file = await open(path, 'r').catch((error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT' || error.code === 'ENOTDIR' || error.code === 'EISDIR') {
        throw new QuantixError(ErrorCode.IMAGE_FILE_MISSING, `No file ${request.relPath} in pool ${request.poolId}`, {
          details: where,
        });
      }
      throw error;
    });
    try {
      const info = await file.stat();
      if (!info.isFile()) {
        throw new QuantixError(ErrorCode.IMAGE_FILE_MISSING, `${request.relPath} is not a file`, { details: where });
      }
      if (info.size !== request.expectedSize) {
        throw new QuantixError(
          ErrorCode.IMAGE_FILE_CHANGED,
          `${request.relPath} is ${info.size} bytes, not the ${request.expectedSize} recorded for it`,
          { details: { ...where, sizeBytes: info.size, expectedSize: request.expectedSize } },
        );
      }
      if (request.start > request.end || request.end >= info.size) {
        throw new QuantixError(
          ErrorCode.RANGE_NOT_SATISFIABLE,
          `Bytes ${request.start}-${request.end} are not within the ${info.size} bytes of ${request.relPath}`,
          { details: { ...where, sizeBytes: info.size } },
        );
      }
      const channel = await dial(request.sessionId, request.end - request.start + 1, request.relayUrl);
      this.exports.add(channel);
      // The stream owns the descriptor from here: it closes it when it ends or is destroyed.
      const source = file.createReadStream({
        start: request.start,
        end: request.end,
        highWaterMark: EXPORT_CHUNK_BYTES,
      });
      pipeline(source, channel, (error) => {
        this.exports.delete(channel);
        if (error) this.logger?.info({ ...where, reason: error.message }, 'file export ended early');
      });
      this.logger?.info({ ...where, start: request.start, end: request.end }, 'file export started');
      return { sessionId: request.sessionId, sizeBytes: info.size };
    } catch (error) {
      await file.close().catch(() => undefined);
      throw error;
    }
  }

  /**
   * file.hash: the file's checksum, size and modification time, read whole. A file whose size or
   * modification time moved while it was read (still being written) is IMAGE_FILE_CHANGED: its
   * checksum would describe bytes that are no longer all there.
   */
  private async hashPoolFile(request: Extract<NodeRequest, { op: 'file.hash' }>): Promise<NodeResultOf<'file.hash'>> {
    const where = { poolId: request.poolId, relPath: request.relPath };
    const { path, info: before } = await this.poolFile(request.poolId, request.relPath);
    const hash = await hashFile({ path, algorithm: request.algorithm });
    const after = await stat(path);
    if (after.size !== before.size || after.mtimeMs !== before.mtimeMs) {
      throw new QuantixError(
        ErrorCode.IMAGE_FILE_CHANGED,
        `${request.relPath} changed while it was read (${before.size} bytes, then ${after.size}); it is still being written: try again once it is not`,
        { details: { ...where, sizeBytes: after.size } },
      );
    }
    this.logger?.info({ ...where, sizeBytes: before.size }, 'file hashed');
    return {
      sizeBytes: before.size,
      checksum: { algorithm: request.algorithm, value: hash.digest('hex') },
      modifiedAt: isSendableFileTime(before.mtimeMs) ? before.mtime.toISOString() : null,
    };
  }

  /**
   * file.copy: both paths resolved by their pools' backends (neither leaves its pool), copied to
   * a partial name beside the target, checked against the expected checksum, synced and renamed.
   * Where the file system clones (COPYFILE_FICLONE_FORCE) the clone is instant and the check is a
   * read; elsewhere the bytes are copied and hashed in one pass. Either reports progress as a
   * download does (image.progress), and `signal` (image.cancel) stops it between chunks, leaving
   * nothing. A partial file left by an interrupted copy is simply copied over.
   */
  private async copyFile(
    request: Extract<NodeRequest, { op: 'file.copy' }>,
    send: Send,
    signal: AbortSignal,
  ): Promise<NodeResultOf<'file.copy'>> {
    const where = { poolId: request.poolId, relPath: request.relPath };
    const { path: source, info: sourceInfo } = await this.poolFile(request.sourcePoolId, request.sourceRelPath);
    const target = await this.resolve(request.poolId, request.relPath);
    if (target === source) {
      throw new QuantixError(ErrorCode.ALREADY_EXISTS, `${request.relPath} is the file being copied`, {
        details: where,
      });
    }
    const existing = await stat(target).catch(() => null);
    if (existing) {
      // Asked again after it finished (the control plane restarted meanwhile): the copy there,
      // whole and with the expected checksum, is the answer; anything else stays and is refused.
      const value =
        existing.isFile() && existing.size === sourceInfo.size
          ? (await hashFile({ path: target, algorithm: request.checksum.algorithm })).digest('hex')
          : null;
      if (value === request.checksum.value.toLowerCase()) {
        this.logger?.info({ imageId: request.imageId, ...where }, 'file copy already done; answered from the file');
        return { sizeBytes: existing.size, checksum: { algorithm: request.checksum.algorithm, value } };
      }
      throw new QuantixError(
        ErrorCode.ALREADY_EXISTS,
        `A file ${request.relPath} is already in pool ${request.poolId}`,
        {
          details: where,
        },
      );
    }
    await mkdir(dirname(target), { recursive: true });
    // Resolved again now that its folder exists: a folder made a link meanwhile cannot lead out.
    const final = await this.resolve(request.poolId, request.relPath);
    const partial = `${final}.partial`;
    const total = sourceInfo.size;
    let lastReport = 0;
    const report = (phase: 'downloading' | 'verifying', bytesDone: number) => {
      const now = Date.now();
      if (bytesDone < total && now - lastReport < COPY_PROGRESS_MS) return;
      lastReport = now;
      void this.emit(send, {
        v: PROTOCOL_VERSION,
        type: 'image.progress',
        imageId: request.imageId,
        phase,
        bytesDone,
        bytesTotal: total,
        bytesPerSecond: null,
        etaSeconds: null,
      });
    };
    this.logger?.info({ imageId: request.imageId, ...where, from: request.sourceRelPath }, 'file copy started');
    try {
      const cloned = await copyFile(source, partial, fsConstants.COPYFILE_FICLONE_FORCE).then(
        () => true,
        () => false,
      );
      // A clone shares the source's blocks; a copy needs its whole size free, or it fills the pool part way.
      if (!cloned) await requireRoom(dirname(partial), total, `${request.relPath} in pool ${request.poolId}`);
      const hash = createHash(request.checksum.algorithm);
      let sizeBytes = 0;
      const into = await open(partial, cloned ? 'r' : 'w');
      // A clone shares the source's blocks: nothing to write, so nothing to flush on the way.
      const writeBehind = cloned ? null : new WriteBehind(into);
      try {
        const from = cloned ? into : await open(source, 'r');
        try {
          for await (const chunk of from.createReadStream({ autoClose: false, highWaterMark: EXPORT_CHUNK_BYTES })) {
            signal.throwIfAborted();
            const bytes = chunk as Buffer;
            hash.update(bytes);
            for (let written = 0; !cloned && written < bytes.length; ) {
              written += (await into.write(bytes, written, bytes.length - written)).bytesWritten;
            }
            sizeBytes += bytes.length;
            writeBehind?.wrote(bytes.length, sizeBytes);
            report(cloned ? 'verifying' : 'downloading', sizeBytes);
          }
        } finally {
          if (from !== into) await from.close();
        }
        await writeBehind?.settle();
        await into.sync();
      } finally {
        await writeBehind?.idle();
        await into.close();
      }
      signal.throwIfAborted();
      const value = hash.digest('hex');
      if (value !== request.checksum.value.toLowerCase()) {
        throw new QuantixError(
          ErrorCode.CHECKSUM_MISMATCH,
          `The copy of ${request.sourceRelPath} has ${request.checksum.algorithm} ${value}, not the ${request.checksum.value} recorded`,
          { details: { ...where, expected: request.checksum.value, actual: value } },
        );
      }
      await rename(partial, final);
      const folder = await open(dirname(final), 'r');
      await folder.sync().finally(() => folder.close());
      this.logger?.info({ imageId: request.imageId, ...where, sizeBytes, cloned }, 'file copy done');
      return { sizeBytes, checksum: { algorithm: request.checksum.algorithm, value } };
    } catch (error) {
      await rm(partial, { force: true });
      throw error;
    }
  }

  private perform(request: NodeRequest, send: Send): Promise<unknown> {
    const handler = this.handlers[request.op] as (request: NodeRequest, send: Send) => Promise<unknown>;
    return handler(request, send);
  }

  private async scan(poolId: string, content: PoolContentType, send: Send, since?: string) {
    const { pool, backend } = this.poolFor(poolId);
    const listing = await backend.list({ pool, content });
    const files: SizedFile[] = [];
    // What the listing did not enter, and files refused below: the control plane leaves their rows alone.
    const skipped: ScanSkipped[] = [...listing.skipped];
    // Files that are there but are no ISO: the control plane takes their rows out of service, with the reason.
    const invalid: ScanInvalid[] = [];
    // One log line per scan, not one per file: a pool of 21,000 broken files is one problem.
    const uninspected: { relPath: string; err: string }[] = [];
    const definition = `${content}\u0000${pool.type}\u0000${stableJson(pool.config)}`;
    const cacheKey = `${poolId}\u0000${content}`;
    const previous = this.inspections.get(cacheKey);
    const known = previous?.definition === definition ? previous.files : new Map<string, Inspection>();
    // Only the files new or changed since: a warm scan of 20,000 files builds no new map (GC is
    // a good part of its cost), it counts the known ones it met instead.
    const seen = new Map<string, Inspection>();
    let kept = 0;
    /** Files taken as they were last sent (or last found unusable), nothing rebuilt. */
    let reused = 0;
    // Nothing changed since a scan that settled every file: its outcome, without 20,000 lookups.
    const settled =
      previous?.definition === definition && listing.skipped.length === 0 && previous.settled
        ? previous.settled
        : undefined;
    const unchangedListing = settled !== undefined && sameListing(settled.listing, listing.files);
    if (unchangedListing) {
      // One push a file: a spread of a 200,000-file pool into push() would overflow the stack.
      for (const file of settled.files) files.push(file);
      for (const bad of settled.invalid) invalid.push(bad);
      kept = known.size;
      reused = listing.files.length;
    }
    const inspector = this.options.inspector;
    const checksHeader = (relPath: string) => content === 'images' && !isVmFileRelPath(relPath);
    /**
     * One look at a new or changed file, with its path resolved once: a disk image's header (does
     * it name other files? is it what its name says? its format), then the inspector's reading. A
     * header that cannot be read now (the file gone since the listing, say) is no finding: the file
     * is offered as listed, and a VM's creation checks again. Errors of resolving and inspecting
     * are returned, not thrown.
     */
    const lookAt = async (relPath: string): Promise<FileLook> => {
      try {
        const path = await callBackend(backend, 'resolve', { pool, relPath });
        let headFormat: ImageFormat | undefined;
        if (checksHeader(relPath)) {
          const head = await readFileHead(path, IMAGE_HEADER_BYTES).catch(() => null);
          const found = head ? lookAtDiskImageHead(relPath, head) : null;
          if (found && 'unusable' in found) return found;
          headFormat = found?.format;
        }
        const inspected = inspector ? await inspector.inspect({ path, relPath, content }) : null;
        return { inspected: headFormat && !inspected?.format ? { ...inspected, format: headFormat } : inspected };
      } catch (error) {
        return { error };
      }
    };
    const needsLook = (file: (typeof listing.files)[number]): boolean =>
      (inspector !== undefined || checksHeader(file.relPath)) &&
      isSendableFileTime(file.modifiedAt.getTime()) &&
      !unchangedSince(known.get(file.relPath), file);
    const looks = new Map<string, Promise<FileLook>>();
    let lookedAheadTo = 0;
    const toInspect = unchangedListing ? [] : listing.files;
    for (const [index, file] of toInspect.entries()) {
      for (; lookedAheadTo < Math.min(index + LOOK_AHEAD, toInspect.length); lookedAheadTo++) {
        const next = toInspect[lookedAheadTo] as (typeof toInspect)[number];
        if (needsLook(next)) looks.set(next.relPath, lookAt(next.relPath));
      }
      // A time the protocol cannot carry (a file touched to year 10,000) would have the whole scan
      // refused: the file is reported as not looked at, and its row, if any, is left as it is.
      if (!isSendableFileTime(file.modifiedAt.getTime())) {
        skipped.push({
          relPath: file.relPath,
          reason: `modification time ${file.modifiedAt.toISOString()} is out of range`,
        });
        continue;
      }
      let inspected: InspectedFile | null = null;
      const remember = (entry: Pick<Inspection, 'inspected' | 'invalid'>) =>
        seen.set(file.relPath, { sizeBytes: file.sizeBytes, modifiedMs: file.modifiedAt.getTime(), ...entry });
      const last = known.get(file.relPath);
      const unchanged = unchangedSince(last, file);
      if (unchanged) {
        kept += 1;
        if (last.invalid) {
          invalid.push({ relPath: file.relPath, ...last.invalid });
          reused += 1;
          continue;
        }
        // Sent as last time: a warm scan of 20,000 files is a listing, not 20,000 messages rebuilt.
        if (last.sent !== undefined) {
          if (last.sent) files.push(last.sent);
          reused += 1;
          continue;
        }
        inspected = last.inspected;
      } else if (needsLook(file)) {
        const looked = await (looks.get(file.relPath) ?? lookAt(file.relPath));
        looks.delete(file.relPath);
        if ('unusable' in looked) {
          // A disk image whose header names other files (a backing file, a data file, VMDK extents)
          // would give a VM those files as its disk; one named .qcow2 that is not one would be
          // read as what it is not: neither is offered, and each says why (as a VM's creation
          // would refuse it, only later). A VM's own disks (vms/) are not images.
          invalid.push({ relPath: file.relPath, ...looked.unusable });
          remember({ inspected: null, invalid: looked.unusable });
          continue;
        }
        if ('error' in looked) {
          const { error } = looked;
          const message = error instanceof Error ? error.message : String(error);
          if (inspector) uninspected.push({ relPath: file.relPath, err: message });
          // Turned into a link out of the pool since the listing: not read, and not known to be gone.
          if (isQuantixError(error, ErrorCode.PATH_ESCAPES_POOL)) {
            skipped.push({ relPath: file.relPath, reason: `refused: ${message}` });
            continue;
          }
          // A file that is no ISO at all (a text file named .iso, a cut-off copy) is not offered as one.
          const code = NOT_AN_ISO.find((c) => isQuantixError(error, c));
          if (code) {
            invalid.push({ relPath: file.relPath, code, message });
            remember({ inspected: null, invalid: { code, message } });
            continue;
          }
        } else {
          // The inspector's reading, or a disk image's format from its header (no inspector needed).
          inspected = looked.inspected;
          remember({ inspected, invalid: null });
        }
      }
      const sent = sizedFile({
        relPath: file.relPath,
        kind: content === 'iso' ? 'iso' : 'cloud',
        format: inspected?.format ?? formatFromName(file.relPath),
        sizeBytes: file.sizeBytes,
        modifiedAt: file.modifiedAt.toISOString(),
        ...(inspected?.name ? { name: inspected.name } : {}),
        ...(inspected?.os ? { os: inspected.os } : {}),
        ...(inspected?.labels ? { labels: inspected.labels } : {}),
        ...(inspected?.firmware ? { firmware: inspected.firmware } : {}),
      });
      if (sent) files.push(sent);
      // Remembered with what was sent. A file whose inspection failed is not remembered: the next
      // scan reads it again. With no inspector there is nothing to read, only the message to keep.
      const entry = unchanged ? last : seen.get(file.relPath);
      if (entry) entry.sent = sent;
      else if (!this.options.inspector) {
        const modifiedMs = file.modifiedAt.getTime();
        seen.set(file.relPath, { sizeBytes: file.sizeBytes, modifiedMs, inspected: null, invalid: null, sent });
      }
    }
    let remembered = known;
    if (kept === known.size) {
      // Every known file is still there, unchanged: the new ones join them.
      for (const [relPath, entry] of seen) known.set(relPath, entry);
    } else {
      remembered = new Map();
      for (const file of listing.files) {
        const entry = seen.get(file.relPath) ?? known.get(file.relPath);
        if (unchangedSince(entry, file)) {
          remembered.set(file.relPath, entry);
        }
      }
    }
    const record: InspectionRecord = { definition, files: remembered };
    if (unchangedListing) record.settled = settled;
    else if (uninspected.length === 0 && skipped.length === 0) {
      record.settled = { listing: listing.files, files: [...files], invalid: [...invalid] };
    }
    this.inspections.set(cacheKey, record);
    if (uninspected.length > 0) {
      this.logger?.warn(
        { poolId, content, count: uninspected.length, files: listing.files.length, first: uninspected.slice(0, 5) },
        `${uninspected.length} of ${listing.files.length} files could not be inspected; those that are not ISOs are left out`,
      );
    }
    const answer = {
      poolId,
      content,
      files: files.length,
      skipped: skipped.slice(0, PROTOCOL_LIMITS.scanFilesPerMessage),
      invalid: invalid.slice(0, PROTOCOL_LIMITS.scanFilesPerMessage),
    };
    // A scan that skipped something is no base for changes: what lies under a skipped path is
    // unknown, and a delta could not say so. A scan that found what the last one reported (the
    // same files, sent as they were) keeps that report, hashed and indexed already.
    const lastReport = this.reports.get(cacheKey);
    // Every file known and taken as sent, none gone: what the last scan reported, without a look.
    const pristine = reused === listing.files.length && kept === known.size && previous?.report === lastReport;
    const report: Report | null =
      skipped.length > 0
        ? null
        : lastReport?.definition === definition && (pristine || reportsSame(lastReport, files, invalid))
          ? lastReport
          : {
              definition,
              fingerprint: scanFingerprint(files.map((f) => f.hash)),
              files: new Map(files.map((f) => [f.file.relPath, f])),
              invalid: new Map(invalid.map((i) => [i.relPath, i.code])),
            };
    if (report) this.reports.set(cacheKey, report);
    else this.reports.delete(cacheKey);
    record.report = report ?? undefined;
    if (report && since !== undefined && lastReport?.definition === definition && lastReport.fingerprint === since) {
      const sent = await this.emitDelta(send, poolId, content, lastReport, report, invalid);
      if (sent) return { ...answer, delta: true };
    }
    await this.emitScan(send, poolId, content, { files, skipped, invalid }, report?.fingerprint);
    return answer;
  }

  /**
   * The changes from `base` to `report` as one scan.delta; false (nothing sent) when they do not
   * fit one frame, and the caller sends the whole scan instead.
   */
  private async emitDelta(
    send: Send,
    poolId: string,
    content: PoolContentType,
    base: Report,
    report: Report,
    invalid: ScanInvalid[],
  ): Promise<boolean> {
    if (base === report) {
      const fingerprint = base.fingerprint;
      const empty = { files: [], removed: [] };
      await this.emit(send, {
        v: PROTOCOL_VERSION,
        type: 'scan.delta',
        poolId,
        content,
        base: fingerprint,
        fingerprint,
        ...empty,
      });
      return true;
    }
    const files: ScannedFile[] = [];
    let bytes = 0;
    for (const [relPath, current] of report.files) {
      const before = base.files.get(relPath);
      if (before !== undefined && (before === current || before.hash === current.hash)) continue;
      files.push(current.file);
      bytes += current.bytes;
    }
    const removed: string[] = [];
    for (const relPath of base.files.keys()) {
      if (!report.files.has(relPath)) {
        removed.push(relPath);
        bytes += relPath.length + 3;
      }
    }
    const newlyInvalid = invalid
      .filter((i) => base.invalid.get(i.relPath) !== i.code && i.relPath.length <= PROTOCOL_LIMITS.path)
      .map((i) => ({
        relPath: i.relPath,
        code: truncateText(i.code, PROTOCOL_LIMITS.short),
        message: truncateText(i.message),
      }));
    for (const item of newlyInvalid) bytes += jsonBytes(item);
    const limit = PROTOCOL_LIMITS.scanFilesPerMessage;
    const budget = this.maxMessageBytes === null ? Number.POSITIVE_INFINITY : Math.floor(this.maxMessageBytes / 2);
    if (files.length > limit || removed.length > limit || newlyInvalid.length > limit || bytes > budget) return false;
    await this.emit(send, {
      v: PROTOCOL_VERSION,
      type: 'scan.delta',
      poolId,
      content,
      base: base.fingerprint,
      fingerprint: report.fingerprint,
      files,
      removed,
      ...(newlyInvalid.length > 0 ? { invalid: newlyInvalid } : {}),
    });
    return true;
  }

  /**
   * A scan result as one message when it fits the control plane's frame limit (or the control
   * plane states none), else in parts of at most half that limit, numbered, the last one final.
   * Skipped paths and invalid files travel in the parts too: a skipped path dropped for lack of
   * room would turn the rows under it missing.
   */
  private async emitScan(
    send: Send,
    poolId: string,
    content: PoolContentType,
    scan: { files: SizedFile[]; skipped: ScanSkipped[]; invalid: ScanInvalid[] },
    fingerprint?: string,
  ): Promise<void> {
    const skipped = scan.skipped
      .filter((s) => s.relPath.length <= PROTOCOL_LIMITS.path)
      .map((s) => ({ relPath: s.relPath, reason: truncateText(s.reason) }));
    const invalid = scan.invalid
      .filter((i) => i.relPath.length <= PROTOCOL_LIMITS.path)
      .map((i) => ({
        relPath: i.relPath,
        code: truncateText(i.code, PROTOCOL_LIMITS.short),
        message: truncateText(i.message),
      }));
    // Nodes of protocol 1 never sent skipped or invalid; a control plane of version 1 would refuse neither
    // (zod strips unknown keys), so both are sent whatever the version.
    type Part = { files: ScannedFile[]; skipped: ScanSkipped[]; invalid: ScanInvalid[] };
    const budget = this.maxMessageBytes === null ? Number.POSITIVE_INFINITY : Math.floor(this.maxMessageBytes / 2);
    const parts: Part[] = [{ files: [], skipped: [], invalid: [] }];
    let size = 0;
    const add = <K extends keyof Part>(key: K, item: Part[K][number], length = jsonBytes(item)) => {
      let current = parts[parts.length - 1] as Part;
      const count = current.files.length + current.skipped.length + current.invalid.length;
      if (count > 0 && (size + length > budget || current[key].length >= PROTOCOL_LIMITS.scanFilesPerMessage)) {
        current = { files: [], skipped: [], invalid: [] };
        parts.push(current);
        size = 0;
      }
      (current[key] as Part[K][number][]).push(item);
      size += length;
    };
    for (const { file, bytes } of scan.files) add('files', file, bytes);
    for (const item of skipped) add('skipped', item);
    for (const item of invalid) add('invalid', item);
    const extras = (part: Part) => ({
      ...(part.skipped.length > 0 ? { skipped: part.skipped } : {}),
      ...(part.invalid.length > 0 ? { invalid: part.invalid } : {}),
    });
    if (parts.length === 1) {
      const [only] = parts as [Part];
      await this.emit(send, {
        v: PROTOCOL_VERSION,
        type: 'scan.result',
        poolId,
        content,
        files: only.files,
        ...extras(only),
        ...(fingerprint ? { fingerprint } : {}),
      });
      return;
    }
    const scanId = `scan-${randomBytes(8).toString('hex')}`;
    for (const [part, chunk] of parts.entries()) {
      await this.emit(send, {
        v: PROTOCOL_VERSION,
        type: 'scan.result',
        poolId,
        content,
        files: chunk.files,
        ...extras(chunk),
        scanId,
        part,
        final: part === parts.length - 1,
        ...(fingerprint && part === parts.length - 1 ? { fingerprint } : {}),
      });
    }
  }

  /**
   * image.download. A request for an image this node is already fetching into the same place
   * attaches to that download (a control plane that restarted asks again; the node never
   * fetches twice), and one for a download that finished lately is answered from its result
   * when the file is still there, whole.
   */
  /** The fetcher for a URL's scheme; UNSUPPORTED_OPERATION when this node has none. */
  private fetcherFor(sourceUrl: string): ImageFetcher {
    const scheme = new URL(sourceUrl).protocol.replace(/:$/, '');
    const fetcher = (this.options.fetchers ?? []).find((f) => f.schemes.includes(scheme));
    if (!fetcher) {
      throw new QuantixError(ErrorCode.UNSUPPORTED_OPERATION, `This node has no fetcher for ${scheme} URLs`, {
        details: { scheme },
      });
    }
    return fetcher;
  }

  private async download(
    request: Extract<NodeRequest, { op: 'image.download' }>,
    send: Send,
    how: { inspect?: boolean } = {},
  ): Promise<DownloadAnswer> {
    const samePlace = (d: { poolId: string; relPath: string }) =>
      d.poolId === request.poolId && d.relPath === request.relPath;
    const running = this.downloads.get(request.imageId);
    if (running?.controller.signal.aborted) {
      await windDown(running);
      return this.download(request, send, how);
    }
    if (running) {
      if (!samePlace(running)) {
        throw new QuantixError(
          ErrorCode.IN_USE,
          `Image ${request.imageId} is already being downloaded on this node, to ${running.poolId}:${running.relPath}`,
          { details: { imageId: request.imageId, poolId: running.poolId, relPath: running.relPath } },
        );
      }
      this.logger?.info({ imageId: request.imageId }, 'attached to the download already under way');
      return running.result;
    }
    const done = this.finished.get(request.imageId);
    if (done && samePlace(done)) {
      if (await this.stillAsFinished(done)) {
        this.logger?.info({ imageId: request.imageId }, 'download already finished; answered from its result');
        return { ...done.result, bytesTransferred: 0 };
      }
      this.finished.delete(request.imageId);
    }
    const fetcher = this.fetcherFor(request.sourceUrl);
    const destinationPath = await this.resolve(request.poolId, request.relPath);
    if (this.downloads.has(request.imageId)) return this.download(request, send, how); // started while we resolved
    const controller = new AbortController();
    const progress = { bytesDone: 0 };
    const result = this.fetchImage(request, fetcher, destinationPath, controller.signal, progress, send, how);
    this.downloads.set(request.imageId, {
      poolId: request.poolId,
      relPath: request.relPath,
      controller,
      result,
      get bytesDone() {
        return progress.bytesDone;
      },
    });
    const forget = () => {
      if (this.downloads.get(request.imageId)?.result === result) this.downloads.delete(request.imageId);
    };
    result.then(forget, forget);
    return result;
  }

  /**
   * image.import: the file is downloaded (verified, resumable) to `<relPath>.orig`, which scans
   * never list, then the converter checks and converts it to `relPath`. A second request for an
   * import under way attaches to it. The original is removed unless asked to keep it.
   */
  private importImage(
    request: Extract<NodeRequest, { op: 'image.import' }>,
    send: Send,
  ): Promise<ImageImportResultMessage> {
    const running = this.imports.get(request.imageId);
    if (running?.controller.signal.aborted) return windDown(running).then(() => this.importImage(request, send));
    if (running) {
      if (running.relPath !== request.relPath) {
        return Promise.reject(
          new QuantixError(
            ErrorCode.IN_USE,
            `Image ${request.imageId} is already being imported to ${running.relPath}`,
            {
              details: { imageId: request.imageId, relPath: running.relPath },
            },
          ),
        );
      }
      return running.result;
    }
    const controller = new AbortController();
    const result = this.finishedImport(request).then(
      (done) => done ?? this.runImport(request, send, controller.signal),
    );
    this.imports.set(request.imageId, { relPath: request.relPath, controller, result });
    const forget = () => {
      if (this.imports.get(request.imageId)?.result === result) this.imports.delete(request.imageId);
    };
    result.then(forget, forget);
    return result;
  }

  /**
   * An import that finished lately (a control plane that restarted meanwhile asks again), answered
   * from its result when the converted file is still there, whole; else null.
   */
  private async finishedImport(
    request: Extract<NodeRequest, { op: 'image.import' }>,
  ): Promise<ImageImportResultMessage | null> {
    const done = this.finished.get(request.imageId);
    if (!done || done.poolId !== request.poolId || done.relPath !== request.relPath) return null;
    if (!('sourceFormat' in done.result)) return null; // the original's download, not the import
    if (!(await this.stillAsFinished(done))) return null;
    this.logger?.info({ imageId: request.imageId }, 'import already finished; answered from its result');
    return { ...done.result, bytesTransferred: 0 };
  }

  private async runImport(
    request: Extract<NodeRequest, { op: 'image.import' }>,
    send: Send,
    signal: AbortSignal,
  ): Promise<ImageImportResultMessage> {
    const converter = this.options.converter;
    if (!converter) {
      throw new QuantixError(ErrorCode.UNSUPPORTED_OPERATION, 'This node cannot import images (no image converter)');
    }
    const { targetFormat, claimedFormat, keepOriginal, ...download } = request;
    const originalRelPath = `${request.relPath}.orig`;
    const fetched = await this.download(
      { ...download, op: 'image.download', relPath: originalRelPath },
      send,
      // The converter looks at the file itself, refusing an unsafe one before qemu-img opens it.
      { inspect: false },
    );
    signal.throwIfAborted();
    const sourcePath = await this.resolve(request.poolId, originalRelPath);
    const destinationPath = await this.resolve(request.poolId, request.relPath);
    const interval = this.options.progressIntervalMs ?? 500;
    let lastSent = 0;
    let lastStage = '';
    const imported = await converter.importImage({
      sourcePath,
      destinationPath,
      targetFormat,
      // No format named (null from a control plane, or absent): the file's name is the claim checked.
      ...(claimedFormat ? { claimedFormat } : {}),
      originalName: decodeURIComponent(basename(new URL(request.sourceUrl).pathname)),
      removeSource: !keepOriginal,
      signal,
      onProgress: (progress) => {
        const now = Date.now();
        if (progress.stage === lastStage && now - lastSent < interval && progress.percent !== 100) return;
        lastSent = now;
        lastStage = progress.stage;
        void this.emit(send, {
          v: PROTOCOL_VERSION,
          type: 'image.progress',
          imageId: request.imageId,
          phase: 'verifying',
          stage: progress.stage,
          percent: progress.percent === null ? null : Math.min(100, Math.max(0, progress.percent)),
          bytesDone: progress.bytesDone ?? fetched.sizeBytes,
          bytesTotal: progress.bytesDone === undefined ? fetched.sizeBytes : null,
          bytesPerSecond: null,
          etaSeconds: null,
        });
      },
    });
    const [first, ...extra] = imported.disks;
    if (!first) throw new QuantixError(ErrorCode.INTERNAL_ERROR, 'The import produced no disk');
    const directory = posix.dirname(request.relPath);
    const answer: DownloadAnswer & ImageImportResultMessage = {
      sizeBytes: first.sizeBytes,
      checksum: first.checksum,
      format: first.format,
      virtualSizeBytes: first.virtualSizeBytes,
      bytesTransferred: fetched.bytesTransferred,
      resumed: fetched.resumed,
      sourceFormat: first.sourceFormat,
      compression: first.compression,
      ovf: imported.ovf
        ? {
            ...imported.ovf,
            name: imported.ovf.name === null ? null : truncateText(imported.ovf.name, PROTOCOL_LIMITS.name),
          }
        : null,
      extraDisks: extra.map((disk) => ({
        relPath: directory === '.' ? basename(disk.path) : posix.join(directory, basename(disk.path)),
        sizeBytes: disk.sizeBytes,
        virtualSizeBytes: disk.virtualSizeBytes,
        checksum: disk.checksum,
      })),
    };
    // Remembered under the image's own place (replacing the original's download): a hello reports
    // it done, and the same request asked again is answered from it.
    await this.rememberFinished(request.imageId, { poolId: request.poolId, relPath: request.relPath, result: answer });
    return answer;
  }

  private async fetchImage(
    request: Extract<NodeRequest, { op: 'image.download' }>,
    fetcher: ImageFetcher,
    destinationPath: string,
    signal: AbortSignal,
    progressOut: { bytesDone: number },
    send: Send,
    how: { inspect?: boolean } = {},
  ): Promise<DownloadAnswer> {
    const interval = this.options.progressIntervalMs ?? 500;
    let lastSent = 0;
    let phase: 'downloading' | 'verifying' | undefined;
    const result = await fetcher.fetch({
      sourceUrl: request.sourceUrl,
      destinationPath,
      ...(how.inspect === false ? { inspect: false } : {}),
      checksum: request.checksum,
      checksumUrl: request.checksumUrl,
      checksumAlgorithm: request.checksumAlgorithm ?? null,
      signal,
      onProgress: (progress) => {
        progressOut.bytesDone = progress.bytesDone;
        // Every byte in: what follows is the checksum. That moment is always reported.
        const next =
          progress.bytesTotal !== null && progress.bytesDone >= progress.bytesTotal ? 'verifying' : 'downloading';
        const now = Date.now();
        if (next === phase && now - lastSent < interval) return;
        lastSent = now;
        phase = next;
        void this.emit(send, {
          v: PROTOCOL_VERSION,
          type: 'image.progress',
          imageId: request.imageId,
          phase: next,
          bytesDone: progress.bytesDone,
          bytesTotal: progress.bytesTotal,
          bytesPerSecond: progress.bytesPerSecond,
          etaSeconds: progress.etaSeconds,
        });
      },
    });
    // A fetcher that looked at the file (qemu-img, after its header checks) says what it is; of one
    // that did not, only the name is taken (describeByName).
    const described =
      result.format !== undefined || how.inspect === false
        ? { format: result.format ?? null, virtualSizeBytes: result.virtualSizeBytes ?? null }
        : describeByName(result.path, result.sizeBytes);
    const answer: DownloadAnswer = {
      sizeBytes: result.sizeBytes,
      checksum: result.checksum,
      ...described,
      bytesTransferred: result.bytesTransferred,
      resumed: result.resumed,
    };
    // Remembered before the download leaves `downloads`: a hello never misses it.
    await this.rememberFinished(request.imageId, { poolId: request.poolId, relPath: request.relPath, result: answer });
    return answer;
  }

  private async rememberFinished(
    imageId: string,
    done: Omit<FinishedDownload, 'finishedAt' | 'mtimeMs'>,
  ): Promise<void> {
    const written = await this.poolFile(done.poolId, done.relPath).catch(() => null);
    this.finished.delete(imageId);
    this.finished.set(imageId, { ...done, finishedAt: Date.now(), mtimeMs: written?.info.mtimeMs ?? null });
    this.pruneFinished();
  }

  /**
   * Whether a finished download's file is still the one it wrote (its size and mtime): only then
   * is the same request answered from its result. A file written over since — by hand, with bytes
   * of the same size, say, which a verify then found not to be the recorded ones — is fetched again.
   */
  private async stillAsFinished(done: FinishedDownload): Promise<boolean> {
    const file = await this.poolFile(done.poolId, done.relPath).catch(() => null);
    return file !== null && file.info.size === done.result.sizeBytes && file.info.mtimeMs === done.mtimeMs;
  }

  private pruneFinished(): void {
    const oldest = Date.now() - FINISHED_KEEP_MS;
    for (const [imageId, done] of this.finished) {
      if (this.finished.size > FINISHED_KEEP || done.finishedAt < oldest) this.finished.delete(imageId);
    }
  }

  private async createVm(spec: VmSpec): Promise<NodeResultOf<'vm.create'>> {
    const vms = this.vms();
    const networks = spec.nics.map((nic) =>
      nic.attachment === 'network'
        ? { kind: 'network' as const, network: nic.source, mac: nic.mac }
        : { kind: 'bridge' as const, bridge: nic.source, mac: nic.mac },
    );
    const common = {
      name: spec.name,
      vcpus: spec.cpu,
      memoryMiB: spec.memoryMiB,
      firmware: spec.firmware,
      networks,
      ...(spec.osinfoId ? { osinfoId: spec.osinfoId } : {}),
    };
    let created: CreatedVm;
    if (spec.boot.kind === 'cloud') {
      const [baseImagePath, diskPath, seedPath] = await Promise.all([
        this.resolve(spec.boot.image.poolId, spec.boot.image.relPath),
        this.resolve(spec.boot.disk.poolId, spec.boot.disk.relPath),
        this.resolve(spec.boot.seed.poolId, spec.boot.seed.relPath),
      ]);
      const { hostname, user, sshAuthorizedKeys } = spec.boot.cloudInit;
      created = await vms.createFromCloudImage({
        ...common,
        baseImagePath,
        diskPath,
        seedPath,
        diskSizeGiB: spec.boot.disk.sizeGiB,
        // Keys go to the named user when there is one, else to the image's default user.
        cloudInit: user ? { hostname, user: { name: user, sshAuthorizedKeys } } : { hostname, sshAuthorizedKeys },
      });
    } else {
      const [isoPath, diskPath] = await Promise.all([
        this.resolve(spec.boot.iso.poolId, spec.boot.iso.relPath),
        this.resolve(spec.boot.disk.poolId, spec.boot.disk.relPath),
      ]);
      created = await vms.createFromIso({ ...common, isoPath, diskPath, diskSizeGiB: spec.boot.disk.sizeGiB });
    }
    return { name: created.domain.name, uuid: created.domain.uuid, state: created.domain.state };
  }

  private poolFor(poolId: string): { pool: StoragePool; backend: StorageBackend } {
    const active = this.active.get(poolId);
    if (!active) {
      throw new QuantixError(ErrorCode.NOT_FOUND, `Pool ${poolId} is not assigned to node ${this.options.nodeId}`, {
        details: { poolId, nodeId: this.options.nodeId },
      });
    }
    return { pool: active.pool, backend: backendFor(this.options.backends, active.pool.type) };
  }

  /** An absolute path on this node, resolved by the pool's backend (so it cannot leave the pool). */
  private async resolve(poolId: string, relPath: string): Promise<string> {
    const { pool, backend } = this.poolFor(poolId);
    return callBackend(backend, 'resolve', { pool, relPath });
  }

  /** A regular file inside a pool, with its stat; IMAGE_FILE_MISSING when there is none there. */
  private async poolFile(poolId: string, relPath: string): Promise<{ path: string; info: Stats }> {
    const path = await this.resolve(poolId, relPath);
    const info = await stat(path).catch(() => null);
    if (!info?.isFile()) {
      throw new QuantixError(ErrorCode.IMAGE_FILE_MISSING, `No file ${relPath} in pool ${poolId}`, {
        details: { poolId, relPath },
      });
    }
    return { path, info };
  }

  /**
   * Starts or stops a domain, and answers its state after. Asked of a domain already where the
   * action would take it (started while running, stopped while shut off), the hypervisor refuses
   * with INVALID_STATE: that is no error for whoever asked — the domain is as they want it, and
   * the control plane records the state it is told (a record that had gone stale included).
   */
  private async powerAction(
    name: string,
    wanted: 'running' | 'shutoff',
    action: () => Promise<void>,
  ): Promise<{ name: string; state: DomainState }> {
    try {
      await action();
    } catch (error) {
      if (!isQuantixError(error, NodeRuntimeErrorCode.INVALID_STATE)) throw error;
      const state = await this.hypervisor().state({ name });
      if (state !== wanted) throw error;
      return { name, state };
    }
    return { name, state: await this.hypervisor().state({ name }) };
  }

  private hypervisor(): Hypervisor {
    if (!this.options.hypervisor) {
      throw new QuantixError(ErrorCode.UNSUPPORTED_OPERATION, 'This node runs no hypervisor');
    }
    return this.options.hypervisor;
  }

  private vms(): VmLifecycle {
    if (!this.options.vms) throw new QuantixError(ErrorCode.UNSUPPORTED_OPERATION, 'This node cannot create VMs');
    return this.options.vms;
  }

  private async emit(send: Send, message: NodeMessage): Promise<void> {
    try {
      // Everything after the hello is written in the version the welcome agreed on.
      await send(message.type === 'hello' ? message : { ...message, v: this.protocolVersion });
    } catch (error) {
      // The connection is down; the control plane resends what it needs on reconnect.
      this.logger?.warn({ type: message.type, err: String(error) }, 'could not send a message to the control plane');
    }
  }
}

function toStoragePool(definition: ProtocolPool, nodeId: string): StoragePool {
  const now = new Date();
  return {
    id: definition.id,
    name: definition.name,
    description: '',
    type: definition.type,
    config: definition.config,
    contentTypes: definition.contentTypes,
    shared: definition.shared,
    nodeIds: [nodeId],
    labels: {},
    version: 0,
    createdAt: now,
    updatedAt: now,
  };
}

function sameDefinition(a: ProtocolPool, b: ProtocolPool): boolean {
  return a.type === b.type && stableJson(a.config) === stableJson(b.config);
}

/**
 * A change worth reporting: another status, or an active pool found at another path. The words
 * of a reason may differ between a status check and an activation of the same trouble.
 */
/**
 * A scanned file within the protocol's limits: what was read from inside it (a name, OS fields,
 * labels) is cut to size, so that one odd file never gets the whole scan refused.
 */
function withinLimits(file: ScannedFile): ScannedFile {
  const short = (text: string | null | undefined) =>
    typeof text === 'string' ? truncateText(text, PROTOCOL_LIMITS.short) : text;
  const os = file.os && {
    ...file.os,
    ...(file.os.distribution !== undefined ? { distribution: short(file.os.distribution) ?? null } : {}),
    ...(file.os.version !== undefined ? { version: short(file.os.version) ?? null } : {}),
    ...(file.os.arch !== undefined ? { arch: short(file.os.arch) ?? null } : {}),
    ...(file.os.osinfoVersion !== undefined ? { osinfoVersion: short(file.os.osinfoVersion) ?? null } : {}),
    ...(typeof file.os.shortId === 'string' ? { shortId: truncateText(file.os.shortId, 100) } : {}),
  };
  const labels =
    file.labels &&
    Object.fromEntries(
      Object.entries(file.labels)
        .filter(([key]) => key.length <= 128)
        .slice(0, PROTOCOL_LIMITS.labels)
        .map(([key, value]) => [key, truncateText(value, 512)]),
    );
  return {
    ...file,
    ...(file.name !== undefined ? { name: truncateText(file.name, PROTOCOL_LIMITS.name) } : {}),
    ...(os ? { os } : {}),
    ...(labels ? { labels } : {}),
  };
}

/**
 * A report the control plane need not hear again: the same status and, for an active pool, the
 * same mount, size and free space. Free space counts as moved once it has by 1% of the pool's
 * size or 1 GiB, whichever is less — what the Pools page shows follows a pool filling up or
 * being cleared (it was the figure of the last status change, however old), without a report
 * every 30 s for each byte a running VM writes.
 */
function sameReport(a: PoolReport, b: PoolReport): boolean {
  if (a.status !== b.status) return false;
  if (a.status !== 'active') return true;
  if (a.mountPath !== b.mountPath || a.capacityBytes !== b.capacityBytes) return false;
  if (a.availableBytes === null || b.availableBytes === null) return a.availableBytes === b.availableBytes;
  const step =
    b.capacityBytes === null ? FREE_SPACE_STEP_BYTES : Math.min(FREE_SPACE_STEP_BYTES, b.capacityBytes / 100);
  return Math.abs(a.availableBytes - b.availableBytes) < Math.max(step, 1);
}

/** The most free space may move before a re-check reports it (sameReport). */
const FREE_SPACE_STEP_BYTES = 1024 ** 3;

function wholeBytes(value: number | null): number | null {
  return value === null ? null : Math.max(0, Math.floor(value));
}

function formatFromName(path: string): ImageFormat | null {
  const name = basename(path).toLowerCase();
  const dot = name.lastIndexOf('.');
  return dot === -1 ? null : (IMAGE_EXTENSIONS[name.slice(dot)] ?? null);
}

/**
 * A downloaded file its fetcher did not look at, as far as its name tells: an ISO (whose one size
 * is its virtual size), else the format its extension names and no virtual size. qemu-img is not
 * run on it here: \`qemu-img info\` opens the files an image names (a VMDK descriptor's extents, a
 * qcow2's data file), which only a fetcher's header checks make safe; a VM's base image is read
 * (and refused if it names another file) when a VM is made from it.
 */
function describeByName(
  path: string,
  sizeBytes: number,
): { format: ImageFormat | null; virtualSizeBytes: number | null } {
  const format = formatFromName(path);
  return { format, virtualSizeBytes: format === 'iso' ? sizeBytes : null };
}

/** An error as the protocol carries it: within its limits, whatever the error said. */
function errorBody(error: unknown): { code: string; message: string; retryable?: boolean } {
  if (isQuantixError(error)) {
    const { retryable } = error.details;
    return {
      code: truncateText(error.code, PROTOCOL_LIMITS.short),
      message: truncateText(error.message),
      // What the thrower knew (a 404 from a mirror is final, a reset connection is not) crosses over.
      ...(typeof retryable === 'boolean' ? { retryable } : {}),
    };
  }
  return {
    code: ErrorCode.INTERNAL_ERROR,
    message: truncateText(error instanceof Error ? error.message : String(error)),
  };
}

function requestIdOf(data: unknown): string | null {
  let value = data;
  if (typeof data === 'string') {
    try {
      value = JSON.parse(data);
    } catch {
      return null;
    }
  }
  const candidate = value as { type?: unknown; requestId?: unknown } | null;
  return candidate?.type === 'request' && typeof candidate.requestId === 'string' && candidate.requestId !== ''
    ? candidate.requestId
    : null;
}

/**
 * Waits until a cancelled run has let go of its files. A download, import or copy asked for again
 * right after image.cancel — both messages can come in one read — starts a run of its own once
 * the cancelled one is done (resuming its partial file), instead of joining it and failing with it.
 */
function windDown(run: { result: Promise<unknown> }): Promise<void> {
  return run.result.then(
    () => undefined,
    () => undefined,
  );
}
