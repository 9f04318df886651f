import { randomUUID } from 'node:crypto';
import type { Knex } from 'knex';
import type { Logger } from 'pino';
import { rowsOf } from '../rows.js';
import type { ReplicaListener } from './listener.js';

/** Where a replica says it has started, so that the others know at once that someone listens. */
const JOINED_CHANNEL = 'quantix_replica_joined';

/** How many replicas other than the one whose id is bound are alive: what `hasPeers` is counted from. */
const OTHER_LIVE_REPLICAS = 'select count(*) from replicas where expires_at > now() and id <> ?';
/** The live replicas other than the one whose id is bound whose key fingerprint differs from the one bound (none without one). */
const OTHER_KEYS = `select coalesce(array_agg(id order by id), '{}') from replicas
  where expires_at > now() and id <> ? and key_fingerprint is not null and key_fingerprint <> ?`;

export interface ReplicaRegistryOptions {
  knex: Knex;
  logger: Logger;
  /** This replica's id (default: a new UUID: one per process start). */
  replicaId?: string;
  /** This replica's version, as /healthz shows it. */
  version: string;
  /** Where other replicas reach this one, if they need to. */
  url?: string;
  /**
   * How long a replica's row and node leases last without renewal (default 15 s): how long its
   * nodes wait after it dies before another replica may hold them. Renewed every third of it.
   */
  leaseSeconds?: number;
  /** Called with the nodes this replica held but another replica took over (close their links). */
  onNodesLost?: (nodeIds: string[]) => void;
  /** Called with the nodes this replica held whose records were deleted since (their leases went with them). */
  onNodesRemoved?: (nodeIds: string[]) => void;
  /** Where replicas tell each other; with it, a replica that starts is known to the others at once. */
  listener?: ReplicaListener;
  /**
   * A fingerprint of the secret every replica must share (ticketKeyFingerprint of the ticket key,
   * which `quantix serve` makes from the API token). A live replica whose fingerprint differs is
   * warned about, at start and at each renewal, and listed so (`sameKey`).
   */
  keyFingerprint?: string;
}

export interface ReplicaInfo {
  id: string;
  url: string | null;
  version: string;
  startedAt: string;
  heartbeatAt: string;
  /** The nodes whose connections it holds. */
  nodeIds: string[];
  /** Whether it shares this replica's key (API token); null when either has no fingerprint to compare. */
  sameKey: boolean | null;
}

/**
 * Which replicas are alive and which holds each node's connection, in PostgreSQL: a row per
 * replica and a lease row per held node, both renewed together in one statement and expiring
 * unless renewed.
 *
 * Rows rather than session advisory locks: a lease row is a fact every replica can read (who
 * holds node X, to carry a request there; /replicas), survives a connection pooler, and its
 * expiry is a number the tests can assert; a replica cut off from PostgreSQL loses it when it
 * runs out, as it would an advisory lock with its session.
 */
export class ReplicaRegistry {
  readonly replicaId: string;
  private readonly leaseSeconds: number;
  private readonly held = new Set<string>();
  /** Every live lease as of the last renewal: node → replica. */
  private holders = new Map<string, string>();
  private timer: NodeJS.Timeout | undefined;
  private renewedAt = 0;
  private renewing: Promise<void> = Promise.resolve();
  /** Other live replicas, as of the last count; a replica that says it joined counts at once. */
  private peers = 0;
  private peerJoinedAt = 0;
  /** Live replicas with another key, as of the last look: each is warned about once while it stays so. */
  private otherKeys = new Set<string>();

  constructor(private readonly options: ReplicaRegistryOptions) {
    this.replicaId = options.replicaId ?? randomUUID();
    this.leaseSeconds = options.leaseSeconds ?? 15;
    options.listener?.on(JOINED_CHANNEL, (replicaId) => {
      if (replicaId === this.replicaId) return;
      this.peers = Math.max(this.peers, 1);
      this.peerJoinedAt = Date.now();
    });
  }

  /**
   * Whether another replica is alive, so that what happens here is worth telling (live events):
   * counted at start and at every renewal, and true at once when another replica announces itself
   * (`announce`, as it starts). A replica alone sends nothing to nobody.
   */
  get hasPeers(): boolean {
    return this.peers > 0;
  }

  /** Tells the other replicas this one has started (once its listener listens). */
  async announce(): Promise<void> {
    await this.options.listener?.notify(JOINED_CHANNEL, this.replicaId);
  }

