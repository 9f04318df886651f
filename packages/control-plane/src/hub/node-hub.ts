import { randomBytes } from 'node:crypto';
import {
  agreeProtocolVersion,
  ConcurrencyLimiter,
  type ControlMessage,
  DELTA_SCAN_SINCE_VERSION,
  ErrorCode,
  type EventBus,
  type ImageKind,
  isQuantixError,
  NODE_CLOSE_CODES,
  type NodeMessage,
  type NodeOperation,
  type NodeRequest,
  type NodeRequestOf,
  type NodeResultOf,
  OPERATION_SINCE_VERSION,
  POOLS_IN_HELLO_SINCE_VERSION,
  type PoolContentType,
  type PoolReport,
  PROTOCOL_LIMITS,
  PROTOCOL_VERSION,
  PROTOCOL_VERSIONS,
  parseNodeMessage,
  parseNodeResult,
  QuantixError,
  type Repositories,
  type ScanInvalid,
  type ScannedFile,
  type ScanSkipped,
  type StoragePool,
  truncateText,
} from '@quantix/core';
import type { Logger } from 'pino';
import { ingestScan } from '../images/scan-ingest.js';
import { nodesWithActivePool } from '../nodes/placement.js';
import {
  type DesiredPools,
  desiredSetsOf,
  PoolSyncService,
  type PoolsSnapshot,
  type StoredReport,
} from '../pools/pool-sync.js';
import { Batcher } from './batcher.js';
import type { NodeChannel } from './channel.js';
import { DEFAULT_NODE_QUEUE_LIMITS, NodeMessageQueue, type NodeQueueLimits } from './node-queue.js';

type HelloMessage = Extract<NodeMessage, { type: 'hello' }>;
type ProgressMessage = Extract<NodeMessage, { type: 'image.progress' }>;

/** A node's token digest as read for the check of a connection, and when (for NodeHub.attach). */
export interface NodeTokenRead {
  /** The SHA-256 digest of the node's token; null when it has none. */
  digest: string | null;
  /** This hub's count of token replacements when it was read. */
  readAt: number;
}

/**
 * A connection from a node daemon: `connecting` until its hello has been answered (welcome and
 * pool push sent, the node recorded connected), then `welcomed`, then `closed` — for good; a
 * reconnect is a new link. Only a welcomed link is the node's live link: requests go there.
 */
type LinkState = 'connecting' | 'welcomed' | 'closed';

interface NodeLink {
  readonly nodeId: string;
  /** This link among the node's links over time (a new connection, a new id). */
  readonly linkId: string;
  readonly channel: NodeChannel;
  /**
   * The digest of the token the connection was opened with, when the transport said (it checked
   * the token): a link whose node has another digest by now is closed (letStaleTokensGo).
   */
  readonly tokenDigest: string | null | undefined;
  /** When that digest was read, on this hub's count of token replacements (NodeTokenRead.readAt). */
  readonly tokenReadAt: number | undefined;
  state: LinkState;
  /** The protocol version agreed at hello; until then, this release's. */
  version: number;
  /** The first message, a hello for this node, arrived (it is queued or being answered). */
  helloSeen: boolean;
  helloTimer: NodeJS.Timeout | undefined;
  /** The generation the node last acknowledged. */
  syncedGeneration: number | null;
  /**
   * The generation of the last set the node was sent (a push, or its own set taken as current at
   * the welcome), unless storing its acknowledgement failed: a push of no newer set is not made
   * again (a notification late for a change already sent, a listener reconnecting), as it would
   * only make the node activate and report every pool, and be scanned, again.
   */
  sentGeneration: number | null;
  readonly queue: NodeMessageQueue;
  /** The loop working through the queue, while there is something in it. */
  draining: Promise<void> | null;
  paused: boolean;
  invalidMessages: number;
  /** What the link tracks of its scans, made at the first (scansOf): most links never scan. */
  scanning: LinkScans | undefined;
  /**
   * Ids of the requests sent on this link and not answered yet, made at the first: a link that
   * goes fails them without a look at every other node's.
   */
  pending: Set<string> | undefined;
}

/**
 * A link's scan bookkeeping. Made when first needed, not with the link: a storm's 2,000 links
 * would each carry four empty maps, copied through young-generation collections and then kept.
 */
interface LinkScans {
  /** Pool id → the pool version this link last scanned: a pool is scanned again only when it changed. */
  readonly scanned: Map<string, number>;
  /** Scans coming in parts, by scan id. */
  readonly parts: Map<string, CollectedScan & { poolId: string; content: 'iso' | 'images'; nextPart: number }>;
  /** Scans (by scanStateKey) whose delta was refused: the request is asked again, for a full scan. */
  readonly refusedDeltas: Set<string>;
  /** The rows' stamp read when a scan with `since` was asked for, by scanStateKey: checked against its delta. */
  readonly stampsAtRequest: Map<string, Promise<string | null>>;
}

function scansOf(link: NodeLink): LinkScans {
  link.scanning ??= { scanned: new Map(), parts: new Map(), refusedDeltas: new Set(), stampsAtRequest: new Map() };
  return link.scanning;
}

/**
 * What the hub knows of a node's pool after applying a scan of it: the fingerprint of the node's
 * report, and the stamp its rows had right after. While the rows keep that stamp, they are what
 * the report left, and the node may send changes against that fingerprint.
 */
interface ScanState {
  fingerprint: string;
  stamp: string;
}

interface PendingRequest {
  link: NodeLink;
  op: NodeOperation;
  resolve(result: unknown): void;
  reject(error: Error): void;
  timer: NodeJS.Timeout;
}

export interface NodeHubOptions {
  repositories: Repositories;
  events: EventBus;
  logger: Logger;
  /** How long a node has to say hello after connecting. */
  helloTimeoutMs?: number;
  /**
   * Most database work done for nodes at once, across every node: node traffic never holds
   * more than this many of the database pool's connections (10 by default), so the API always
   * has some. Default 2.
   */
  nodeDatabaseConcurrency?: number;
  /**
   * How long a node whose connection dropped has to connect again before it is recorded
   * disconnected (its pool states unknown, `node.disconnected` emitted). Its requests fail at
   * once either way; only the record waits. Default 2 s; 0 records at once.
   */
  disconnectGraceMs?: number;
  /** Bounds of each node's message queue. */
  queueLimits?: NodeQueueLimits;
  /** Most files one scan sent in parts may hold. */
  maxScanFiles?: number;
  /**
   * Who holds each node's connection, when several replicas share the database (the
   * ReplicaRegistry): a welcomed node is claimed for this replica, and a node another replica
   * holds is not recorded disconnected by this one.
   */
  leases?: NodeLeases;
  /** Requests for nodes held by other replicas go here. */
  remote?: RemoteNodeRequests;
}

/** The part of the replica registry the hub uses. */
export interface NodeLeases {
  /** Takes the leases of these nodes for this replica (one statement). */
  claimAll(nodeIds: readonly string[]): Promise<unknown>;
  /** Gives up these nodes' leases; returns those another live replica holds now (one statement). */
  releaseAll(nodeIds: readonly string[]): Promise<Set<string>>;
  /** The replica holding the node now, or null. */
  holderOf(nodeId: string): Promise<string | null>;
  /** Whether another replica held the node at the last look (no database round trip). */
  heldElsewhere(nodeId: string): boolean;
  /** Every node some live replica holds now (one query). */
  heldNodeIdsAnywhere(): Promise<Set<string>>;
  readonly replicaId: string;
  /** This replica's own URL, which nodes held elsewhere dial back to (consoles, exports); null if none was given. */
  readonly url?: string | null;
}

