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
 * A NodeChannel over a `ws` WebSocket, with the liveness check WebSockets need: a ping every
 * `heartbeatMs`, and a node that sent nothing (no pong, no message) since the last one is
 * terminated. While reading is paused the node's pongs wait unread, so it is not judged then.
 */
export function webSocketChannel(socket: WebSocketLike, options: WebSocketChannelOptions = {}): NodeChannel {
  let alive = true;
  let paused = false;
  let closed = false;
  let closeHandler: (() => void) | undefined;
  const { transport } = options;
  let corked = false;
  const uncork = () => {
    corked = false;
    transport?.uncork();
  };
  const heartbeat = setInterval(() => {
    if (paused) return;
    if (!alive) {
      socket.terminate();
      return;
    }
    alive = false;
    socket.ping();
  }, options.heartbeatMs ?? 15_000);
  heartbeat.unref();
  socket.on('pong', () => {
    alive = true;
  });
  socket.on('close', () => {
    clearInterval(heartbeat);
    if (closed) return;
    closed = true;
    closeHandler?.();
  });
  socket.on('error', (error) => options.onError?.(error));
  return {
    send(text) {
      if (socket.readyState !== socket.OPEN) return;
      if (transport && !corked) {
        corked = true;
        transport.cork();
        process.nextTick(uncork);
      }
      socket.send(text);
    },
    close(code, reason) {
      if (socket.readyState === socket.OPEN) socket.close(code, reason);
    },
    pause() {
      paused = true;
      socket.pause();
    },
    resume() {
      paused = false;
      alive = true;
      socket.resume();
    },
    get bufferedBytes() {
      return socket.bufferedAmount;
    },
    get open() {
      return socket.readyState === socket.OPEN;
    },
    onMessage(handler) {
      socket.on('message', (data) => {
        alive = true;
        handler(asText(data));
      });
    },
    onClose(handler) {
      closeHandler = handler;
    },
  };
}
