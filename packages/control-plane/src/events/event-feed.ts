import type { LiveEvent } from './live-events.js';

export interface EventFeedOptions {
  /** Writes one event to the consumer; false when its connection is backed up (wait for drained()). */
  send(event: LiveEvent): boolean;
  /** More than this many events waiting for a backed-up consumer ends its feed (default 1000). */
  maxQueued?: number;
  /** The consumer fell too far behind: end its connection (it reconnects and fetches afresh). */
  onOverflow(): void;
}

/**
 * One consumer's share of the live events, never more than it can take: while its connection
 * is backed up, events wait here — a newer progress event of an image replaces the one waiting
 * (a view needs the latest figure, not each), other events keep their order — and a consumer
 * with more than maxQueued waiting is cut off rather than let memory grow.
 */
export class EventFeed {
  /** Insertion-ordered; a progress event waits under its image's key, every other one under its own. */
  private readonly waiting = new Map<string, LiveEvent>();
  private blocked = false;
  private sequence = 0;
  private overflowed = false;

  constructor(private readonly options: EventFeedOptions) {}

  /** Events waiting for the consumer to catch up. */
  get queued(): number {
    return this.waiting.size;
  }

  push(event: LiveEvent): void {
    if (this.overflowed) return;
    if (!this.blocked) {
      this.blocked = !this.options.send(event);
      return;
    }
    const key = event.type === 'image.progress' ? `progress:${event.id}` : `event:${this.sequence++}`;
    // Moved to the end: the newest figure goes after whatever came before it.
    this.waiting.delete(key);
    this.waiting.set(key, event);
    if (this.waiting.size > (this.options.maxQueued ?? 1000)) {
      this.overflowed = true;
      this.waiting.clear();
      this.options.onOverflow();
    }
  }

  /** The consumer's connection took what it was given: send what waits, until it backs up again. */
  drained(): void {
    this.blocked = false;
    for (const [key, event] of this.waiting) {
      this.waiting.delete(key);
      if (!this.options.send(event)) {
        this.blocked = true;
        return;
      }
    }
  }
}