/** Carries a request to the replica holding the node (NodeRequestRelay). */
export interface RemoteNodeRequests {
  readonly enabled: boolean;
  forward(nodeId: string, request: NodeRequest, timeoutMs: number): Promise<unknown>;
}

export interface NodeRequestOptions {
  timeoutMs?: number;
  /** Only a link on this replica will do (a request carried here from another replica). */
  localOnly?: boolean;
}

const MAX_SCANS_IN_PARTS = 4;
const DEFAULT_DISCONNECT_GRACE_MS = 2_000;
// Error replies stop when the node is not reading them: a flood of bad frames cannot fill memory.
const MAX_BUFFERED_REPLY_BYTES = 1024 * 1024;
const LOGGED_INVALID_MESSAGES = 10;
/** How long a node may take to scan a pool and answer. */
const SCAN_TIMEOUT_MS = 300_000;
/** How long a shared pool's scan after sync stands for its other nodes' (see NodeHub.sharedScans). */
const SHARED_SCAN_FRESH_MS = 60_000;

/** The one NODE_NOT_CONNECTED error: what cannot be done, and what the user can do about it. */
export function nodeNotConnected(
  nodeId: string,
  consequence?: string,
  details: Record<string, unknown> = {},
): QuantixError {
  return new QuantixError(
    ErrorCode.NODE_NOT_CONNECTED,
    `Node ${nodeId} is not connected${consequence ? `, ${consequence}` : ''}; start its node daemon and retry`,
    { details: { nodeId, ...details } },
  );
}

/**
 * The control plane's end of every node connection. It authenticates nothing itself (the HTTP
 * layer checked the node's token before the upgrade), then: waits for hello, pushes the node's
 * full desired pool set on every connect and after every pool change, stores what the node
 * reports, ingests scans, and carries requests to nodes and their answers back.
 *
 * No node can starve the API: frames are size-limited by the WebSocket server (see
 * `PROTOCOL_LIMITS.maxNodeMessageBytes`); each node's messages go through a bounded queue,
 * handled one at a time in order, with superseded reports merged (pool states per pool, whole
 * scans, progress); reading from a node pauses while its queue is long, and a node that floods
 * past the hard limit is told NODE_BUSY and disconnected (close code 4008); and all database
 * work for nodes shares a few connections (`nodeDatabaseConcurrency`).
 */
export class NodeHub {
  /** The newest link of each node that said hello (connecting or welcomed). */
  private readonly links = new Map<string, NodeLink>();
  private readonly pending = new Map<string, PendingRequest>();
  /** Per node: connection bookkeeping (welcome, disconnect) runs in order, one after another. */
  private readonly nodeChains = new Map<string, Promise<void>>();
  /** Per node: the recording of a dropped link, waiting out `disconnectGraceMs`. */
  private readonly disconnectsInGrace = new Map<string, { timer: NodeJS.Timeout; record: () => Promise<void> }>();
  /** By scanStateKey: the last scan applied of each node's pool, while deltas may follow it. */
  private readonly scanStates = new Map<string, ScanState>();
  /**
   * Shared pool id → the last scan after sync wanted here (its pool version, the node whose sync
   * wanted it, when, and when its result came back). A shared pool's files are the same on every
   * node: while one scan of it is under way, and for SHARED_SCAN_FRESH_MS after its result, the
   * syncs of its other nodes want none (that node's own next sync does: it may have restarted) —
   * 2,000 nodes reconnecting would otherwise read one NFS export 2,000 times (or, scan after scan
   * as each ended, several times a storm). Under way until its result or its failure comes back
   * here, or at the latest until the scan's timeout (it may have run through another replica); a
   * failure wants the next sync's scan. `seq` orders the wants, so a scan that ends clears none
   * wanted after it began.
   */
  private readonly sharedScans = new Map<
    string,
    { version: number; nodeId: string; at: number; seq: number; doneAt?: number }
  >();
  private sharedScanSeq = 0;
  private readonly sync: PoolSyncService;
  private readonly database: ConcurrencyLimiter;
  /**
   * Token checks, hellos and disconnects are done in batches across nodes (a reconnect storm is a few
   * statements per batch, not a transaction per node); each batcher uses one connection at a
   * time, outside the `nodeDatabaseConcurrency` share, as pool reports do.
   */
  private readonly welcomes = new Batcher<WaitingWelcome, RecordedWelcome>((batch) => this.recordWelcomes(batch));
  private readonly tokenDigests = new Batcher<string, string | null>(async (nodeIds) => {
    const digests = await this.options.repositories.nodes.getTokenDigests(nodeIds);
    return nodeIds.map((nodeId) => {
      const digest = digests.get(nodeId);
      return digest === undefined
        ? new QuantixError(ErrorCode.NOT_FOUND, `Node ${nodeId} not found`, { details: { nodeId } })
        : digest;
    });
  });
  private readonly disconnects = new Batcher<{ nodeId: string; reason: string }, null>((batch) =>
    this.recordDisconnects(batch),
  );
  /**
   * The token replacements this hub was told of, counted, and the count at each node's last one:
   * a connection whose token was read before its node's last replacement is refused at its hello.
   */
  private tokenReplacements = 0;
  private readonly tokenReplacedAt = new Map<string, number>();
  /** Request ids differ across restarts: an answer meant for a previous control plane matches nothing here. */
  private readonly requestPrefix = randomBytes(6).toString('hex');
  private requestCounter = 0;
  private linkCounter = 0;
  private closed = false;
  /**
   * Pushes to every node begun so far (pushPoolsToAll, after each pool change). A welcome that
   * read the pools before one began may hold an older set, and that push passed its link by
   * (not welcomed yet): such a link is pushed once welcomed (if the set is newer than its welcome's).
   */
  private poolPushes = 0;
  /**
   * Called after a node reported its pools for a push: what it reported is stored (downloads
   * resume from here). Outside the links' database share: the handler batches its own work.
   */
  onPoolsSynced: ((nodeId: string) => Promise<void> | void) | undefined;
  /** Called for each image.progress message from a node. */
  onImageProgress: ((message: ProgressMessage, nodeId: string) => Promise<void> | void) | undefined;
  /** Called once a node is welcomed whose hello names downloads it has in hand, with that hello. */
  onNodeWelcomed: ((nodeId: string, hello: HelloMessage) => Promise<void> | void) | undefined;
  /**
   * Where the scan after a pool sync goes: `scan` is that pool's version on this link (a key
   * for the scan once per link and version). Default: asked of the node at once. The control
   * plane sends it as a job instead (durable, retried, taken over).
   */
  onScanWanted: ((scan: { nodeId: string; poolId: string; key: string }) => Promise<void>) | undefined;

  constructor(private readonly options: NodeHubOptions) {
    this.sync = new PoolSyncService({ repositories: options.repositories, events: options.events });
    this.database = new ConcurrencyLimiter(options.nodeDatabaseConcurrency ?? 2);
  }

  connectedNodeIds(): string[] {
    return [...this.links.values()].filter((l) => l.state === 'welcomed').map((l) => l.nodeId);
  }

  /** Whether the node's live link is on this replica. */
  isConnectedHere(nodeId: string): boolean {
    return this.links.get(nodeId)?.state === 'welcomed';
  }

