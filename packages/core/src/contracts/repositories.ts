import type { DiscoveredImage, Image, ImageKind, ImagePatch, ImagePhase, NewImage } from '../domain/image.js';
import type { NewNode, Node, NodeConnectionState, NodePatch } from '../domain/node.js';
import type {
  NewStoragePool,
  PoolNodeState,
  PoolNodeStateInput,
  StoragePool,
  StoragePoolPatch,
} from '../domain/pool.js';
import type { NewVm, Vm, VmPatch, VmState } from '../domain/vm.js';

/** Paging for list calls. Results are ordered by creation time, then id, so pages are stable. */
export interface Page {
  limit?: number;
  offset?: number;
}

/** Optimistic concurrency: when given, an update of a record whose version differs fails with VERSION_CONFLICT. */
export interface UpdateOptions {
  expectedVersion?: number;
}

export interface ImageUpdateOptions extends UpdateOptions {
  /**
   * The update is made only while the image is in one of these phases, whatever its version
   * (VERSION_CONFLICT otherwise): a change that must win over a busy row's own frequent writes
   * (a cancel over a download's progress) without racing them for a version.
   */
  whilePhase?: readonly ImagePhase[];
  /**
   * The patch's phase is reached through this one, in one write: both steps must be in the
   * transition table. A verify that read the whole file of an image in error makes it ready
   * `via: 'verifying'` — never left in a transient phase that a restart would take for a download.
   */
  via?: ImagePhase;
}

export interface ImageFilter extends Page {
  kind?: ImageKind;
  /** One phase or any of several. */
  phase?: ImagePhase | readonly ImagePhase[];
  /** One pool, or any of several. */
  poolId?: string | readonly string[];
  nodeId?: string;
  catalogId?: string;
  /** Every given label must be present with the given value. */
  labels?: Record<string, string>;
  /** Case-insensitive substring of name, description, OS distribution, labels or the file's path in its pool. */
  text?: string;
}

/** A page of images in list order (created_at, id) and where the next one starts. */
export interface ImagePage {
  images: Image[];
  /** Images matching the filter, on every page. */
  total: number;
  /** Pass back as `after` for the page that follows; null on the last page. */
  nextCursor: string | null;
}

export interface ImagePageQuery extends ImageFilter {
  /** A `nextCursor` from an earlier page: this page starts after it (keyset, any depth costs the same). */
  after?: string;
}

export interface UpsertResult {
  inserted: number;
  updated: number;
  /** Known locations left as they were: unchanged (same size and mtime), or busy in another phase. */
  untouched: number;
}

export interface RankedImagesQuery {
  /** The node whose view it is: its pools (assigned to it) and their states on it. */
  nodeId: string;
  /** Catalog entries on offer: rows made from them collapse to one per entry. */
  catalogIds: readonly string[];
  kind?: ImageKind;
  /** Case-insensitive substring of name, description, OS distribution, labels or the file's path in its pool. */
  text?: string;
  limit: number;
  offset: number;
}

export interface RankedImages {
  /** Whether the node exists (an unknown node's view is empty). */
  nodeFound: boolean;
  /**
   * The page; each row with its pool's name and the pool's state on the node (null when the
   * pool has not reported from it), read in the same statement.
   */
  images: {
    image: Image;
    rank: 0 | 1 | 2 | 3;
    pool: { name: string; state: Pick<PoolNodeState, 'status' | 'mountPath' | 'lastError'> | null } | null;
  }[];
  /** Rows in the whole ranking (after collapsing), not just this page. */
  total: number;
  /** Which of the query's catalogIds have at least one row in those pools. */
  catalogIdsWithRows: string[];
}

/** A row's file facts as a scan compares them with a listing: no content, no JSON to parse. */
export interface ImageFileState {
  id: string;
  relPath: string;
  phase: ImagePhase;
  sizeBytes: number | null;
  /** The file's mtime in milliseconds since the epoch, as recorded by the last scan. */
  fileModifiedMs: number | null;
  version: number;
  /** The code of the row's error, if it has one. */
  errorCode: string | null;
}

export interface ImageRepository {
  /** Creates an image. Validates first; nothing is written when validation fails. */
  create(input: NewImage): Promise<Image>;
  get(id: string): Promise<Image | undefined>;
  /** Like get, but NOT_FOUND when missing. */
  require(id: string): Promise<Image>;
  list(filter?: ImageFilter): Promise<Image[]>;
  /** A page with the total and a keyset cursor, in one statement. INVALID_INPUT for a cursor not made here. */
  page(query: ImagePageQuery): Promise<ImagePage>;
  count(filter?: Omit<ImageFilter, 'limit' | 'offset'>): Promise<number>;
  /**
   * The file facts of the rows that have a location, in no particular order: what a scan of a
   * pool of 20,000 files reads to tell what changed, without reading whole rows.
   */
  listFileStates(filter?: Omit<ImageFilter, 'limit' | 'offset'>): Promise<ImageFileState[]>;
  /**
   * A stamp of the rows that match, in one aggregate: it changes whenever one of them is inserted,
   * updated (every write bumps its version) or deleted. A delta scan is applied only to rows whose
   * stamp is the one they had after the last scan applied.
   */
  fileStatesStamp(filter?: Omit<ImageFilter, 'limit' | 'offset'>): Promise<string>;
  getByLocation(location: { poolId: string; relPath: string }): Promise<Image | undefined>;
  /** Images made from these catalog entries, optionally in one pool. */
  findByCatalogIds(catalogIds: readonly string[], options?: { poolId?: string }): Promise<Image[]>;
  /**
   * Records files found in pools, in batches: a new location becomes a `ready` image with a
   * deterministic id; a known location is refreshed (size, mtime, missing → ready) unless its
   * row is busy in another phase. A file whose size changed loses the row's checksum (it
   * describes other bytes).
   */
  upsertByLocation(found: readonly DiscoveredImage[]): Promise<UpsertResult>;
  /**
   * One page of the images in the pools assigned to a node, as its VM-creation view ranks them,
   * in one statement: 0 ready on this node, 1 being downloaded, 2 unavailable here (pool not
   * active, file missing, other node's local pool), 3 failed; then by name. Of several rows made
   * from one of `catalogIds`, each ready on this node counts (two pools, a copy), else only the
   * best-ranked one. Rows being deleted are left out.
   */
  listRankedForNode(options: RankedImagesQuery): Promise<RankedImages>;
  /** Applies a patch; the phase change, if any, must be allowed by the transition table. */
  update(id: string, patch: ImagePatch, options?: ImageUpdateOptions): Promise<Image>;
  delete(id: string, options?: UpdateOptions): Promise<void>;
}

