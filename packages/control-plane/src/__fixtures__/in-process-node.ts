/**
 * A real NodeAgent joined to a real NodeHub in one process. The only stand-in is the transport:
 * the two ends pass each other the same JSON text a WebSocket would carry, in order, each
 * message handed over on a later turn of the event loop as a socket would. Everything else —
 * the hello, the pool push, the node's reconcile and scan, the hub's queue and the ingest into
 * the database — is the code that runs in the example app.
 */
import type { NodeMessage } from '@quantix/core';
import type { NodeAgent } from '@quantix/node-runtime';
import type { NodeChannel } from '../hub/channel.js';
import type { NodeHub } from '../hub/node-hub.js';

export interface InProcessLink {
  /** What the agent sends goes here: give it as the agent's `send` option. */
  send(message: NodeMessage): void;
  /** Joins the agent to the hub and says hello. */
  connect(agent: NodeAgent, hub: NodeHub, nodeId: string): void;
  close(): void;
}

export function inProcessLink(): InProcessLink {
  let toHub: ((text: string) => void) | undefined;
  let onClose: (() => void) | undefined;
  let open = true;
  let agent: NodeAgent | undefined;
  const channel: NodeChannel = {
    send(text) {
      if (open) setImmediate(() => void agent?.handle(text));
    },
    close() {
      if (!open) return;
      open = false;
      onClose?.();
    },
    pause() {},
    resume() {},
    bufferedBytes: 0,
    get open() {
      return open;
    },
    onMessage(handler) {
      toHub = handler;
    },
    onClose(handler) {
      onClose = handler;
    },
  };
  return {
    send(message) {
      const text = JSON.stringify(message);
      if (open) setImmediate(() => toHub?.(text));
    },
    connect(node, hub, nodeId) {
      agent = node;
      hub.attach(nodeId, channel);
      const hello = node.hello({ hostname: nodeId, agentVersion: 'test' });
      setImmediate(() => toHub?.(JSON.stringify(hello)));
    },
    close() {
      channel.close(1000, 'test over');
    },
  };
}