  /** Connected here, or (as of the last lease renewal) to another replica this one can carry requests to. */
  isConnected(nodeId: string): boolean {
    if (this.isConnectedHere(nodeId)) return true;
    return this.options.remote?.enabled === true && this.options.leases?.heldElsewhere(nodeId) === true;
  }

  /**
   * isConnected, asked of the database when the last lease renewal says no: a node that has just
   * connected to another replica counts at once, not a third of a lease later.
   */
  async isConnectedNow(nodeId: string): Promise<boolean> {
    if (this.isConnected(nodeId)) return true;
    const { remote, leases } = this.options;
    if (!remote?.enabled || !leases) return false;
    const holder = await leases.holderOf(nodeId);
    return holder !== null && holder !== leases.replicaId;
  }

  /**
   * Fails with NODE_NOT_CONNECTED unless the node is connected (isConnectedNow); `consequence`
   * says what cannot be done, e.g. "so its networks cannot be read".
   */
  async requireConnected(nodeId: string, consequence?: string, details: Record<string, unknown> = {}): Promise<void> {
    if (!(await this.isConnectedNow(nodeId))) throw nodeNotConnected(nodeId, consequence, details);
  }

  /** Requests sent and not yet answered (for tests and health). */
  get pendingRequests(): number {
    return this.pending.size;
  }

  /**
   * At start-up, before any node can connect: nodes a previous run left `connected` are not,
   * and what any node said about its pools is `unknown` until it says it again.
   */
  async reconcileOnStart(): Promise<void> {
    const { repositories, leases } = this.options;
    // Connected to another live replica: that replica's record stands.
    const held = (await leases?.heldNodeIdsAnywhere()) ?? new Set<string>();
    const nodes = (await repositories.nodes.list()).filter((node) => !held.has(node.id));
    for (const node of nodes) {
      if (node.connectionState === 'connected') {
        await repositories.nodes.update(node.id, { connectionState: 'disconnected' });
      }
    }
    // One statement for every node's pools, not one a node: a start with 2,000 nodes is quick.
    await this.sync.markNodesUnknown(
      nodes.map((node) => ({
        nodeId: node.id,
        reason: `node ${node.id} has not connected since the control plane started`,
      })),
    );
  }

  /**
   * Nodes recorded connected that no replica holds any more — their replica died, and its
   * leases ran out — are recorded disconnected, their pool states unknown: what that replica
   * would have written had it lived. Run periodically on one replica (the health sweep).
   * Returns the nodes it recorded.
   */
  async sweepOrphanedNodes(): Promise<string[]> {
    const { repositories, leases } = this.options;
    const swept: string[] = [];
    const held = (await leases?.heldNodeIdsAnywhere()) ?? new Set<string>();
    for (const node of await repositories.nodes.list()) {
      if (node.connectionState !== 'connected' || this.links.has(node.id) || held.has(node.id)) continue;
      // Re-read in the node's order: a link that arrived meanwhile records the connection.
      await this.inNodeOrder(node.id, async () => {
        if (this.links.has(node.id) || (leases && (await leases.holderOf(node.id)) !== null)) return;
        const reason = 'the replica holding its connection is gone';
        await repositories.nodes.update(node.id, { connectionState: 'disconnected' });
        await this.sync.markNodeUnknown(node.id, `node ${node.id} is not connected (${reason})`);
        swept.push(node.id);
        this.options.events.emit('node.disconnected', { nodeId: node.id, reason });
      });
    }
    return swept;
  }

  /**
   * The SHA-256 digest of `nodeId`'s token (null when it has none), for the check before a node's
   * connection is taken: looked up with the other connections of the moment, one query for a
   * storm of them. NOT_FOUND for an unknown node. Give what it answers to `attach`.
   */
  async tokenDigestOf(nodeId: string): Promise<NodeTokenRead> {
    const readAt = this.tokenReplacements;
    return { digest: await this.tokenDigests.add(nodeId), readAt };
  }

  /**
   * Takes over a channel whose node was already authenticated as `nodeId`, with the token read it
   * was checked against (tokenDigestOf): a link whose token is replaced before or after its hello
   * is closed (NODE_CLOSE_CODES.tokenReplaced).
   */
  attach(nodeId: string, channel: NodeChannel, options: { token?: NodeTokenRead } = {}): void {
    const link: NodeLink = {
      nodeId,
      linkId: `${this.requestPrefix}-${++this.linkCounter}`,
      channel,
      tokenDigest: options.token?.digest,
      tokenReadAt: options.token?.readAt,
      state: 'connecting',
      version: PROTOCOL_VERSION,
      helloSeen: false,
      helloTimer: undefined,
      syncedGeneration: null,
      sentGeneration: null,
      queue: new NodeMessageQueue(this.options.queueLimits ?? DEFAULT_NODE_QUEUE_LIMITS),
      draining: null,
      paused: false,
      invalidMessages: 0,
      scanning: undefined,
      pending: undefined,
    };
    link.helloTimer = setTimeout(() => {
      if (!link.helloSeen) channel.close(NODE_CLOSE_CODES.helloTimeout, 'no hello within the time allowed');
    }, this.options.helloTimeoutMs ?? 10_000);
    channel.onMessage((text) => this.receive(link, text));
    channel.onClose(() => this.retire(link, 'connection closed'));
  }

  /**
   * Closes the links of nodes another replica holds now (the replica registry found them taken
   * over): without recording them disconnected, which they are not.
   */
  letGo(nodeIds: readonly string[]): void {
    for (const nodeId of nodeIds) {
      const link = this.links.get(nodeId);
      if (link) this.retire(link, 'held by another replica', NODE_CLOSE_CODES.replaced, { record: false });
    }
  }

  /**
   * Closes the links of nodes whose records were deleted (NODE_CLOSE_CODES.removed). Nothing is
   * recorded for them, not even a disconnect still in its grace period: there is no row left.
   */
  letRemovedGo(nodeIds: readonly string[]): void {
    for (const nodeId of nodeIds) {
      clearTimeout(this.disconnectsInGrace.get(nodeId)?.timer);
      this.disconnectsInGrace.delete(nodeId);
      this.tokenReplacedAt.delete(nodeId);
      const link = this.links.get(nodeId);
      if (link) this.retire(link, 'the node was removed', NODE_CLOSE_CODES.removed, { record: false });
    }
  }

  /**
   * Closes the links of nodes given a new token (NODE_CLOSE_CODES.tokenReplaced): each was opened
   * with the token before, which opens nothing now. Recorded disconnected as any closed link is.
   */
  letReplacedTokenGo(nodeIds: readonly string[]): void {
    for (const nodeId of nodeIds) {
      // A connection checked before now and not yet welcomed is refused at its hello.
      this.tokenReplacedAt.set(nodeId, ++this.tokenReplacements);
      const link = this.links.get(nodeId);
      if (link) this.retire(link, 'the node’s token was replaced', NODE_CLOSE_CODES.tokenReplaced);
    }
  }

  /**
   * Closes the links opened with a token their node no longer has (NODE_CLOSE_CODES.tokenReplaced),
   * by one read of every linked node's digest: what letReplacedTokenGo does when told, for the
   * new tokens this replica was not told of (its listening connection was down). The nodes closed.
   */
  async letStaleTokensGo(): Promise<string[]> {
    const opened = [...this.links.values()].filter((link) => link.tokenDigest !== undefined);
    if (opened.length === 0) return [];
    const current = await this.options.repositories.nodes.getTokenDigests(opened.map((link) => link.nodeId));
    // A node gone meanwhile is the removal's to close; a link replaced meanwhile was checked anew.
    const stale = opened.filter(
      (link) =>
        this.links.get(link.nodeId) === link &&
        current.has(link.nodeId) &&
        current.get(link.nodeId) !== link.tokenDigest,
    );
    const nodeIds = stale.map((link) => link.nodeId);
    this.letReplacedTokenGo(nodeIds);
    return nodeIds;
  }