export interface PoolFilter extends Page {
  type?: string;
  /** Pools assigned to this node. */
  nodeId?: string;
}

export interface PoolRepository {
  create(input: NewStoragePool): Promise<StoragePool>;
  get(id: string): Promise<StoragePool | undefined>;
  require(id: string): Promise<StoragePool>;
  getByName(name: string): Promise<StoragePool | undefined>;
  list(filter?: PoolFilter): Promise<StoragePool[]>;
  update(id: string, patch: StoragePoolPatch, options?: UpdateOptions): Promise<StoragePool>;
  /** IN_USE when images still live in the pool. Per-node states go with it. */
  delete(id: string, options?: UpdateOptions): Promise<void>;
  /** The pool-set generation: bumped by every create, update and delete of a pool, atomically. */
  currentGeneration(): Promise<number>;
  /** Records what a node reported about a pool (insert or replace). */
  setNodeState(state: PoolNodeStateInput): Promise<PoolNodeState>;
  /**
   * setNodeState for many (pool, node) pairs in one statement; a pair given twice keeps the last.
   * Nothing is read back: a reconnect storm stores thousands of states, and their rows parsed
   * and checked again would go to no one (listNodeStates reads them).
   */
  setNodeStates(states: readonly PoolNodeStateInput[]): Promise<void>;
  /**
   * The nodes went away: each of their pool states not `unknown` already becomes `unknown` with
   * the node's reason (mount path, capacity and the time of its last check are kept). One
   * statement; returns the states it changed.
   */
  markNodeStatesUnknown(nodes: readonly { nodeId: string; reason: string }[]): Promise<PoolNodeState[]>;
  /** Forgets what these nodes reported about pools no longer assigned to them (one statement). */
  deleteUnassignedNodeStates(nodeIds: readonly string[]): Promise<void>;
  getNodeState(poolId: string, nodeId: string): Promise<PoolNodeState | undefined>;
  listNodeStates(filter: { poolId?: string; nodeId?: string }): Promise<PoolNodeState[]>;
  /** Forgets what a node reported about a pool (the pool was unassigned from it). */
  deleteNodeState(poolId: string, nodeId: string): Promise<void>;
}

export interface NodeFilter extends Page {
  connectionState?: NodeConnectionState;
  labels?: Record<string, string>;
}

export interface NodeRepository {
  create(input: NewNode): Promise<Node>;
  get(id: string): Promise<Node | undefined>;
  require(id: string): Promise<Node>;
  getByHostname(hostname: string): Promise<Node | undefined>;
  list(filter?: NodeFilter): Promise<Node[]>;
  update(id: string, patch: NodePatch, options?: UpdateOptions): Promise<Node>;
  delete(id: string, options?: UpdateOptions): Promise<void>;
  /** Stores the SHA-256 (hex) of the node's connection token, or clears it. Never part of Node. */
  setTokenDigest(id: string, sha256Hex: string | null): Promise<void>;
  getTokenDigest(id: string): Promise<string | null>;
  /** getTokenDigest for many nodes in one query: the nodes that exist, each with its digest or null. */
  getTokenDigests(ids: readonly string[]): Promise<Map<string, string | null>>;
  /**
   * Records the connection state of many nodes in one statement (last seen now, version bumped;
   * agent version and capabilities too where given). Returns the ids of the nodes that exist.
   */
  setConnectionStates(changes: readonly NodeConnectionChange[]): Promise<string[]>;
}

/** A node connected (with what its hello said) or disconnected. */
export interface NodeConnectionChange {
  id: string;
  connectionState: NodeConnectionState;
  agentVersion?: string | null;
  capabilities?: Record<string, unknown>;
}

export interface VmFilter extends Page {
  /** The VMs of this node, or of any of these nodes. */
  nodeId?: string | readonly string[];
  state?: VmState | readonly VmState[];
  bootImageId?: string;
}

export interface VmRepository {
  create(input: NewVm): Promise<Vm>;
  get(id: string): Promise<Vm | undefined>;
  require(id: string): Promise<Vm>;
  getByName(name: string): Promise<Vm | undefined>;
  list(filter?: VmFilter): Promise<Vm[]>;
  update(id: string, patch: VmPatch, options?: UpdateOptions): Promise<Vm>;
  delete(id: string, options?: UpdateOptions): Promise<void>;
}

/** The four repositories over one database. */
export interface Repositories {
  images: ImageRepository;
  pools: PoolRepository;
  nodes: NodeRepository;
  vms: VmRepository;
}
