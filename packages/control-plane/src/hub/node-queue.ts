import type { NodeMessage } from '@quantix/core';

export interface NodeQueueLimits {
  /** Stop reading from the node's socket at this many queued messages (TCP backpressure). */
  pauseAt: number;
  /** Read again once the queue is down to this many. */
  resumeAt: number;
  /** Refuse more than this many queued messages: the node ignored backpressure. */
  maxMessages: number;
  /** …or more than this many queued bytes. */
  maxBytes: number;
}

/**
 * Reading pauses at 64 queued messages; the hard limits are far above what can still arrive
 * once reading is paused (what ws had already read: about one TCP read, or one frame of at
 * most 1 MiB), so a node that follows TCP never meets them.
 */
export const DEFAULT_NODE_QUEUE_LIMITS: NodeQueueLimits = {
  pauseAt: 64,
  resumeAt: 16,
  maxMessages: 4096,
  maxBytes: 16 * 1024 * 1024,
};

interface Item {
  message: NodeMessage;
  bytes: number;
  key: string | null;
}

/**
 * One node's messages, in the order they came, bounded. A message that only supersedes one
 * still waiting is merged into it instead of queued behind it: pool states per pool (the
 * newest report of each pool wins), a whole scan of the same pool and content, the progress
 * of the same image. So a node that reports faster than the database takes it costs one
 * write per pool, not one per message.
 */
export class NodeMessageQueue {
  private readonly items: Item[] = [];
  private readonly waiting = new Map<string, Item>();
  private queuedBytes = 0;

  constructor(readonly limits: NodeQueueLimits = DEFAULT_NODE_QUEUE_LIMITS) {}

  get length(): number {
    return this.items.length;
  }

  get bytes(): number {
    return this.queuedBytes;
  }

  /** 'full' means nothing was queued: the queue is at a hard limit. */
  push(message: NodeMessage, bytes: number): 'queued' | 'merged' | 'full' {
    const key = coalesceKey(message);
    const waiting = key === null ? undefined : this.waiting.get(key);
    if (waiting) {
      waiting.message = merge(waiting.message, message);
      this.queuedBytes += Math.max(0, bytes - waiting.bytes);
      waiting.bytes = Math.max(waiting.bytes, bytes);
      return 'merged';
    }
    if (this.items.length >= this.limits.maxMessages || this.queuedBytes + bytes > this.limits.maxBytes) return 'full';
    const item: Item = { message, bytes, key };
    this.items.push(item);
    this.queuedBytes += bytes;
    if (key !== null) this.waiting.set(key, item);
    return 'queued';
  }

  shift(): NodeMessage | undefined {
    const item = this.items.shift();
    if (!item) return undefined;
    if (item.key !== null && this.waiting.get(item.key) === item) this.waiting.delete(item.key);
    this.queuedBytes -= item.bytes;
    return item.message;
  }

  clear(): void {
    this.items.length = 0;
    this.waiting.clear();
    this.queuedBytes = 0;
  }
}

function coalesceKey(message: NodeMessage): string | null {
  switch (message.type) {
    case 'pools.state':
      return 'pools.state';
    case 'scan.result':
      // A scan in parts is kept whole: each part is part of the set.
      return message.scanId === undefined ? `scan\u0000${message.poolId}\u0000${message.content}` : null;
    case 'image.progress':
      return `progress\u0000${message.imageId}`;
    default:
      return null;
  }
}

function merge(older: NodeMessage, newer: NodeMessage): NodeMessage {
  if (older.type === 'pools.state' && newer.type === 'pools.state') {
    const pools = new Map(older.pools.map((p) => [p.poolId, p]));
    for (const report of newer.pools) pools.set(report.poolId, report);
    return { ...newer, generation: Math.max(older.generation, newer.generation), pools: [...pools.values()] };
  }
  if (older.type === 'image.progress' && newer.type === 'image.progress') {
    // "Every byte is in, verifying" is a phase change: it is never merged away.
    const phase = older.phase === 'verifying' ? 'verifying' : newer.phase;
    return { ...newer, ...(phase ? { phase } : {}) };
  }
  return newer;
}
