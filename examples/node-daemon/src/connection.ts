import type { LookupAddress, LookupOptions } from 'node:dns';
import { type FSWatcher, readFileSync, watch } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { isIPv6 } from 'node:net';
import { basename, dirname } from 'node:path';
import type { Duplex, Writable } from 'node:stream';
import {
  type ControlMessage,
  ErrorCode,
  isQuantixError,
  NODE_CLOSE_CODES,
  NODE_CONSOLE_PATH,
  NODE_EXPORT_PATH,
  type NodeMessage,
  PROTOCOL_LIMITS,
  PROTOCOL_VERSION,
  PROTOCOL_VERSIONS,
  parseControlMessage,
  QuantixError,
  truncateText,
} from '@quantix/core';
import type { Logger } from 'pino';
import WebSocket, { createWebSocketStream } from 'ws';
import { dialOrder, type Endpoint, parseControlPlaneUrls, resolveEndpoints } from './endpoints.js';

/** Handles what the control plane sends; replies go through `send`. */
export interface MessageHandler {
  handle(message: ControlMessage, send: (message: NodeMessage) => void): Promise<void> | void;
}

export interface ControlPlaneConnectionOptions {
  /**
   * http(s):// or ws(s)://host:port of each control-plane replica (the /api/v1/nodes/connect path
   * is added). Any replica will do; a host name with several addresses is one replica per address.
   */
  urls: readonly string[];
  nodeId: string;
  token: string;
  /**
   * Where the token is kept (`--token-file`): read again before each dial, so that a token
   * replaced with `quantix nodes token` is taken up once written there, without a restart — at
   * once while the token in hand is refused (the file is watched then).
   */
  tokenFile?: string;
  hostname: string;
  agentVersion: string;
  capabilities?: Record<string, unknown>;
  /**
   * Builds the hello for each (re)connect, for what changes between connections (the node
   * agent's downloads in hand, the endpoint reached). Default: one made of nodeId, hostname,
   * agentVersion, capabilities.
   */
  hello?: (endpoint: Endpoint) => Extract<NodeMessage, { type: 'hello' }>;
  handler: MessageHandler;
  logger: Logger;
  /** First reconnect delay; doubles up to maxBackoffMs, with full jitter. */
  initialBackoffMs?: number;
  maxBackoffMs?: number;
}

/**
 * The node's one connection to the control plane: dials, says hello, hands every validated
 * message to the handler, and redials with exponential backoff and jitter whenever the
 * connection drops — forever, until close(). Each dial goes to the next endpoint (every --url,
 * every address of its host) of a round in random order (dialOrder), so that nodes spread over
 * the replicas, at start and when one dies; so a dead replica costs one failed dial, not a node's
 * connection. A wrong token is reported and retried too (an operator may fix it on the control
 * plane), but with the maximum delay.
 */
export class ControlPlaneConnection {
  private readonly urls: URL[];
  /** Endpoints not yet tried in this round; refilled (names resolved again) when empty. */
  private untried: Endpoint[] = [];
  private current: Endpoint | undefined;
  private socket: WebSocket | undefined;
  /** The protocol version agreed in the last welcome; until one comes, this release's. */
  private version: number = PROTOCOL_VERSION;
  private attempt = 0;
  private stopped = false;
  private retryTimer: NodeJS.Timeout | undefined;
  /** The token of the last dial (tokenFile, read again before each). */
  private token: string;
  /** Watches tokenFile's directory while the token in hand is refused. */
  private tokenWatcher: FSWatcher | undefined;
  private connectedOnce: (() => void) | undefined;
  readonly ready: Promise<void>;

  constructor(private readonly options: ControlPlaneConnectionOptions) {
    this.urls = parseControlPlaneUrls(options.urls);
    this.token = options.token;
    this.ready = new Promise((resolve) => {
      this.connectedOnce = resolve;
    });
  }

  start(): void {
    this.redial();
  }

  get connected(): boolean {
    return this.socket?.readyState === WebSocket.OPEN;
  }

  /** The endpoint of the open connection, if any. */
  get endpoint(): Endpoint | undefined {
    return this.connected ? this.current : undefined;
  }

  /** Sends a message, written in the version agreed for this connection (a hello in this release's). */
  send(message: NodeMessage): void {
    if (this.socket?.readyState !== WebSocket.OPEN) return;
    this.socket.send(JSON.stringify(message.type === 'hello' ? message : { ...message, v: this.version }));
  }

