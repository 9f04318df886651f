import type { NodeMessage } from '@quantix/core';
import { describe, expect, it } from 'vitest';
import { NodeMessageQueue } from './node-queue.js';

const state = (generation: number, ...pools: [string, 'active' | 'unavailable'][]): NodeMessage => ({
  v: 1,
  type: 'pools.state',
  generation,
  pools: pools.map(([poolId, status]) => ({
    poolId,
    status,
    mountPath: null,
    capacityBytes: null,
    availableBytes: null,
    reason: null,
  })),
});
const progress = (imageId: string, bytesDone: number, phase?: 'downloading' | 'verifying'): NodeMessage => ({
  v: 1,
  type: 'image.progress',
  imageId,
  ...(phase ? { phase } : {}),
  bytesDone,
  bytesTotal: 100,
  bytesPerSecond: null,
  etaSeconds: null,
});
const answer = (requestId: string): NodeMessage => ({ v: 1, type: 'response', requestId, result: null });

describe('a node’s message queue', () => {
  it('keeps order, and merges a report into the one still waiting: newest state per pool, highest generation', () => {
    const queue = new NodeMessageQueue();
    expect(queue.push(state(4, ['a', 'active'], ['b', 'active']), 100)).toBe('queued');
    expect(queue.push(answer('r1'), 10)).toBe('queued');
    expect(queue.push(state(5, ['b', 'unavailable']), 100)).toBe('merged');
    expect(queue.length).toBe(2);
    expect(queue.shift()).toMatchObject({
      type: 'pools.state',
      generation: 5,
      pools: [
        { poolId: 'a', status: 'active' },
        { poolId: 'b', status: 'unavailable' },
      ],
    });
    // Taken out: the next report waits on its own, behind the answer.
    expect(queue.push(state(6, ['a', 'unavailable']), 100)).toBe('queued');
    expect(queue.shift()).toMatchObject({ type: 'response', requestId: 'r1' });
    expect(queue.shift()).toMatchObject({ generation: 6 });
    expect(queue.shift()).toBeUndefined();
    expect(queue.bytes).toBe(0);
  });

  it('never merges away the moment a download starts verifying', () => {
    const queue = new NodeMessageQueue();
    queue.push(progress('i', 10, 'downloading'), 50);
    queue.push(progress('i', 100, 'verifying'), 50);
    queue.push(progress('i', 100), 50);
    queue.push(progress('j', 5), 50);
    expect(queue.shift()).toMatchObject({ imageId: 'i', bytesDone: 100, phase: 'verifying' });
    expect(queue.shift()).toMatchObject({ imageId: 'j' });
  });

  it('keeps the parts of a scan apart, and refuses what passes its hard limits', () => {
    const queue = new NodeMessageQueue({ pauseAt: 2, resumeAt: 1, maxMessages: 3, maxBytes: 1000 });
    const part = (n: number): NodeMessage => ({
      v: 1,
      type: 'scan.result',
      poolId: 'p',
      content: 'iso',
      files: [],
      scanId: 's',
      part: n,
    });
    expect(queue.push(part(0), 10)).toBe('queued');
    expect(queue.push(part(1), 10)).toBe('queued');
    expect(queue.push(answer('r'), 10)).toBe('queued');
    expect(queue.push(answer('too many'), 10)).toBe('full');
    queue.shift();
    expect(queue.push(answer('too big'), 995)).toBe('full');
    expect(queue.push(answer('fits'), 10)).toBe('queued');
  });
});
