import type {
  EventBus,
  ImageError,
  ImagePhase,
  ImageProgress,
  PoolNodeStatus,
  QuantixEvents,
  VmState,
} from '@quantix/core';
import type { Knex } from 'knex';
import type { Logger } from 'pino';
import type { ReplicaListener } from '../replicas/listener.js';
import { SingleUseTickets } from '../tokens.js';

/**
 * What a live view (the web UI) is told as it happens: each event names the resource kind and
 * id and carries the fields that changed — small on purpose (ids, states, figures), so it fits a
 * PostgreSQL notification; the view fetches the rest of a record when it needs it.
 * `resync`: events may have been missed (this replica stopped hearing the others for a while):
 * fetch everything shown again.
 */
export type LiveEvent =
  | {
      type: 'image.progress';
      kind: 'image';
      id: string;
      progress: ImageProgress;
      bytesPerSecond: number | null;
      etaSeconds: number | null;
    }
  | { type: 'image.phase'; kind: 'image'; id: string; phase: ImagePhase; error: ImageError | null }
  | { type: 'image.changed'; kind: 'image'; id: string; deleted: boolean }
  | { type: 'pool.state'; kind: 'pool'; id: string; nodeId: string; status: PoolNodeStatus; reason: string | null }
  | { type: 'node.connection'; kind: 'node'; id: string; connected: boolean; reason: string | null }
  | { type: 'vm.state'; kind: 'vm'; id: string; state: VmState }
  | { type: 'resync'; kind: 'all'; id: '' };

export type LiveEventListener = (event: LiveEvent) => void;

export interface LiveEventsOptions {
  events: EventBus;
  listener: ReplicaListener;
  replicaId: string;
  /** Whether another replica may be listening (ReplicaRegistry.hasPeers); default: always. */
  hasPeers?: () => boolean;
  logger: Logger;
  /** Where stream tickets are kept, for every replica to redeem (the control plane's database). */
  knex: Knex;
  /** Least time between two progress events of one image (default 250 ms: at most 4 a second). */
  progressIntervalMs?: number;
  /** How long a stream ticket may wait to be used (default 60 s). */
  ticketTtlMs?: number;
}

const CHANNEL = 'quantix_live_events';
/** Free text (a reason, an error's message) is cut to this: the whole event stays far below NOTIFY's 8000 bytes. */
const MAX_TEXT = 1000;
/** Events waiting to be told to the other replicas at most; beyond it progress is dropped (the next one says more). */
const MAX_PENDING_NOTIFIES = 5_000;
/**
 * A notification's payload at most, in bytes: NOTIFY refuses 8000 and more. The events waiting
 * are packed into as few payloads as fit, all sent in one statement.
 */
const MAX_PAYLOAD_BYTES = 7_900;

const cut = (text: string | null): string | null =>
  text !== null && text.length > MAX_TEXT ? `${text.slice(0, MAX_TEXT - 1)}…` : text;

/**
 * The control plane's events as a live view sees them, on every replica: an event raised here
 * goes to this replica's listeners and, as a notification (`quantix_live_events`), to every
 * other replica's. Progress is throttled per image at the source; a phase change first sends
 * the progress it held back, so a view never sees progress after the phase that ended it.
 */
export class LiveEvents {
  private readonly listeners = new Map<LiveEventListener, (() => void) | undefined>();
  private readonly tickets: SingleUseTickets<true>;
  private readonly lastProgressAt = new Map<string, number>();
  private readonly heldProgress = new Map<string, { event: LiveEvent; timer: NodeJS.Timeout }>();
  private readonly unsubscribes: (() => void)[] = [];
  /**
   * Events for the other replicas, waiting for the statement in flight: the next one sends them
   * all at once. One at a time, so the others see them in the order they happened here.
   */
  private outbox: string[] = [];
  private notifying: Promise<void> | undefined;
  /** Numbers this replica's payloads: NOTIFY drops a payload equal to one sent before in the same transaction. */
  private payloadSeq = 0;
  /** How this replica's payloads begin. */
  private readonly ownPayloadHead: string;
  private closed = false;