  async close(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    this.stopWatchingTokenFile();
    const socket = this.socket;
    if (!socket || socket.readyState === WebSocket.CLOSED) return;
    await new Promise<void>((resolve) => {
      socket.once('close', () => resolve());
      socket.close(1000, 'node daemon stopping');
      setTimeout(() => {
        socket.terminate();
        resolve();
      }, 2000).unref();
    });
  }

  /**
   * Dials the console relay for a console.open on the replica this connection is on, or on
   * `relayUrl` when another replica asked (the session waits there), with this node's token; the bytes go as binary frames, never through the node
   * protocol's connection. Settles once the relay took the socket.
   */
  async openConsoleChannel(sessionId: string, relayUrl?: string): Promise<Duplex> {
    const target = this.dialBackTarget(`${NODE_CONSOLE_PATH}/${encodeURIComponent(sessionId)}`, relayUrl);
    const url = new URL(target.url.href.replace(/^http/, 'ws'));
    const socket = new WebSocket(url, {
      headers: { authorization: `Bearer ${this.token}`, 'x-quantix-node-id': this.options.nodeId },
      handshakeTimeout: 10_000,
      ...target.lookup,
    });
    await new Promise<void>((resolve, reject) => {
      socket.once('open', () => resolve());
      socket.once('unexpected-response', (_request, response) => {
        socket.terminate();
        reject(
          new QuantixError(
            ErrorCode.CONSOLE_UNAVAILABLE,
            `The control plane refused the console relay (${response.statusCode})`,
          ),
        );
      });
      socket.once('error', reject);
    });
    return createWebSocketStream(socket);
  }

