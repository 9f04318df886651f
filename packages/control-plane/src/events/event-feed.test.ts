import { describe, expect, it } from 'vitest';
import { EventFeed } from './event-feed.js';
import type { LiveEvent } from './live-events.js';

const progress = (id: string, bytesDone: number): LiveEvent => ({
  type: 'image.progress',
  kind: 'image',
  id,
  progress: { bytesDone, bytesTotal: null, percent: null },
  bytesPerSecond: null,
  etaSeconds: null,
});
const vm = (id: string): LiveEvent => ({ type: 'vm.state', kind: 'vm', id, state: 'running' });

/** A consumer whose connection takes events while `open` and backs up otherwise. */
function consumer() {
  const received: LiveEvent[] = [];
  const state = { open: true, overflowed: 0 };
  const feed = new EventFeed({
    send: (event) => {
      received.push(event);
      return state.open;
    },
    maxQueued: 5,
    onOverflow: () => {
      state.overflowed++;
    },
  });
  return { feed, received, state };
}

describe('EventFeed', () => {
  it('sends straight through while the consumer keeps up', () => {
    const { feed, received } = consumer();
    for (let i = 0; i < 100; i++) feed.push(vm(`vm-${i}`));
    expect(received).toHaveLength(100);
    expect(feed.queued).toBe(0);
  });

  it('keeps the latest progress per image while backed up, other events in order, and sends them on drain', () => {
    const { feed, received, state } = consumer();
    state.open = false;
    feed.push(vm('first')); // taken by the connection, which then backs up
    feed.push(progress('a', 1));
    feed.push(vm('b'));
    feed.push(progress('a', 2));
    feed.push(progress('c', 1));
    feed.push(progress('a', 3));
    expect(feed.queued).toBe(3);
    state.open = true;
    feed.drained();
    expect(received.map((e) => (e.type === 'image.progress' ? `${e.id}:${e.progress.bytesDone}` : e.id))).toEqual([
      'first',
      'b',
      'c:1',
      'a:3',
    ]);
    expect(feed.queued).toBe(0);
  });

  it('stops on a drain when the connection backs up again, and goes on at the next', () => {
    const { feed, received, state } = consumer();
    state.open = false;
    feed.push(vm('0'));
    for (const id of ['1', '2', '3']) feed.push(vm(id));
    feed.drained(); // still backed up: one more is taken, the rest wait
    expect(received.map((e) => e.id)).toEqual(['0', '1']);
    state.open = true;
    feed.drained();
    expect(received.map((e) => e.id)).toEqual(['0', '1', '2', '3']);
  });

  it('gives up on a consumer with more than maxQueued events waiting, once, and drops what waits', () => {
    const { feed, received, state } = consumer();
    state.open = false;
    feed.push(vm('0'));
    for (let i = 1; i <= 20; i++) feed.push(vm(String(i)));
    expect(state.overflowed).toBe(1);
    expect(feed.queued).toBe(0);
    feed.push(vm('late'));
    feed.drained();
    expect(received.map((e) => e.id)).toEqual(['0']);
  });
});