  /** Sets the count of peers from a query begun at `countedFrom`; one who joined since is not forgotten. */
  private countPeers(count: number, countedFrom: number): void {
    this.peers = count === 0 && this.peerJoinedAt >= countedFrom ? 1 : count;
  }

  /** Where nodes and others reach this replica itself (not a balancer), when it was given. */
  get url(): string | null {
    return this.options.url ?? null;
  }

  /**
   * Registers this replica and starts renewing its leases. Leases left under this id by an
   * earlier run (a replica restarted with a stable id) go first: that run is dead, and its
   * leases would otherwise keep its nodes "held" for up to a lease after it.
   */
  async start(): Promise<void> {
    await this.options.knex.raw('delete from node_leases where replica_id = ?', [this.replicaId]);
    await this.register();
    const countedFrom = Date.now();
    const others = await this.options.knex.raw(
      `select (${OTHER_LIVE_REPLICAS}) as peers, (${OTHER_KEYS}) as other_keys`,
      [this.replicaId, this.replicaId, this.keyFingerprint],
    );
    this.countPeers(Number(rowsOf(others)[0]?.peers ?? 0), countedFrom);
    this.noteOtherKeys((rowsOf(others)[0]?.other_keys as string[] | undefined) ?? []);
    await this.refreshHolders();
    this.renewedAt = Date.now();
    let inFlight = false;
    this.timer = setInterval(
      () => {
        // Checked on every tick, not when a renewal fails: a renewal that hangs (a link that
        // drops packets rather than refusing them) may not fail before the lease is long gone.
        if (Date.now() - this.renewedAt >= this.leaseSeconds * 1000) this.loseAll();
        if (inFlight) return; // one renewal at a time: hung ones do not pile up
        inFlight = true;
        this.renewing = this.renew()
          .catch((error) => {
            this.options.logger.warn({ err: error }, 'renewing this replica’s leases failed');
          })
          .finally(() => {
            inFlight = false;
          });
      },
      (this.leaseSeconds * 1000) / 3,
    );
    this.timer.unref();
  }

  private async refreshHolders(): Promise<void> {
    const leases = await this.options.knex.raw('select node_id, replica_id from node_leases where expires_at > now()');
    this.holders = new Map(rowsOf(leases).map((lease) => [lease.node_id as string, lease.replica_id as string]));
  }

  /** Every node a live replica holds now, this one's included (one query, and the holders map refreshed). */
  async heldNodeIdsAnywhere(): Promise<Set<string>> {
    await this.refreshHolders();
    return new Set(this.holders.keys());
  }

  private loseAll(): void {
    const lost = [...this.held];
    this.held.clear();
    if (lost.length === 0) return;
    this.options.logger.warn(
      { nodes: lost },
      'this replica could not renew its node leases in time: letting its nodes go',
    );
    this.options.onNodesLost?.(lost);
  }

  private async register(): Promise<void> {
    await this.options.knex.raw(
      `insert into replicas (id, url, version, expires_at, key_fingerprint)
       values (?, ?, ?, now() + make_interval(secs => ?), ?)
       on conflict (id) do update set url = excluded.url, version = excluded.version,
         heartbeat_at = now(), expires_at = excluded.expires_at, key_fingerprint = excluded.key_fingerprint`,
      [this.replicaId, this.options.url ?? null, this.options.version, this.leaseSeconds, this.keyFingerprint],
    );
  }

  private get keyFingerprint(): string | null {
    return this.options.keyFingerprint ?? null;
  }

  /**
   * Warns about each live replica that started with another key (API token) than this one: its
   * tickets are refused here and this one's there, and a client's token works on one of the two.
   */
  private noteOtherKeys(replicaIds: readonly string[]): void {
    const now = new Set(replicaIds);
    for (const id of now) {
      if (this.otherKeys.has(id)) continue;
      this.options.logger.warn(
        { replicaId: id },
        `replica ${id} was started with another API token than this one: each refuses the other’s download and copy tickets, and a client’s token works on only one of them; give every replica the same --api-token-file`,
      );
    }
    this.otherKeys = now;
  }