  constructor(private readonly options: LiveEventsOptions) {
    this.ownPayloadHead = `{"from":${JSON.stringify(options.replicaId)},`;
    this.tickets = new SingleUseTickets({
      knex: options.knex,
      purpose: 'event-stream',
      ttlMs: options.ticketTtlMs ?? 60_000,
    });
    options.listener.on(
      CHANNEL,
      (payload) => this.fromOtherReplica(payload),
      async () => this.deliver({ type: 'resync', kind: 'all', id: '' }),
    );
    this.subscribeToBus();
  }

  /**
   * A single-use ticket (valid ticketTtlMs) to open a stream with, for a caller that showed the
   * API token: a browser's EventSource cannot send it. Good on any replica, once.
   */
  issueTicket(): Promise<{ ticket: string; expiresAt: Date }> {
    return this.tickets.issue(true);
  }

  /** True once for a ticket issueTicket gave and that has not expired; any ticket shown is spent. */
  async redeemTicket(ticket: string): Promise<boolean> {
    return (await this.tickets.redeem(ticket)) === true;
  }

  /**
   * Calls `listener` with every live event from now on, and `onClose` when the control plane
   * closes (end the stream then); the returned function stops it.
   */
  subscribe(listener: LiveEventListener, onClose?: () => void): () => void {
    if (this.closed) {
      onClose?.();
      return () => undefined;
    }
    this.listeners.set(listener, onClose);
    return () => this.listeners.delete(listener);
  }

  /** Streams open on this replica. */
  get listenerCount(): number {
    return this.listeners.size;
  }

  /** Stops listening to the bus and ends every subscriber's stream; what waits is dropped. */
  close(): void {
    this.closed = true;
    for (const unsubscribe of this.unsubscribes.splice(0)) unsubscribe();
    for (const held of this.heldProgress.values()) clearTimeout(held.timer);
    this.heldProgress.clear();
    const onCloses = [...this.listeners.values()];
    this.listeners.clear();
    for (const onClose of onCloses) onClose?.();
  }

  private subscribeToBus(): void {
    const { events } = this.options;
    const on = <K extends keyof QuantixEvents>(type: K, handler: (event: QuantixEvents[K]) => void) => {
      events.on(type, handler);
      this.unsubscribes.push(() => events.off(type, handler));
    };
    on('image.progress', (e) =>
      this.progress({
        type: 'image.progress',
        kind: 'image',
        id: e.imageId,
        progress: e.progress,
        bytesPerSecond: e.bytesPerSecond,
        etaSeconds: e.etaSeconds,
      }),
    );
    on('image.phase', (e) => {
      this.releaseHeldProgress(e.imageId);
      this.lastProgressAt.delete(e.imageId);
      const error = e.error ? { ...e.error, message: cut(e.error.message) ?? '' } : null;
      this.raise({ type: 'image.phase', kind: 'image', id: e.imageId, phase: e.to, error });
    });
    on('image.changed', (e) => this.raise({ type: 'image.changed', kind: 'image', id: e.imageId, deleted: e.deleted }));
    on('pool.state', (e) =>
      this.raise({
        type: 'pool.state',
        kind: 'pool',
        id: e.poolId,
        nodeId: e.nodeId,
        status: e.status,
        reason: cut(e.reason),
      }),
    );
    on('node.connected', (e) =>
      this.raise({ type: 'node.connection', kind: 'node', id: e.nodeId, connected: true, reason: null }),
    );
    on('node.disconnected', (e) =>
      this.raise({ type: 'node.connection', kind: 'node', id: e.nodeId, connected: false, reason: cut(e.reason) }),
    );
    on('vm.state', (e) => this.raise({ type: 'vm.state', kind: 'vm', id: e.vmId, state: e.to }));
  }