  /**
   * Opens the upload of a file.export's bytes to the replica this connection is on (or to
   * `relayUrl`, the replica that asked, when the request was carried from it): a streamed
   * HTTP POST to NODE_EXPORT_PATH/{sessionId} with this node's token, `lengthBytes` long. Plain
   * HTTP rather than a WebSocket: bulk bytes one way need no framing or masking, and TCP's own
   * back-pressure paces the node's read. Settles once connected; a refusal (or the control
   * plane closing it early, its client gone) fails the stream, which ends the read.
   */
  async openExportChannel(sessionId: string, lengthBytes: number, relayUrl?: string): Promise<Writable> {
    const { url, lookup } = this.dialBackTarget(`${NODE_EXPORT_PATH}/${encodeURIComponent(sessionId)}`, relayUrl);
    const request = (url.protocol === 'https:' ? httpsRequest : httpRequest)(url, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${this.token}`,
        'x-quantix-node-id': this.options.nodeId,
        'content-type': 'application/octet-stream',
        'content-length': lengthBytes,
      },
      ...lookup,
      timeout: 30_000,
    });
    request.once('response', (response) => {
      response.resume();
      if (response.statusCode !== 204) {
        request.destroy(
          new QuantixError(
            ErrorCode.UNSUPPORTED_OPERATION,
            `The control plane refused the file export (${response.statusCode})`,
          ),
        );
      }
    });
    request.once('timeout', () => request.destroy(new Error('the export channel stalled for 30 s')));
    await new Promise<void>((resolve, reject) => {
      request.once('socket', (socket) => {
        if (!socket.connecting) resolve();
        else socket.once('connect', () => resolve());
      });
      request.once('error', reject);
    });
    return request;
  }

  /**
   * Where a console or export channel is dialled: `path` under the API prefix of the replica this
   * connection is on (at the address it connected to), or of `relayUrl`, the replica that asked
   * when the request was carried from another one. Only an http(s) origin, and never https
   * downgraded to http: this node's token goes with the request.
   */
  private dialBackTarget(
    path: string,
    relayUrl?: string,
  ): { url: URL; lookup: { lookup?: ReturnType<typeof pinnedLookup> } } {
    const endpoint = this.current;
    if (!endpoint || this.stopped) {
      throw new QuantixError(ErrorCode.NODE_NOT_CONNECTED, 'Not connected to a control plane');
    }
    if (!relayUrl)
      return { url: new URL(`/api/v1${path}`, endpoint.url), lookup: { lookup: pinnedLookup(endpoint.address) } };
    const origin = new URL(relayUrl);
    const refused =
      !/^https?:$/.test(origin.protocol) ||
      origin.username ||
      origin.password ||
      (origin.pathname !== '/' && origin.pathname !== '')
        ? 'it is not an http(s) origin'
        : endpoint.url.protocol === 'https:' && origin.protocol !== 'https:'
          ? 'it would send this node’s token over plain http while the control plane is reached over https'
          : null;
    if (refused) {
      throw new QuantixError(ErrorCode.INVALID_INPUT, `Relay URL ${relayUrl} refused: ${refused}`, {
        details: { relayUrl },
      });
    }
    return { url: new URL(`/api/v1${path}`, origin), lookup: {} };
  }

  /** The next endpoint to dial: the rest of this round, or a new round with names resolved again. */
  private async nextEndpoint(): Promise<Endpoint | undefined> {
    if (this.untried.length === 0) {
      const { endpoints, unresolved } = await resolveEndpoints(this.urls);
      for (const { url, reason } of unresolved) {
        this.options.logger.warn({ url: url.href, reason }, 'a control-plane host name does not resolve');
      }
      // Every round in an order of its own: nodes spread over the replicas when they start, and the
      // nodes of a replica that dies spread over those left (in the given order, all would move
      // to the one listed after it).
      this.untried = dialOrder(endpoints);
    }
    return this.untried.shift();
  }

  private async dial(): Promise<void> {
    const { nodeId, logger } = this.options;
    const token = this.readToken();
    const next = await this.nextEndpoint();
    if (this.stopped) return;
    if (!next) {
      this.retryLater(false, 'no control-plane address resolves');
      return;
    }
    this.current = next;
    const endpoint = new URL('/api/v1/nodes/connect', next.url.href.replace(/^http/, 'ws'));
    const socket = new WebSocket(endpoint, {
      headers: { authorization: `Bearer ${token}`, 'x-quantix-node-id': nodeId },
      handshakeTimeout: 10_000,
      // The control plane is trusted more than a node, but not without bound either.
      maxPayload: 64 * 1024 * 1024,
      // Dial the address this round chose; the URL's host name stays the Host header and the
      // name the certificate is checked against.
      lookup: pinnedLookup(next.address),
    });
    this.socket = socket;
    let unauthorized = false;

    socket.on('open', () => {
      this.attempt = 0;
      this.stopWatchingTokenFile();
      this.version = PROTOCOL_VERSION;
      logger.info({ url: endpoint.href, address: next.address }, 'connected to the control plane');
      this.send(
        this.options.hello?.(next) ?? {
          v: PROTOCOL_VERSION,
          type: 'hello',
          nodeId,
          hostname: this.options.hostname,
          agentVersion: this.options.agentVersion,
          capabilities: this.options.capabilities ?? {},
          protocol: { min: PROTOCOL_VERSIONS.min, max: PROTOCOL_VERSIONS.max },
        },
      );
    });
    socket.on('unexpected-response', (_request, response) => {
      unauthorized = response.statusCode === 401;
      logger.error(
        { status: response.statusCode },
        unauthorized ? 'the control plane refused this node token' : 'unexpected answer to the connection',
      );
      socket.terminate();
    });
    socket.on('message', (data) => {
      let message: ControlMessage;
      try {
        message = parseControlMessage(data.toString());
      } catch (error) {
        logger.warn({ err: error }, 'invalid message from the control plane');
        return;
      }
      if (message.type === 'welcome') {
        // What this connection writes from now on; a control plane that does not say speaks 1.
        this.version = message.protocol ?? 1;
        this.connectedOnce?.();
      }
      Promise.resolve(this.options.handler.handle(message, (reply) => this.send(reply))).catch((error) => {
        logger.error({ err: error, type: message.type }, 'handling a control-plane message failed');
        if (message.type === 'request') {
          this.send({
            v: PROTOCOL_VERSION,
            type: 'response',
            requestId: message.requestId,
            error: {
              code: isQuantixError(error) ? error.code : ErrorCode.COMMAND_FAILED,
              message: truncateText((error as Error)?.message ?? String(error), PROTOCOL_LIMITS.reason),
            },
          });
        }
      });
    });
    let failure = '';
    socket.on('error', (error) => {
      failure = error.message;
      logger.debug({ err: error }, 'control-plane connection error');
    });
    socket.on('close', (code, reason) => {
      if (this.socket !== socket) return;
      if (this.stopped) return;
      const why = failure || `closed (${code}${reason.length ? ` ${reason}` : ''})`;
      // Removed, or given a new token: this token opens nothing now, so it redials as slowly as
      // after a refused token.
      const refused = code === NODE_CLOSE_CODES.removed || code === NODE_CLOSE_CODES.tokenReplaced;
      if (code === NODE_CLOSE_CODES.removed) {
        logger.error(
          'the control plane removed this node: register it again (`quantix nodes add`) and give it the new token',
        );
      } else if (code === NODE_CLOSE_CODES.tokenReplaced) {
        logger.error(
          this.options.tokenFile
            ? `this node was given a new token (\`quantix nodes token\`): put it in ${this.options.tokenFile}, which is read again when it changes`
            : 'this node was given a new token (`quantix nodes token`): give it to the node daemon and restart it',
        );
      }
      this.retryLater(unauthorized || refused, `${endpoint.host} (${next.address}): ${why}`);
    });
  }

  private retryLater(unauthorized: boolean, why: string): void {
    const delay = this.backoff(unauthorized);
    this.options.logger.warn({ reason: why, retryInMs: delay }, 'no control-plane connection; redialling');
    this.retryTimer = setTimeout(() => this.redial(), delay);
    if (unauthorized) this.watchTokenFile();
  }

  /** The token to dial with: tokenFile's content when it can be read and is not empty, else the last one. */
  private readToken(): string {
    const { tokenFile, logger } = this.options;
    if (!tokenFile) return this.token;
    try {
      const read = readFileSync(tokenFile, 'utf8').trim();
      if (read) this.token = read;
      else logger.warn({ tokenFile }, 'the token file is empty; dialling with the token read before');
    } catch (error) {
      logger.warn({ tokenFile, err: error }, 'the token file cannot be read; dialling with the token read before');
    }
    return this.token;
  }

  /**
   * While the token in hand is refused (the node removed, or given a new token), a new token
   * written to tokenFile is dialled with at once rather than after the longest backoff. The
   * directory is watched: `install` and editors replace the file rather than write into it.
   */
  private watchTokenFile(): void {
    const { tokenFile, logger } = this.options;
    if (!tokenFile || this.tokenWatcher || this.stopped) return;
    try {
      this.tokenWatcher = watch(dirname(tokenFile), (_event, name) => {
        if (name !== basename(tokenFile) || this.stopped) return;
        // A dial under way reads the file itself: a second one beside it would open two connections.
        if (this.socket?.readyState === WebSocket.CONNECTING || this.socket?.readyState === WebSocket.OPEN) return;
        const refused = this.token;
        if (this.readToken() === refused) return;
        logger.info({ tokenFile }, 'the token file changed: dialling with the new token');
        this.stopWatchingTokenFile();
        clearTimeout(this.retryTimer);
        this.redial();
      });
      this.tokenWatcher.on('error', () => this.stopWatchingTokenFile());
      this.tokenWatcher.unref();
    } catch (error) {
      // Not watchable (gone, no inotify left): the file is still read again at the next dial.
      logger.debug({ tokenFile, err: error }, 'the token file cannot be watched');
    }
  }

  private stopWatchingTokenFile(): void {
    this.tokenWatcher?.close();
    this.tokenWatcher = undefined;
  }

  private redial(): void {
    this.dial().catch((error: Error) => this.retryLater(false, error.message));
  }

  /** Full jitter: a random delay between 0 and min(max, initial × 2^attempt). */
  private backoff(unauthorized: boolean): number {
    const initial = this.options.initialBackoffMs ?? 500;
    const max = this.options.maxBackoffMs ?? 30_000;
    if (unauthorized) return max;
    const ceiling = Math.min(max, initial * 2 ** this.attempt++);
    return Math.max(50, Math.round(Math.random() * ceiling));
  }
}

/** A resolver that answers every name with one address: the endpoint this dial is for. */
function pinnedLookup(address: string) {
  const family = isIPv6(address) ? 6 : 4;
  return (
    _hostname: string,
    options: LookupOptions,
    callback: (error: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void,
  ): void => {
    // Node asks for every address (all: true) when it may race IPv4 against IPv6.
    if (options.all) callback(null, [{ address, family }]);
    else callback(null, address, family);
  };
}
