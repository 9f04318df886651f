import { describe, expect, it } from 'vitest';
import { ConcurrencyLimiter } from './limiter.js';

describe('ConcurrencyLimiter', () => {
  it('lets `limit` holders in at once, in order, and drops a waiter that aborts', async () => {
    const limiter = new ConcurrencyLimiter(2);
    const a = await limiter.acquire();
    const b = await limiter.acquire();
    const order: string[] = [];
    const leaving = new AbortController();
    const c = limiter.acquire().then((release) => {
      order.push('c');
      return release;
    });
    const d = limiter.acquire(leaving.signal).then(
      () => order.push('d'),
      () => order.push('d left'),
    );
    const e = limiter.acquire().then((release) => {
      order.push('e');
      return release;
    });
    expect([limiter.running, limiter.queued]).toEqual([2, 3]);
    leaving.abort();
    await d;
    a();
    a(); // a second release of the same slot is ignored
    (await c)();
    b();
    (await e)();
    expect(order).toEqual(['d left', 'c', 'e']);
    expect([limiter.running, limiter.queued]).toEqual([0, 0]);
  });
});