  /** At most one progress event per image per interval; the latest one held back goes out when it ends. */
  private progress(event: Extract<LiveEvent, { type: 'image.progress' }>): void {
    const interval = this.options.progressIntervalMs ?? 250;
    const now = Date.now();
    const last = this.lastProgressAt.get(event.id) ?? 0;
    const held = this.heldProgress.get(event.id);
    if (held) {
      held.event = event;
      return;
    }
    if (now - last >= interval) {
      this.lastProgressAt.set(event.id, now);
      this.raise(event);
      return;
    }
    const timer = setTimeout(() => this.releaseHeldProgress(event.id), last + interval - now);
    timer.unref();
    this.heldProgress.set(event.id, { event, timer });
  }

  private releaseHeldProgress(imageId: string): void {
    const held = this.heldProgress.get(imageId);
    if (!held) return;
    clearTimeout(held.timer);
    this.heldProgress.delete(imageId);
    this.lastProgressAt.set(imageId, Date.now());
    this.raise(held.event);
  }

  private raise(event: LiveEvent): void {
    if (this.closed) return;
    this.deliver(event);
    this.notifyOthers(event);
  }

  private deliver(event: LiveEvent): void {
    for (const listener of [...this.listeners.keys()]) {
      try {
        listener(event);
      } catch (error) {
        this.options.logger.warn({ err: error, type: event.type }, 'a live-event listener failed');
      }
    }
  }

  /**
   * Tells the other replicas of `event`. A burst (a reconnect storm raises four events a node, a
   * first scan one an image) goes out as a few notifications of many events each, in one
   * statement, instead of a round trip to the database per event.
   */
  private notifyOthers(event: LiveEvent): void {
    // Alone (no other replica alive, none announced), a storm's four events a node go nowhere.
    if (!this.options.listener.shared || this.options.hasPeers?.() === false) return;
    if (this.outbox.length >= MAX_PENDING_NOTIFIES && event.type === 'image.progress') return;
    this.outbox.push(JSON.stringify(event));
    this.notifying ??= this.sendOutbox();
  }

  /** Sends what waits in the outbox until it is empty. */
  private async sendOutbox(): Promise<void> {
    try {
      // Started on the next turn: the events raised in this one join the first statement.
      await new Promise<void>((resolve) => setImmediate(resolve));
      while (this.outbox.length > 0) {
        const events = this.outbox.splice(0);
        try {
          await this.options.listener.notifyAll(CHANNEL, this.pack(events));
        } catch (error) {
          this.options.logger.warn(
            { err: error, events: events.length },
            'telling the other replicas of events failed',
          );
        }
      }
    } finally {
      this.notifying = undefined;
    }
  }

  /** Events (each JSON already) packed into payloads below MAX_PAYLOAD_BYTES, in order. */
  private pack(events: readonly string[]): string[] {
    const payloads: string[] = [];
    const head = (seq: number) => `${this.ownPayloadHead}"seq":${seq},"events":[`;
    let current: string[] = [];
    let bytes = 0;
    const close = () => {
      if (current.length === 0) return;
      payloads.push(`${head(this.payloadSeq++)}${current.join(',')}]}`);
      current = [];
      bytes = 0;
    };
    const overhead = Buffer.byteLength(head(Number.MAX_SAFE_INTEGER)) + 2;
    for (const event of events) {
      const size = Buffer.byteLength(event) + 1;
      if (overhead + size > MAX_PAYLOAD_BYTES) {
        // Cannot happen with the texts cut to MAX_TEXT; said rather than failing the others' statement.
        this.options.logger.warn(
          { bytes: size },
          'a live event too large for a notification was not told to the other replicas',
        );
        continue;
      }
      if (overhead + bytes + size > MAX_PAYLOAD_BYTES) close();
      current.push(event);
      bytes += size;
    }
    close();
    return payloads;
  }

  /** Resolves once the events raised so far were handed to the database (shutdown waits for it). */
  async flushed(): Promise<void> {
    await this.notifying;
  }

  private fromOtherReplica(payload: string): void {
    // This replica's own notifications come back too: told apart by their head, not parsed.
    if (this.closed || payload.startsWith(this.ownPayloadHead)) return;
    const message = JSON.parse(payload) as { events?: LiveEvent[] };
    if (!Array.isArray(message.events)) return;
    for (const event of message.events) this.deliver(event);
  }
}
