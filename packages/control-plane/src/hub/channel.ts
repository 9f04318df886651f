/**
 * What the node hub needs of a connection to one node: text messages both ways, a close with a
 * code, and a way to stop reading (backpressure). The hub knows nothing else of the transport;
 * `webSocketChannel` adapts a `ws` WebSocket, and any other transport can be adapted the same way.
 */
export interface NodeChannel {
  /** Sends one message. Ignored once the channel is closed. */
  send(text: string): void;
  /** Closes the channel with a code (WebSocket close codes; see NODE_CLOSE_CODES) and a reason. */
  close(code: number, reason: string): void;
  /** Stops delivering messages until resume() (the node is then held back by its transport). */
  pause(): void;
  resume(): void;
  /** Bytes given to send() and not yet written out. */
  readonly bufferedBytes: number;
  readonly open: boolean;
  /** Sets the handler of each message received. */
  onMessage(handler: (text: string) => void): void;
  /** Sets the handler of the channel's end, whoever ended it. Called once. */
  onClose(handler: () => void): void;
}

/** The part of a `ws` WebSocket the adapter uses (so that `ws` is not a dependency of this package). */
export interface WebSocketLike {
  readonly readyState: number;
  readonly OPEN: number;
  readonly bufferedAmount: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  terminate(): void;
  ping(): void;
  pause(): void;
  resume(): void;
  on(event: 'message', listener: (data: Buffer | ArrayBuffer | Buffer[]) => void): unknown;
  on(event: 'pong', listener: () => void): unknown;
  on(event: 'close', listener: () => void): unknown;
  on(event: 'error', listener: (error: Error) => void): unknown;
}

export interface WebSocketChannelOptions {
  /** Ping interval; a node that answered nothing since the last ping is dropped. Default 15 s. */
  heartbeatMs?: number;
  onError?: (error: Error) => void;
  /**
   * The TCP socket under the WebSocket (on a server: the upgrade request's socket). Given, the
   * messages sent in one turn of the event loop leave in one write: a welcome and the pools that
   * follow it are one packet, not two: 2,000 fewer write syscalls in a 2,000-node reconnect storm.
   */
  transport?: { cork(): void; uncork(): void };
}

function asText(data: Buffer | ArrayBuffer | Buffer[]): string {
  if (Buffer.isBuffer(data)) return data.toString();
  if (Array.isArray(data)) return Buffer.concat(data).toString();
  return Buffer.from(data).toString();
}

/**
 * One timer per heartbeat interval for all channels that share it, instead of one a channel: a
 * control plane holds thousands of node connections, and each made a timer and closures of its own.
 */
const heartbeats = new Map<number, { timer: NodeJS.Timeout; channels: Set<WebSocketChannel> }>();

function joinHeartbeat(channel: WebSocketChannel, intervalMs: number): void {
  let beat = heartbeats.get(intervalMs);
  if (!beat) {
    const channels = new Set<WebSocketChannel>();
    const timer = setInterval(() => {
      for (const one of channels) one.beat();
    }, intervalMs);
    timer.unref();
    beat = { timer, channels };
    heartbeats.set(intervalMs, beat);
  }
  beat.channels.add(channel);
}

function leaveHeartbeat(channel: WebSocketChannel, intervalMs: number): void {
  const beat = heartbeats.get(intervalMs);
  if (!beat?.channels.delete(channel) || beat.channels.size > 0) return;
  clearInterval(beat.timer);
  heartbeats.delete(intervalMs);
}

/**
 * A NodeChannel over a `ws` WebSocket, with the liveness check WebSockets need: a ping every
 * `heartbeatMs`, and a node that sent nothing (no pong, no message) since the last one is
 * terminated. While reading is paused the node's pongs wait unread, so it is not judged then.
 */
export function webSocketChannel(socket: WebSocketLike, options: WebSocketChannelOptions = {}): NodeChannel {
  return new WebSocketChannel(socket, options);
}

class WebSocketChannel implements NodeChannel {
  private alive = true;
  private paused = false;
  private closed = false;
  private corked = false;
  private closeHandler: (() => void) | undefined;
  private readonly heartbeatMs: number;

  constructor(
    private readonly socket: WebSocketLike,
    private readonly options: WebSocketChannelOptions,
  ) {
    this.heartbeatMs = options.heartbeatMs ?? 15_000;
    joinHeartbeat(this, this.heartbeatMs);
    socket.on('pong', () => {
      this.alive = true;
    });
    socket.on('close', () => {
      leaveHeartbeat(this, this.heartbeatMs);
      if (this.closed) return;
      this.closed = true;
      this.closeHandler?.();
    });
    socket.on('error', (error) => options.onError?.(error));
  }

  /** The heartbeat's tick: a ping, or the end of a node that answered nothing since the last one. */
  beat(): void {
    if (this.paused) return;
    if (!this.alive) {
      this.socket.terminate();
      return;
    }
    this.alive = false;
    this.socket.ping();
  }

  send(text: string): void {
    if (this.socket.readyState !== this.socket.OPEN) return;
    const { transport } = this.options;
    if (transport && !this.corked) {
      this.corked = true;
      transport.cork();
      process.nextTick(WebSocketChannel.uncork, this, transport);
    }
    this.socket.send(text);
  }

  close(code: number, reason: string): void {
    if (this.socket.readyState === this.socket.OPEN) this.socket.close(code, reason);
  }

  pause(): void {
    this.paused = true;
    this.socket.pause();
  }

  resume(): void {
    this.paused = false;
    this.alive = true;
    this.socket.resume();
  }

  get bufferedBytes(): number {
    return this.socket.bufferedAmount;
  }

  get open(): boolean {
    return this.socket.readyState === this.socket.OPEN;
  }

  onMessage(handler: (text: string) => void): void {
    this.socket.on('message', (data) => {
      this.alive = true;
      handler(asText(data));
    });
  }

  onClose(handler: () => void): void {
    this.closeHandler = handler;
  }

  /** Ends the cork begun by the first send of a turn (see WebSocketChannelOptions.transport). */
  private static uncork(channel: WebSocketChannel, transport: { uncork(): void }): void {
    channel.corked = false;
    transport.uncork();
  }
}