  /** Pushes the current desired pool set to every connected node (after any pool change). */
  async pushPoolsToAll(): Promise<void> {
    this.poolPushes++;
    await this.pushPoolsTo([...this.links.values()].filter((l) => l.state === 'welcomed'));
  }

  /** Pushes each link its node's current desired pool set, unless it was sent that generation already. */
  private async pushPoolsTo(links: readonly NodeLink[]): Promise<void> {
    if (links.length === 0) return;
    const sets = await this.withDatabase(() => this.sync.desiredPoolsForEach(links.map((link) => link.nodeId)));
    for (const link of links) {
      const desired = sets.get(link.nodeId);
      if (!desired || link.state === 'closed') continue;
      if (link.sentGeneration === null || desired.generation > link.sentGeneration) this.push(link, desired);
    }
  }

  /**
   * Whether a relay session opened on this replica can get its node's channel: the node's link
   * is here, or another replica holds it and this replica has a URL of its own to be dialled at.
   * The same question for consoles and exports, with what stands in the way as the error:
   * NODE_NOT_CONNECTED, naming the replica's missing URL when that is what is missing.
   */
  async requireDialBack(nodeId: string, consequence?: string, details: Record<string, unknown> = {}): Promise<void> {
    if (this.isConnectedHere(nodeId)) return;
    if (!(await this.isConnectedNow(nodeId))) throw nodeNotConnected(nodeId, consequence, details);
    if (!this.options.leases?.url) {
      throw new QuantixError(
        ErrorCode.NODE_NOT_CONNECTED,
        `Node ${nodeId} is connected to another replica and this replica has no URL of its own to be dialled back at${consequence ? `, ${consequence}` : ''}; give each replica --replica-url, or use the replica holding the node`,
        { details: { nodeId, ...details, reason: 'no-replica-url' } },
      );
    }
  }

  /**
   * Sends an operation after which the node dials back to a relay session waiting on this
   * replica (console.open, file.export): on the link here as it is; to a node held by another
   * replica, carried there with this replica's URL as `relayUrl`, which the node dials instead of
   * the replica it is connected to. Check requireDialBack first for a clear refusal.
   */
  requestDialBack<Op extends 'console.open' | 'file.export'>(
    nodeId: string,
    request: NodeRequestOf<Op>,
    options: { timeoutMs: number },
  ): Promise<NodeResultOf<Op>> {
    if (this.isConnectedHere(nodeId)) return this.request(nodeId, request, { ...options, localOnly: true });
    const relayUrl = this.options.leases?.url;
    if (!relayUrl) return Promise.reject(nodeNotConnected(nodeId));
    return this.request(nodeId, { ...request, relayUrl }, options);
  }

  /**
   * Sends a request to a node's live link and waits for its answer; the node's error comes back
   * as a QuantixError. It fails with NODE_NOT_CONNECTED at once when the node has no live link,
   * or as soon as that link closes, and with COMMAND_TIMEOUT after `timeoutMs`: never later.
   */
  request<Op extends NodeOperation>(
    nodeId: string,
    request: NodeRequestOf<Op>,
    options: NodeRequestOptions = {},
  ): Promise<NodeResultOf<Op>> {
    const link = this.links.get(nodeId);
    const timeoutMs = options.timeoutMs ?? 60_000;
    if (link?.state !== 'welcomed' && this.options.remote?.enabled && !options.localOnly) {
      return this.options.remote.forward(nodeId, request as NodeRequest, timeoutMs) as Promise<NodeResultOf<Op>>;
    }
    const since = OPERATION_SINCE_VERSION[request.op];
    if (link?.state === 'welcomed' && since !== undefined && link.version < since) {
      return Promise.reject(
        new QuantixError(
          ErrorCode.UNSUPPORTED_OPERATION,
          `Node ${nodeId} speaks protocol version ${link.version}; ${request.op} needs ${since}: upgrade its node daemon`,
          { details: { nodeId, op: request.op, nodeProtocol: link.version, needs: since } },
        ),
      );
    }
    if (link?.state === 'welcomed' && request.op === 'pool.scan' && link.version >= DELTA_SCAN_SINCE_VERSION) {
      return this.requestScan(link, request as NodeRequestOf<'pool.scan'>, timeoutMs) as Promise<NodeResultOf<Op>>;
    }
    return this.requestOnLink(nodeId, link, request, timeoutMs);
  }

  /**
   * pool.scan with `since` when the hub holds what the node last reported of the pool: the node
   * then sends only changes. Whether the rows kept the stamp they had after that report is read
   * while the node scans (off the path of a warm scan), and checked when the delta arrives. A delta
   * refused then (the rows changed) is followed by the same request for a full scan.
   */
  private async requestScan(
    link: NodeLink,
    request: NodeRequestOf<'pool.scan'>,
    timeoutMs: number,
  ): Promise<NodeResultOf<'pool.scan'>> {
    // `since` is the hub's to give: it alone can check the delta that answers it.
    const { since: _ignored, ...whole } = request;
    const key = scanStateKey(link.nodeId, request.poolId, request.content);
    const known = this.scanStates.get(key);
    const since = known?.fingerprint;
    if (known) {
      // A stamp that cannot be read refuses the delta, as a changed one does.
      const stamp = this.withDatabase(() => this.rowsStamp(request.poolId, request.content)).catch(() => null);
      scansOf(link).stampsAtRequest.set(key, stamp);
    }
    scansOf(link).refusedDeltas.delete(key);
    const result = await this.requestOnLink(link.nodeId, link, { ...whole, ...(since ? { since } : {}) }, timeoutMs);
    if (!scansOf(link).refusedDeltas.delete(key)) return result;
    return this.requestOnLink(link.nodeId, link, whole, timeoutMs);
  }

  /** The stamp of the rows a scan of this content of this pool is applied to. */
  private rowsStamp(poolId: string, content: PoolContentType): Promise<string> {
    return this.options.repositories.images.fileStatesStamp({ poolId, kind: KIND_OF_CONTENT[content] });
  }

