import {
  type ControlMessage,
  ErrorCode,
  type EventBus,
  ingestScan,
  isQuantixError,
  type NodeMessage,
  type NodeRequest,
  PoolSyncService,
  PROTOCOL_VERSION,
  parseNodeMessage,
  QuantixError,
  type Repositories,
} from '@quantix/core';
import type { Logger } from 'pino';
import type { WebSocket } from 'ws';

/** One live connection from a node daemon. */
interface NodeLink {
  nodeId: string;
  socket: WebSocket;
  alive: boolean;
  /** The generation the node last acknowledged. */
  syncedGeneration: number | null;
}

interface PendingRequest {
  nodeId: string;
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
  /** Ping interval; a node that misses a pong is dropped. */
  heartbeatMs?: number;
}

export interface NodeRequestOptions {
  timeoutMs?: number;
}

/**
 * The control plane's end of every node connection. It authenticates nothing itself (the HTTP
 * layer checked the node's token before the upgrade), then: waits for hello, pushes the node's
 * full desired pool set on every connect and after every pool change, stores what the node
 * reports, ingests scans, and carries requests to nodes and their answers back.
 */
export class NodeHub {
  private readonly links = new Map<string, NodeLink>();
  private readonly pending = new Map<string, PendingRequest>();
  private readonly sync: PoolSyncService;
  private readonly heartbeat: NodeJS.Timeout;
  private requestCounter = 0;
  private closed = false;
  /** Called after a node reported its pools for a push: what it reported is stored (downloads resume from here). */
  onPoolsSynced: ((nodeId: string) => void) | undefined;
  /** Called for each image.progress message from a node. */
  onImageProgress: ((message: Extract<NodeMessage, { type: 'image.progress' }>, nodeId: string) => void) | undefined;

  constructor(private readonly options: NodeHubOptions) {
    this.sync = new PoolSyncService({ repositories: options.repositories, events: options.events });
    this.heartbeat = setInterval(() => this.checkHeartbeats(), options.heartbeatMs ?? 15_000);
    this.heartbeat.unref();
  }

  connectedNodeIds(): string[] {
    return [...this.links.keys()];
  }

  isConnected(nodeId: string): boolean {
    return this.links.has(nodeId);
  }

  /** Takes over a socket whose node token was already verified for `nodeId`. */
  attach(nodeId: string, socket: WebSocket): void {
    const { logger } = this.options;
    let link: NodeLink | undefined;
    const helloTimer = setTimeout(() => {
      if (!link) socket.close(4000, 'no hello within the time allowed');
    }, this.options.helloTimeoutMs ?? 10_000);

    socket.on('message', (data) => {
      void (async () => {
        let message: NodeMessage;
        try {
          message = parseNodeMessage(data.toString());
        } catch (error) {
          logger.warn({ nodeId, err: error }, 'invalid message from node');
          this.send(socket, { v: PROTOCOL_VERSION, type: 'error', error: toErrorBody(error) });
          if (isQuantixError(error, ErrorCode.PROTOCOL_VERSION)) socket.close(4001, 'protocol version');
          return;
        }
        if (!link) {
          if (message.type !== 'hello' || message.nodeId !== nodeId) {
            socket.close(4002, 'the first message must be hello for the authenticated node');
            return;
          }
          clearTimeout(helloTimer);
          link = await this.welcome(nodeId, socket, message);
          return;
        }
        await this.handle(link, message);
      })().catch((error) => logger.error({ nodeId, err: error }, 'handling a node message failed'));
    });
    socket.on('pong', () => {
      if (link) link.alive = true;
    });
    socket.on('close', () => {
      clearTimeout(helloTimer);
      if (link && this.links.get(nodeId) === link) void this.detach(link, 'connection closed');
    });
    socket.on('error', (error) => logger.warn({ nodeId, err: error }, 'node socket error'));
  }

  /** Pushes the current desired pool set to every connected node (after any pool change). */
  async pushPoolsToAll(): Promise<void> {
    await Promise.all([...this.links.values()].map((link) => this.pushPools(link)));
  }