  /** Stops renewing and gives up this replica's row and leases, so its nodes move at once. */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.renewing;
    await this.options.knex.raw('delete from replicas where id = ?', [this.replicaId]);
    this.held.clear();
  }

  /**
   * This replica now holds `nodeId`'s connection: the node chose it, so a lease another replica
   * holds is taken over (that replica finds out at its next renewal and closes its link).
   * Returns the replica it was taken from, if any still held it.
   */
  async claim(nodeId: string): Promise<{ takenFrom: string | null }> {
    return { takenFrom: (await this.claimAll([nodeId])).get(nodeId) ?? null };
  }

  /** `claim` for many nodes in one statement: node → the replica it was taken from, or null. */
  async claimAll(nodeIds: readonly string[]): Promise<Map<string, string | null>> {
    if (nodeIds.length === 0) return new Map();
    // Who held each node comes from a join of the claimed rows with `previous`, not a subquery per
    // returned row, which scanned all of `previous` for every node: 670 × 670 for a batch of nodes
    // moving off a killed replica (30 ms a batch against 12).
    // A lease this replica holds and has not let run out is left as it is (renewals extend it):
    // nodes reconnecting to the replica they were on rewrite no rows — 5 ms instead of 17 for a
    // batch of 2,000 in a reconnect storm — and their leases keep the time they were acquired.
    const result = await this.options.knex.raw(
      `with wanted as (select distinct unnest(?::text[]) as node_id),
       previous as (
         select l.node_id, l.replica_id from node_leases l join wanted using (node_id)
          where l.expires_at > now() and l.replica_id <> ?
       ),
       claimed as (
         insert into node_leases as l (node_id, replica_id, expires_at)
         select node_id, ?, now() + make_interval(secs => ?) from wanted
         on conflict (node_id) do update set replica_id = excluded.replica_id, acquired_at = now(),
           expires_at = excluded.expires_at
           where l.replica_id <> excluded.replica_id or l.expires_at <= now()
         returning node_id
       )
       select c.node_id, p.replica_id as taken_from from claimed c left join previous p using (node_id)`,
      [[...nodeIds], this.replicaId, this.replicaId, this.leaseSeconds],
    );
    for (const nodeId of nodeIds) {
      this.held.add(nodeId);
      this.holders.set(nodeId, this.replicaId);
    }
    // Rows come back only for leases written: one left as it was was taken from nobody.
    const takenFrom = new Map<string, string | null>(nodeIds.map((nodeId) => [nodeId, null]));
    for (const row of rowsOf(result)) takenFrom.set(row.node_id as string, (row.taken_from as string | null) ?? null);
    return takenFrom;
  }

  /** The node's connection here ended: its lease goes, unless another replica holds it by now. */
  async release(nodeId: string): Promise<void> {
    await this.releaseAll([nodeId]);
  }

  /**
   * `release` for many nodes in one statement; returns those another live replica holds now
   * (whose connection that replica records).
   */
  async releaseAll(nodeIds: readonly string[]): Promise<Set<string>> {
    if (nodeIds.length === 0) return new Set();
    for (const nodeId of nodeIds) this.held.delete(nodeId);
    const result = await this.options.knex.raw(
      `with released as (
         delete from node_leases where node_id = any(?) and replica_id = ?
       )
       select node_id from node_leases where node_id = any(?) and replica_id <> ? and expires_at > now()`,
      [[...nodeIds], this.replicaId, [...nodeIds], this.replicaId],
    );
    return new Set(rowsOf(result).map((row) => row.node_id as string));
  }

  /** Whether a replica is alive now (its row renewed within its lease). */
  async isLive(replicaId: string): Promise<boolean> {
    const result = await this.options.knex.raw('select 1 from replicas where id = ? and expires_at > now()', [
      replicaId,
    ]);
    return rowsOf(result).length > 0;
  }

  /** The replica holding `nodeId`'s connection now, or null when none does. */
  async holderOf(nodeId: string): Promise<string | null> {
    const result = await this.options.knex.raw(
      'select replica_id from node_leases where node_id = ? and expires_at > now()',
      [nodeId],
    );
    return (rowsOf(result)[0]?.replica_id as string | undefined) ?? null;
  }

  /**
   * Whether another live replica held `nodeId`'s connection at the last renewal (at most a third
   * of a lease ago): what lets this replica's services count such a node as connected.
   */
  heldElsewhere(nodeId: string): boolean {
    const holder = this.holders.get(nodeId);
    return holder !== undefined && holder !== this.replicaId;
  }

  /** Nodes whose connections this replica holds, as far as this replica knows. */
  heldNodeIds(): string[] {
    return [...this.held];
  }

  /** Live replicas (leases not run out), oldest first, with the nodes each holds. */
  async liveReplicas(): Promise<ReplicaInfo[]> {
    const result = await this.options.knex.raw(
      `select r.id, r.url, r.version, r.started_at, r.heartbeat_at, r.key_fingerprint,
              coalesce(array_agg(l.node_id order by l.node_id) filter (where l.node_id is not null), '{}') as node_ids
         from replicas r
         left join node_leases l on l.replica_id = r.id and l.expires_at > now()
        where r.expires_at > now()
        group by r.id
        order by r.started_at, r.id`,
    );
    return rowsOf(result).map((row) => ({
      id: row.id as string,
      url: (row.url as string | null) ?? null,
      version: row.version as string,
      startedAt: new Date(row.started_at as string).toISOString(),
      heartbeatAt: new Date(row.heartbeat_at as string).toISOString(),
      nodeIds: row.node_ids as string[],
      sameKey:
        row.key_fingerprint == null || this.keyFingerprint === null
          ? null
          : row.key_fingerprint === this.keyFingerprint,
    }));
  }

  /**
   * Renews this replica's row and the leases it still holds, in one statement, and removes the
   * rows of replicas long dead. Nodes it believed it held but no longer does were taken over.
   */
  async renew(): Promise<void> {
    const startedAt = Date.now();
    // Only the nodes this replica still holds: a lease it let go (its link closed, or it gave up
    // its nodes while cut off) runs out, even if its row could not be deleted then.
    const holding = [...this.held];
    const result = await this.options.knex.raw(
      `with me as (
         update replicas set heartbeat_at = now(), expires_at = now() + make_interval(secs => ?)
          where id = ? returning id
       ), kept as (
         update node_leases set expires_at = now() + make_interval(secs => ?)
          where replica_id = (select id from me) and node_id = any(?) returning node_id
       ), swept as (
         delete from replicas where expires_at < now() - make_interval(secs => ?) and id <> ?
       ), stale_requests as (
         -- Requests between replicas whose requester is long gone.
         delete from node_requests where deadline < now() - interval '1 minute'
       )
       select (select count(*) from me) as registered, coalesce(array_agg(node_id), '{}') as node_ids,
              (${OTHER_LIVE_REPLICAS}) as peers, (${OTHER_KEYS}) as other_keys
         from kept`,
      [
        this.leaseSeconds,
        this.replicaId,
        this.leaseSeconds,
        holding,
        this.leaseSeconds * 4,
        this.replicaId,
        this.replicaId,
        this.replicaId,
        this.keyFingerprint,
      ],
    );
    const row = rowsOf(result)[0];
    this.countPeers(Number(row?.peers ?? 0), startedAt);
    this.noteOtherKeys((row?.other_keys as string[] | undefined) ?? []);
    if (Number(row?.registered ?? 0) === 0) {
      // Our row was swept while we were cut off: register again (the leases went with it).
      await this.register();
    }
    // The leases run from the statement, which began after this: counting from here errs early.
    this.renewedAt = startedAt;
    await this.refreshHolders();
    const kept = new Set((row?.node_ids as string[] | undefined) ?? []);
    // Nodes claimed while this renewal ran are not in `holding`: their leases are fresh.
    const lost = holding.filter((nodeId) => this.held.has(nodeId) && !kept.has(nodeId));
    if (lost.length === 0) return;
    for (const nodeId of lost) this.held.delete(nodeId);
    // A lease is deleted with its node: a node removed (on any replica) is held by nobody. When
    // that cannot be read, each is taken as held elsewhere: its link is closed all the same.
    const existing = await this.options.knex
      .raw('select id from nodes where id = any(?::text[])', [lost])
      .then((result) => new Set(rowsOf(result).map((row) => row.id as string)))
      .catch(() => new Set(lost));
    // One that connected here again while that was read is held here: its new link stays.
    const gone = lost.filter((nodeId) => !this.held.has(nodeId));
    const taken = gone.filter((nodeId) => existing.has(nodeId));
    const removed = gone.filter((nodeId) => !existing.has(nodeId));
    if (taken.length > 0) {
      this.options.logger.warn({ nodes: taken }, 'nodes this replica held are held by another replica now');
      this.options.onNodesLost?.(taken);
    }
    if (removed.length > 0) {
      this.options.logger.info({ nodes: removed }, 'nodes this replica held were removed');
      this.options.onNodesRemoved?.(removed);
    }
  }

  /** Forgets nodes this replica held whose records it deleted itself (their leases went with them). */
  forgetRemoved(nodeIds: readonly string[]): void {
    for (const nodeId of nodeIds) {
      this.held.delete(nodeId);
      this.holders.delete(nodeId);
    }
  }
}