  private requestOnLink<Op extends NodeOperation>(
    nodeId: string,
    link: NodeLink | undefined,
    request: NodeRequestOf<Op>,
    timeoutMs: number,
  ): Promise<NodeResultOf<Op>> {
    if (link?.state !== 'welcomed') {
      return Promise.reject(nodeNotConnected(nodeId));
    }
    const requestId = `${this.requestPrefix}-${++this.requestCounter}`;
    return new Promise<NodeResultOf<Op>>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.takePending(requestId);
        reject(
          new QuantixError(
            ErrorCode.COMMAND_TIMEOUT,
            `Node ${nodeId} did not answer ${request.op} within ${timeoutMs} ms`,
            {
              details: { nodeId, op: request.op },
            },
          ),
        );
      }, timeoutMs);
      this.pending.set(requestId, {
        link,
        op: request.op,
        resolve: resolve as (result: unknown) => void,
        reject,
        timer,
      });
      link.pending ??= new Set();
      link.pending.add(requestId);
      this.send(link, { v: link.version, type: 'request', requestId, request: request as NodeRequest });
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    // Drops still in their grace are recorded now: a control plane that stops leaves no node connected.
    for (const { timer, record } of this.disconnectsInGrace.values()) {
      clearTimeout(timer);
      void record();
    }
    this.disconnectsInGrace.clear();
    for (const link of [...this.links.values()]) this.retire(link, 'control plane shutting down', 1001);
    await Promise.all([...this.nodeChains.values()]);
  }

  /** A frame from the node: parsed and checked at once, then queued (or refused). */
  private receive(link: NodeLink, text: string): void {
    if (link.state === 'closed') return;
    let message: NodeMessage;
    try {
      message = parseNodeMessage(text);
    } catch (error) {
      this.refuseInvalid(link, error);
      return;
    }
    if (!link.helloSeen) {
      if (message.type !== 'hello' || message.nodeId !== link.nodeId) {
        link.channel.close(
          NODE_CLOSE_CODES.helloRequired,
          'the first message must be hello for the authenticated node',
        );
        return;
      }
      // What follows the hello waits in the queue until the hello is answered.
      link.helloSeen = true;
      clearTimeout(link.helloTimer);
      link.helloTimer = undefined; // not kept, with its closure, for the link's whole life
    }
    const queued = link.queue.push(message, text.length);
    if (queued === 'full') {
      this.options.logger.warn(
        { nodeId: link.nodeId, queued: link.queue.length, bytes: link.queue.bytes },
        'node message queue full; disconnecting the node',
      );
      this.send(link, {
        v: link.version,
        type: 'error',
        error: {
          code: ErrorCode.NODE_BUSY,
          message: `More than ${link.queue.limits.maxMessages} messages or ${link.queue.limits.maxBytes} bytes waiting from this node; slow down and reconnect`,
        },
      });
      link.channel.close(NODE_CLOSE_CODES.busy, 'node message queue full');
      this.retire(link, 'message queue full');
      return;
    }
    if (!link.paused && link.queue.length >= link.queue.limits.pauseAt) {
      link.paused = true;
      link.channel.pause();
    }
    if (!link.draining) link.draining = this.drain(link);
  }

  private refuseInvalid(link: NodeLink, error: unknown): void {
    link.invalidMessages++;
    if (link.invalidMessages <= LOGGED_INVALID_MESSAGES) {
      this.options.logger.warn({ nodeId: link.nodeId, err: error }, 'invalid message from node');
    }
    if (link.channel.bufferedBytes < MAX_BUFFERED_REPLY_BYTES) {
      this.send(link, { v: link.version, type: 'error', error: toErrorBody(error) });
    }
    if (isQuantixError(error, ErrorCode.PROTOCOL_VERSION)) {
      link.channel.close(NODE_CLOSE_CODES.protocolVersion, 'protocol version');
    }
  }

  /** Works through the link's queue, one message at a time, in order. */
  private async drain(link: NodeLink): Promise<void> {
    for (let message = link.queue.shift(); message; message = link.queue.shift()) {
      if (link.paused && link.queue.length <= link.queue.limits.resumeAt) {
        link.paused = false;
        link.channel.resume();
      }
      try {
        await this.handle(link, message);
      } catch (error) {
        this.options.logger.warn({ nodeId: link.nodeId, type: message.type, err: error }, 'node message refused');
        this.send(link, { v: link.version, type: 'error', error: toErrorBody(error) });
      }
      if (link.state === 'closed') break;
    }
    // Set in the same turn as the last check of the queue: a message queued later starts a new loop.
    link.draining = null;
  }

  private async handle(link: NodeLink, message: NodeMessage): Promise<void> {
    const { repositories, logger } = this.options;
    if (message.type === 'hello') {
      if (link.state === 'connecting') return this.welcome(link, message);
      logger.warn({ nodeId: link.nodeId }, 'duplicate hello ignored');
      return;
    }
    if (link.state !== 'welcomed') return;
    switch (message.type) {
      case 'pools.state': {
        // Not within this link's database share: reports are stored in batches, one at a time.
        const { pools } = await this.sync.recordReportWithPools(link.nodeId, message).catch((error: unknown) => {
          // Not stored: the next push (a pool change, the listener back) is made even of this
          // generation, so that the node reports again and its states are stored then.
          link.sentGeneration = link.syncedGeneration;
          throw error;
        });
        link.syncedGeneration = message.generation;
        // Not within the link's share either: the reports stored together are handled together
        // (onPoolsSynced batches them), which a share of two would cut into pairs.
        await this.onPoolsSynced?.(link.nodeId);
        this.scanAfterSync(link, message.pools, pools);
        return;
      }
      case 'scan.result': {
        const scan = this.collectScan(link, message);
        if (!scan) return;
        const key = scanStateKey(link.nodeId, message.poolId, message.content);
        this.scanStates.delete(key);
        this.endSharedScan(message.poolId);
        const result = await this.withDatabase(async () => {
          const ingested = await ingestScan({
            repositories,
            nodeId: link.nodeId,
            poolId: message.poolId,
            content: message.content,
            ...scan,
            events: this.options.events,
          });
          // Rows someone else wrote meanwhile are not what the report says: no delta against it.
          if (message.fingerprint && ingested.conflicts === 0) {
            const stamp = await this.rowsStamp(message.poolId, message.content);
            this.scanStates.set(key, { fingerprint: message.fingerprint, stamp });
          }
          return ingested;
        });
        logger.info({ nodeId: link.nodeId, poolId: message.poolId, ...result }, 'scan ingested');
        return;
      }
      case 'scan.delta':
        return this.applyDelta(link, message);
      case 'image.progress':
        await this.withDatabase(async () => this.onImageProgress?.(message, link.nodeId));
        return;
      case 'response': {
        const pending = this.pending.get(message.requestId);
        if (!pending || pending.link !== link) {
          logger.debug({ nodeId: link.nodeId, requestId: message.requestId }, 'answer to no request of this link');
          return;
        }
        this.takePending(message.requestId);
        clearTimeout(pending.timer);
        if (message.error) {
          // The node's own code, unchanged: the caller and the API see what failed there.
          pending.reject(
            new QuantixError(message.error.code as ErrorCode, message.error.message, {
              details: {
                nodeId: link.nodeId,
                op: pending.op,
                ...(message.error.retryable !== undefined ? { retryable: message.error.retryable } : {}),
              },
            }),
          );
        } else {
          try {
            pending.resolve(parseNodeResult(pending.op, message.result));
          } catch (error) {
            pending.reject(error as Error);
          }
        }
        return;
      }
    }
  }

  /**
   * The hello of `link`: it becomes the node's link at once (a link of the node from before is
   * replaced and closed), then the node is recorded connected, welcomed and sent its pools — in
   * the node's own order after whatever a previous link of it still had to record. A close at
   * any point stops the welcome; the link never becomes live, and its close is recorded after.
   */
  private async welcome(link: NodeLink, hello: HelloMessage): Promise<void> {
    const { nodeId } = link;
    // Checked against a token replaced since (this link was not the node's yet, so not closed then).
    if (link.tokenReadAt !== undefined && (this.tokenReplacedAt.get(nodeId) ?? -1) > link.tokenReadAt) {
      this.retire(link, 'the node’s token was replaced', NODE_CLOSE_CODES.tokenReplaced);
      return;
    }
    const offered = hello.protocol ?? { min: hello.v, max: hello.v };
    const version = agreeProtocolVersion(offered);
    if (version === null) {
      const reason = `no protocol version in common: the node speaks ${offered.min}–${offered.max}, this control plane ${PROTOCOL_VERSIONS.min}–${PROTOCOL_VERSIONS.max}`;
      this.options.logger.warn({ nodeId, offered }, reason);
      this.send(link, {
        v: PROTOCOL_VERSION,
        type: 'error',
        error: { code: ErrorCode.PROTOCOL_VERSION, message: reason },
      });
      // A close reason is at most 123 bytes.
      link.channel.close(NODE_CLOSE_CODES.protocolVersion, reason.slice(0, 120));
      this.retire(link, reason);
      return;
    }
    link.version = version;
    const previous = this.links.get(nodeId);
    this.links.set(nodeId, link);
    // Back within the grace: the drop is never recorded (and its timer is not left to fire for nothing).
    const inGrace = this.disconnectsInGrace.get(nodeId);
    if (inGrace) {
      clearTimeout(inGrace.timer);
      this.disconnectsInGrace.delete(nodeId);
    }
    if (previous && previous !== link) {
      this.retire(previous, 'replaced by a newer connection from the same node', NODE_CLOSE_CODES.replaced);
    }
    let welcomed = false;
    let resumed: ResumedPools | null = null;
    const pushesBefore = this.poolPushes;
    await this.inNodeOrder(nodeId, async () => {
      if (isClosed(link)) return;
      // Lease taken, node recorded connected, its desired pools read (and the pools it holds stored,
      // when they are that set): with the other hellos of the moment.
      const recorded = await this.welcomes.add({ nodeId, hello, version });
      const { desired } = recorded;
      resumed = recorded.resumed;
      if (isClosed(link)) return;
      this.send(link, {
        v: version,
        type: 'welcome',
        nodeId,
        serverTime: new Date().toISOString(),
        maxMessageBytes: PROTOCOL_LIMITS.maxNodeMessageBytes,
        protocol: version,
        ...(resumed ? { poolsCurrent: { generation: desired.generation } } : {}),
      });
      if (resumed) link.sentGeneration = desired.generation;
      else this.push(link, desired);
      welcomed = true;
    });
    if (isClosed(link)) return;
    if (!welcomed) {
      // The database said no (it is down, say): the node redials, and is welcomed then.
      this.retire(link, 'the connection could not be recorded', 1011);
      return;
    }
    link.state = 'welcomed';
    // A push began while this welcome was under way, and passed this link by: the set is pushed
    // if it is newer than the welcome's.
    if (this.poolPushes !== pushesBefore) {
      try {
        await this.pushPoolsTo([link]);
      } catch (error) {
        // Never a live link with an older set: the node redials and is welcomed with the new one.
        this.options.logger.warn({ nodeId, err: error }, 'the pools changed during the welcome could not be pushed');
        this.retire(link, 'the pools changed during the welcome could not be pushed', 1011);
        return;
      }
    }
    this.options.events.emit('node.connected', { nodeId });
    this.options.logger.info({ nodeId, agentVersion: hello.agentVersion }, 'node connected');
    // Assigned in the closure above, which TypeScript's narrowing does not follow.
    const current = resumed as ResumedPools | null;
    if (current) {
      link.syncedGeneration = current.generation;
      await this.onPoolsSynced?.(nodeId);
      this.scanAfterSync(link, current.reports, current.pools);
    }
    // Only a hello naming downloads in hand has anything to look up: a storm of nodes holding none
    // (the usual reconnect) does not queue 2,000 welcomes for the database share, each holding its
    // hello and link while it waits.
    const { onNodeWelcomed } = this;
    if (onNodeWelcomed && hello.downloads?.length) await this.withDatabase(async () => onNodeWelcomed(nodeId, hello));
  }

  /** Forgets a request in flight (answered, timed out, or its link gone); what it was, if it still was. */
  private takePending(requestId: string): PendingRequest | undefined {
    const pending = this.pending.get(requestId);
    if (!pending) return undefined;
    this.pending.delete(requestId);
    pending.link.pending?.delete(requestId);
    return pending;
  }

  /**
   * Ends a link for good: its queue is dropped, its requests fail at once. When it was the
   * node's link and the node has not connected again within `disconnectGraceMs`, the node is
   * recorded disconnected and its pool states unknown — after the link's last message was
   * handled, and in order with the node's other links.
   */
  private retire(link: NodeLink, reason: string, closeCode?: number, options: { record?: boolean } = {}): void {
    if (link.state === 'closed') return;
    link.state = 'closed';
    clearTimeout(link.helloTimer);
    link.queue.clear();
    link.scanning?.parts.clear();
    if (closeCode !== undefined) link.channel.close(closeCode, reason);
    for (const id of [...(link.pending ?? [])]) {
      const pending = this.takePending(id);
      if (!pending) continue;
      clearTimeout(pending.timer);
      pending.reject(
        new QuantixError(ErrorCode.NODE_NOT_CONNECTED, `Node ${link.nodeId} disconnected before answering (${reason})`),
      );
    }
    if (this.links.get(link.nodeId) !== link) return; // never welcomed, or a newer link took over: it records
    this.links.delete(link.nodeId);
    const { nodeId } = link;
    if (options.record === false) return;
    // Not the link itself: a storm's dropped links (their sockets, queues) are not held through the grace.
    const { draining } = link;
    const record = () =>
      this.inNodeOrder(nodeId, async () => {
        await draining;
        if (this.links.has(nodeId)) return; // a newer link came meanwhile and records the connection
        try {
          await this.disconnects.add({ nodeId, reason });
        } catch (error) {
          // Shutting down with the database already closed is not worth a crash.
          if (!this.closed) this.options.logger.warn({ nodeId, err: error }, 'could not record the disconnect');
        }
        this.options.events.emit('node.disconnected', { nodeId, reason });
      });
    const graceMs = this.options.disconnectGraceMs ?? DEFAULT_DISCONNECT_GRACE_MS;
    clearTimeout(this.disconnectsInGrace.get(nodeId)?.timer);
    if (this.closed || graceMs <= 0) {
      this.disconnectsInGrace.delete(nodeId);
      void record();
      return;
    }
    // A node that drops and dials straight back (a network blip, a storm after a restart of a
    // router) is never written disconnected and connected again: three statements a node saved.
    const timer = setTimeout(() => {
      this.disconnectsInGrace.delete(nodeId);
      void record();
    }, graceMs);
    timer.unref();
    this.disconnectsInGrace.set(nodeId, { timer, record });
  }

  /** Runs `work` after every earlier piece of connection bookkeeping of the same node. */
  private inNodeOrder(nodeId: string, work: () => Promise<void>): Promise<void> {
    const previous = this.nodeChains.get(nodeId) ?? Promise.resolve();
    const next = previous.then(work).catch((error) => {
      this.options.logger.error({ nodeId, err: error }, 'node connection bookkeeping failed');
    });
    this.nodeChains.set(nodeId, next);
    void next.then(() => {
      if (this.nodeChains.get(nodeId) === next) this.nodeChains.delete(nodeId);
    });
    return next;
  }

  /** Database work for nodes: at most `nodeDatabaseConcurrency` at once, across all nodes. */
  private async withDatabase<T>(work: () => Promise<T>): Promise<T> {
    const release = await this.database.acquire();
    try {
      return await work();
    } finally {
      release();
    }
  }

  /**
   * The hellos of a batch: leases taken, nodes recorded connected, desired pools read — two
   * statements and two queries, whatever the number of nodes. A hello whose pools are the node's
   * desired set (the same fingerprint; protocol 4) needs no push: their states are stored with
   * the current generation, as a push's acknowledgement would be, against the pools read here
   * (storePoolsHeld). A node that no longer exists fails alone (NOT_FOUND).
   */
  private async recordWelcomes(batch: readonly WaitingWelcome[]): Promise<(RecordedWelcome | Error)[]> {
    const nodeIds = batch.map((item) => item.nodeId);
    // The lease first: a node recorded connected is always held (the health sweep of another
    // replica records a connected node no replica holds as disconnected). Then the record and
    // the read of the pools at once, on connections of their own.
    await this.options.leases?.claimAll(nodeIds);
    const [recordedIds, snapshot] = await Promise.all([
      this.options.repositories.nodes.setConnectionStates(
        batch.map(({ nodeId, hello }) => ({
          id: nodeId,
          connectionState: 'connected' as const,
          agentVersion: hello.agentVersion,
          capabilities: hello.capabilities,
        })),
      ),
      this.sync.readPools(),
    ]);
    const recorded = new Set(recordedIds);
    const sets = desiredSetsOf(snapshot, nodeIds);
    const holding = batch.filter(
      ({ nodeId, hello, version }) =>
        recorded.has(nodeId) &&
        version >= POOLS_IN_HELLO_SINCE_VERSION &&
        hello.pools !== undefined &&
        hello.pools.fingerprint === sets.get(nodeId)?.fingerprint,
    );
    const resumed = await this.storePoolsHeld(holding, snapshot);
    return batch.map(({ nodeId }) =>
      recorded.has(nodeId)
        ? { desired: sets.get(nodeId) as DesiredPools, resumed: resumed.get(nodeId) ?? null }
        : new QuantixError(ErrorCode.NOT_FOUND, `Node ${nodeId} not found`, { details: { nodeId } }),
    );
  }

  /** The pools hellos hold, stored as current; a node whose states could not be stored is pushed its pools instead. */
  private async storePoolsHeld(
    holding: readonly WaitingWelcome[],
    snapshot: PoolsSnapshot,
  ): Promise<Map<string, ResumedPools>> {
    const resumed = new Map<string, ResumedPools>();
    if (holding.length === 0) return resumed;
    const { generation } = snapshot;
    const reports = holding.map(({ nodeId, hello }) => ({
      nodeId,
      report: { generation, pools: hello.pools?.reports ?? [] },
    }));
    let stored: (StoredReport | Error)[];
    try {
      stored = await this.sync.recordReports(reports, snapshot);
    } catch (error) {
      const nodeIds = reports.map((item) => item.nodeId);
      this.options.logger.warn({ nodeIds, err: error }, 'pools of the hellos not stored; pushing them');
      return resumed;
    }
    stored.forEach((result, i) => {
      const { nodeId, report } = reports[i] as (typeof reports)[number];
      if (result instanceof Error) {
        this.options.logger.warn({ nodeId, err: result }, 'pools of the hello not stored; pushing them');
        return;
      }
      resumed.set(nodeId, { generation, reports: report.pools, pools: result.pools });
    });
    return resumed;
  }

  /**
   * The disconnects of a batch: leases given up, then — for the nodes no other replica holds by
   * now (that replica records their connection) — nodes recorded disconnected and their pool
   * states unknown. Three statements whatever the number of nodes.
   */
  private async recordDisconnects(batch: readonly { nodeId: string; reason: string }[]): Promise<null[]> {
    const heldElsewhere = (await this.options.leases?.releaseAll(batch.map((item) => item.nodeId))) ?? new Set();
    const gone = batch.filter((item) => !heldElsewhere.has(item.nodeId));
    await this.options.repositories.nodes.setConnectionStates(
      gone.map(({ nodeId }) => ({ id: nodeId, connectionState: 'disconnected' as const })),
    );
    await this.sync.markNodesUnknown(
      gone.map(({ nodeId, reason }) => ({
        nodeId,
        reason: truncateText(`node ${nodeId} is not connected (${reason})`),
      })),
    );
    return batch.map(() => null);
  }

  /**
   * A node's changes since its report `base`: applied when the hub still holds that report's
   * state for the node's pool and the rows kept their stamp; else refused, and the scan asked again
   * in full (requestScan). Nothing is lost: a refused delta writes nothing.
   */
  private async applyDelta(link: NodeLink, message: Extract<NodeMessage, { type: 'scan.delta' }>): Promise<void> {
    const { nodeId } = link;
    const { poolId, content } = message;
    const key = scanStateKey(nodeId, poolId, content);
    this.endSharedScan(poolId);
    const refuse = (reason: string) => {
      this.scanStates.delete(key);
      scansOf(link).refusedDeltas.add(key);
      this.options.logger.info({ nodeId, poolId, reason }, 'scan delta refused; asking for a full scan');
    };
    const known = this.scanStates.get(key);
    const { stampsAtRequest } = scansOf(link);
    const stampAtRequest = stampsAtRequest.get(key);
    stampsAtRequest.delete(key);
    if (known?.fingerprint !== message.base) return refuse('the hub holds no state with its base fingerprint');
    if (!stampAtRequest || (await stampAtRequest) !== known.stamp) return refuse('its rows changed since');
    const empty = message.files.length === 0 && message.removed.length === 0 && !message.invalid?.length;
    if (empty) {
      if (message.fingerprint !== message.base) refuse('no changes, yet another fingerprint');
      return; // a warm scan: nothing to read or write
    }
    await this.withDatabase(async () => {
      if ((await this.rowsStamp(poolId, content)) !== known.stamp) return refuse('its rows changed since');
      const result = await ingestScan({
        repositories: this.options.repositories,
        nodeId,
        poolId,
        content,
        files: message.files,
        invalid: message.invalid ?? [],
        removed: message.removed,
        events: this.options.events,
      });
      if (result.conflicts === 0) {
        this.scanStates.set(key, { fingerprint: message.fingerprint, stamp: await this.rowsStamp(poolId, content) });
      } else this.scanStates.delete(key);
      this.options.logger.info({ nodeId, poolId, delta: true, ...result }, 'scan ingested');
    });
  }

  /** The files (and skipped paths, invalid files) of a whole scan: a message's own, or — at the final part — those of all its parts. */
  private collectScan(link: NodeLink, message: Extract<NodeMessage, { type: 'scan.result' }>): CollectedScan | null {
    if (message.scanId === undefined) {
      return { files: message.files, skipped: message.skipped ?? [], invalid: message.invalid ?? [] };
    }
    const { parts } = scansOf(link);
    const refuse = (why: string) => {
      parts.delete(message.scanId as string);
      throw new QuantixError(ErrorCode.PROTOCOL_INVALID_MESSAGE, `Scan ${message.scanId} refused: ${why}`, {
        details: { scanId: message.scanId, poolId: message.poolId },
      });
    };
    if (message.part === undefined) refuse('it has a scanId but no part number');
    let scan = parts.get(message.scanId);
    if (!scan) {
      if (message.part !== 0) refuse(`it starts at part ${message.part}, not 0`);
      if (parts.size >= MAX_SCANS_IN_PARTS) refuse(`more than ${MAX_SCANS_IN_PARTS} scans in parts at once`);
      scan = { poolId: message.poolId, content: message.content, files: [], skipped: [], invalid: [], nextPart: 0 };
      parts.set(message.scanId, scan);
    }
    if (message.part !== scan.nextPart) refuse(`part ${message.part} came where ${scan.nextPart} was expected`);
    if (message.poolId !== scan.poolId || message.content !== scan.content) refuse('its parts name different pools');
    const maxFiles = this.options.maxScanFiles ?? 200_000;
    const incoming = message.files.length + (message.skipped?.length ?? 0) + (message.invalid?.length ?? 0);
    const held = scan.files.length + scan.skipped.length + scan.invalid.length;
    if (held + incoming > maxFiles) refuse(`more than ${maxFiles} files`);
    for (const file of message.files) scan.files.push(file);
    for (const item of message.skipped ?? []) scan.skipped.push(item);
    for (const item of message.invalid ?? []) scan.invalid.push(item);
    scan.nextPart++;
    if (!message.final) return null;
    parts.delete(message.scanId);
    return { files: scan.files, skipped: scan.skipped, invalid: scan.invalid };
  }

  /**
   * After a report, the node scans the pools that became active on this link, or whose
   * definition changed since this link scanned them (each content type they hold: ISOs, disk
   * images) — not every pool on every change, and a shared pool not while a scan of it is under
   * way or just came back (`sharedScans`). The results arrive as scan.result.
   */
  private scanAfterSync(
    link: NodeLink,
    reports: readonly { poolId: string; status: string }[],
    pools: readonly StoragePool[],
  ): void {
    for (const report of reports) if (report.status !== 'active') link.scanning?.scanned.delete(report.poolId);
    const active = new Set(reports.filter((r) => r.status === 'active').map((r) => r.poolId));
    for (const pool of pools) {
      if (!active.has(pool.id)) continue;
      const { scanned } = scansOf(link);
      if (scanned.get(pool.id) === pool.version) continue;
      scanned.set(pool.id, pool.version);
      // A shared pool's want, numbered; null while a scan of it is under way or just came back.
      const sharedWant = pool.shared ? this.wantSharedScan(pool, link.nodeId) : undefined;
      if (sharedWant === null) continue;
      const scan = this.onScanWanted
        ? this.onScanWanted({ nodeId: link.nodeId, poolId: pool.id, key: `${link.linkId}:${pool.version}` })
        : this.scanPool(link.nodeId, pool.id, pool.contentTypes);
      scan.catch((error) => {
        // Scanned again at the next report.
        if (scanned.get(pool.id) === pool.version) scanned.delete(pool.id);
        if (sharedWant !== undefined) this.endSharedScan(pool.id, sharedWant, 'failed');
        this.options.logger.warn({ nodeId: link.nodeId, poolId: pool.id, err: error }, 'scan after sync failed');
      });
    }
  }

  /**
   * A shared pool's scan after `nodeId`'s sync, wanted now (its number), unless one of this
   * version is under way, or one wanted by another node came back less than SHARED_SCAN_FRESH_MS
   * ago (null): it says what this node's would.
   */
  private wantSharedScan(pool: StoragePool, nodeId: string): number | null {
    const last = this.sharedScans.get(pool.id);
    const now = Date.now();
    if (last?.version === pool.version) {
      if (last.doneAt === undefined && now - last.at < SCAN_TIMEOUT_MS) return null;
      if (last.doneAt !== undefined && last.nodeId !== nodeId && now - last.doneAt < SHARED_SCAN_FRESH_MS) return null;
    }
    const seq = ++this.sharedScanSeq;
    this.sharedScans.set(pool.id, { version: pool.version, nodeId, at: now, seq });
    return seq;
  }

  /**
   * A shared pool's scan is over, if the want under way was made by `upTo` (its number): done, it
   * stands for the other nodes' scans for a while (wantSharedScan); failed, the next sync wants one.
   */
  private endSharedScan(poolId: string, upTo = Number.POSITIVE_INFINITY, outcome: 'done' | 'failed' = 'done'): void {
    const underWay = this.sharedScans.get(poolId);
    if (!underWay || underWay.seq > upTo) return;
    if (outcome === 'failed') this.sharedScans.delete(poolId);
    else underWay.doneAt ??= Date.now();
  }

  /**
   * Asks a node (here, or on the replica holding it) to scan a pool, each content type it holds
   * (`contents`; absent: read from the pool) in turn: its ISOs, its disk images. The results are
   * ingested as they arrive — files added by hand become images, ready images whose files are gone
   * become `missing`. A shared pool is the same on every node: when the node named has gone,
   * another connected node with the pool active scans it instead. A content type whose scan fails
   * does not keep the other from being scanned; the first failure is thrown after both.
   */
  async scanPool(nodeId: string, poolId: string, contents?: readonly PoolContentType[]): Promise<void> {
    const wantedBefore = this.sharedScanSeq;
    let through = nodeId;
    const connected = this.isConnected(nodeId);
    const pool = contents && connected ? undefined : await this.options.repositories.pools.get(poolId);
    // Deleted since the scan was wanted (a queued job): nothing left to scan.
    if (!contents && !pool) return;
    if (pool?.shared && !connected) {
      const [other] = await nodesWithActivePool({ repositories: this.options.repositories, hub: this, poolId });
      if (other) through = other;
    }
    let failure: unknown;
    try {
      for (const content of contents ?? pool?.contentTypes ?? []) {
        await this.request(through, { op: 'pool.scan', poolId, content }, { timeoutMs: SCAN_TIMEOUT_MS }).catch(
          (error: unknown) => {
            failure ??= error;
          },
        );
      }
    } finally {
      this.endSharedScan(poolId, wantedBefore, failure === undefined ? 'done' : 'failed');
    }
    if (failure !== undefined) throw failure;
  }

  /** Sends a node its desired pools (the set and its generation; the fingerprint is ours). */
  private push(link: NodeLink, desired: DesiredPools): void {
    link.sentGeneration = desired.generation;
    this.send(link, { v: link.version, type: 'pools.desired', generation: desired.generation, pools: desired.pools });
  }

  private send(link: NodeLink, message: ControlMessage): void {
    link.channel.send(JSON.stringify(message));
  }
}