  /** Sends a request to a node and waits for its answer; the node's error comes back as a QuantixError. */
  request<T = unknown>(nodeId: string, request: NodeRequest, options: NodeRequestOptions = {}): Promise<T> {
    const link = this.links.get(nodeId);
    if (!link) {
      return Promise.reject(
        new QuantixError(
          ErrorCode.NODE_NOT_CONNECTED,
          `Node ${nodeId} is not connected; start its node daemon and retry`,
          {
            details: { nodeId },
          },
        ),
      );
    }
    const requestId = `r${++this.requestCounter}`;
    const timeoutMs = options.timeoutMs ?? 60_000;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(requestId);
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
      this.pending.set(requestId, { nodeId, resolve: resolve as (r: unknown) => void, reject, timer });
      this.send(link.socket, { v: PROTOCOL_VERSION, type: 'request', requestId, request });
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.heartbeat);
    for (const link of [...this.links.values()]) {
      link.socket.close(1001, 'control plane shutting down');
      await this.detach(link, 'control plane shutting down');
    }
  }

  private async welcome(
    nodeId: string,
    socket: WebSocket,
    hello: Extract<NodeMessage, { type: 'hello' }>,
  ): Promise<NodeLink> {
    const previous = this.links.get(nodeId);
    if (previous) {
      // A node that reconnects before its old socket timed out: the new connection wins.
      previous.socket.close(4003, 'replaced by a newer connection from the same node');
      await this.detach(previous, 'replaced by a newer connection');
    }
    const link: NodeLink = { nodeId, socket, alive: true, syncedGeneration: null };
    this.links.set(nodeId, link);
    await this.options.repositories.nodes.update(nodeId, {
      connectionState: 'connected',
      lastSeenAt: new Date(),
      agentVersion: hello.agentVersion,
      capabilities: hello.capabilities,
    });
    this.send(socket, { v: PROTOCOL_VERSION, type: 'welcome', nodeId, serverTime: new Date().toISOString() });
    await this.pushPools(link);
    this.options.events.emit('node.connected', { nodeId });
    this.options.logger.info({ nodeId, agentVersion: hello.agentVersion }, 'node connected');
    return link;
  }

  private async pushPools(link: NodeLink): Promise<void> {
    const desired = await this.sync.desiredPoolsFor(link.nodeId);
    this.send(link.socket, { v: PROTOCOL_VERSION, type: 'pools.desired', ...desired });
  }

  private async handle(link: NodeLink, message: NodeMessage): Promise<void> {
    const { repositories, logger } = this.options;
    link.alive = true;
    switch (message.type) {
      case 'hello':
        logger.warn({ nodeId: link.nodeId }, 'duplicate hello ignored');
        return;
      case 'pools.state': {
        await this.sync.recordReport(link.nodeId, message);
        link.syncedGeneration = message.generation;
        this.onPoolsSynced?.(link.nodeId);
        this.scanAfterSync(link.nodeId, message.pools);
        return;
      }
      case 'scan.result': {
        const result = await ingestScan({
          repositories,
          nodeId: link.nodeId,
          poolId: message.poolId,
          content: message.content,
          files: message.files,
        });
        logger.info({ nodeId: link.nodeId, poolId: message.poolId, ...result }, 'scan ingested');
        return;
      }
      case 'image.progress':
        this.onImageProgress?.(message, link.nodeId);
        return;
      case 'response': {
        const pending = this.pending.get(message.requestId);
        if (!pending || pending.nodeId !== link.nodeId) return;
        this.pending.delete(message.requestId);
        clearTimeout(pending.timer);
        if (message.error) {
          const code = (Object.values(ErrorCode) as string[]).includes(message.error.code)
            ? (message.error.code as ErrorCode)
            : ErrorCode.COMMAND_FAILED;
          pending.reject(
            new QuantixError(code, message.error.message, {
              details: { nodeId: link.nodeId, nodeCode: message.error.code },
            }),
          );
        } else {
          pending.resolve(message.result);
        }
        return;
      }
    }
  }

  /** After a sync, the node scans its active ISO pools; the results arrive as scan.result. */
  private scanAfterSync(nodeId: string, reports: readonly { poolId: string; status: string }[]): void {
    void (async () => {
      for (const report of reports) {
        if (report.status !== 'active') continue;
        const pool = await this.options.repositories.pools.get(report.poolId);
        if (!pool?.contentTypes.includes('iso')) continue;
        await this.request(nodeId, { op: 'pool.scan', poolId: pool.id, content: 'iso' }, { timeoutMs: 300_000 }).catch(
          (error) => this.options.logger.warn({ nodeId, poolId: pool.id, err: error }, 'scan after sync failed'),
        );
      }
    })();
  }

  private async detach(link: NodeLink, reason: string): Promise<void> {
    if (this.links.get(link.nodeId) !== link) return;
    this.links.delete(link.nodeId);
    for (const [id, pending] of this.pending) {
      if (pending.nodeId !== link.nodeId) continue;
      this.pending.delete(id);
      clearTimeout(pending.timer);
      pending.reject(
        new QuantixError(ErrorCode.NODE_NOT_CONNECTED, `Node ${link.nodeId} disconnected before answering (${reason})`),
      );
    }
    try {
      await this.options.repositories.nodes.update(link.nodeId, {
        connectionState: 'disconnected',
        lastSeenAt: new Date(),
      });
    } catch (error) {
      // Shutting down with the database already closed is not worth a crash.
      if (!this.closed)
        this.options.logger.warn({ nodeId: link.nodeId, err: error }, 'could not record the disconnect');
    }
    this.options.events.emit('node.disconnected', { nodeId: link.nodeId, reason });
  }

  private checkHeartbeats(): void {
    for (const link of this.links.values()) {
      if (!link.alive) {
        link.socket.terminate();
        continue;
      }
      link.alive = false;
      link.socket.ping();
    }
  }

  private send(socket: WebSocket, message: ControlMessage): void {
    if (socket.readyState === socket.OPEN) socket.send(JSON.stringify(message));
  }
}

function toErrorBody(error: unknown): { code: string; message: string } {
  if (isQuantixError(error)) return { code: error.code, message: error.message };
  return { code: ErrorCode.PROTOCOL_INVALID_MESSAGE, message: String((error as Error)?.message ?? error) };
}
