import { randomBytes } from 'node:crypto';
import type { Stream } from 'node:stream';
import type { QuantixError } from '@quantix/core';

interface WaitingSession<Channel> {
  nodeId: string;
  attach(channel: Channel): void;
}

/**
 * Where a node's byte channels meet the requests that asked for them. Bytes that are not
 * protocol messages (a VM console, an exported file) never go over a node's protocol connection:
 * the control plane asks the node for an operation naming a fresh session id, and the node dials
 * a connection of its own back (with its node token) under that id: a WebSocket for a console,
 * an HTTP upload for a file. `Channel` is what that connection gives. Sessions live in this
 * replica's memory, so the node dials this replica: the one it is connected to, or, when
 * another replica holds its link, this one's own URL (NodeHub.requestDialBack).
 */
export class RelaySessions<Channel extends Stream & { destroy(): unknown }> {
  private readonly sessions = new Map<string, WaitingSession<Channel>>();

  /**
   * Opens a session on node `nodeId`, runs `ask(sessionId)` (the node operation that makes the
   * node dial back) and resolves with the node's channel once it arrived. Rejects with what
   * `ask` rejects with, or with `timedOut()` after `timeoutMs`; a channel that arrives after
   * that is closed.
   */
  async open(
    nodeId: string,
    ask: (sessionId: string) => Promise<unknown>,
    options: { timeoutMs: number; timedOut: () => QuantixError },
  ): Promise<Channel> {
    const sessionId = randomBytes(16).toString('hex');
    let timer: NodeJS.Timeout | undefined;
    const attached = new Promise<Channel>((resolve, reject) => {
      this.sessions.set(sessionId, { nodeId, attach: resolve });
      timer = setTimeout(() => reject(options.timedOut()), options.timeoutMs);
    });
    // Settled later than it may fail (timer while the request is out): not an unhandled rejection.
    attached.catch(() => undefined);
    try {
      await ask(sessionId);
      return await attached;
    } catch (error) {
      // A channel that arrived after all is not left open.
      attached.then((channel) => channel.destroy()).catch(() => undefined);
      throw error;
    } finally {
      clearTimeout(timer);
      this.sessions.delete(sessionId);
    }
  }

  /**
   * Takes a node's channel for a session it was asked to open. False (the caller closes the
   * socket) when no session of this node waits under that id.
   */
  attach(nodeId: string, sessionId: string, channel: Channel): boolean {
    const session = this.sessions.get(sessionId);
    if (!session || session.nodeId !== nodeId) return false;
    this.sessions.delete(sessionId);
    session.attach(channel);
    return true;
  }
}