const KIND_OF_CONTENT: Record<PoolContentType, ImageKind> = { iso: 'iso', images: 'cloud' };

function scanStateKey(nodeId: string, poolId: string, content: PoolContentType): string {
  return `${nodeId}\u0000${poolId}\u0000${content}`;
}

/** A hello waiting for its batch (recordWelcomes), with the protocol version agreed. */
interface WaitingWelcome {
  nodeId: string;
  hello: HelloMessage;
  version: number;
}

/** A hello recorded: the node's desired pools, and the pools it holds stored as current when they are those. */
interface RecordedWelcome {
  desired: DesiredPools;
  resumed: ResumedPools | null;
}

/** The pools of a hello, stored as current (NodeHub.storePoolsHeld). */
interface ResumedPools {
  generation: number;
  reports: readonly PoolReport[];
  pools: readonly StoragePool[];
}

/** A whole scan as the node reported it. */
interface CollectedScan {
  files: ScannedFile[];
  skipped: ScanSkipped[];
  invalid: ScanInvalid[];
}

/** Read afresh after an await: another event may have closed the link meanwhile. */
function isClosed(link: NodeLink): boolean {
  return link.state === 'closed';
}

/** An error as a node is told it: within the protocol's limits, and nothing of an unexpected error's inside. */
function toErrorBody(error: unknown): { code: string; message: string } {
  if (isQuantixError(error) && error.code !== ErrorCode.DATABASE_ERROR) {
    return { code: error.code, message: truncateText(error.message) };
  }
  return { code: ErrorCode.INTERNAL_ERROR, message: 'the control plane could not handle this message; see its log' };
}
