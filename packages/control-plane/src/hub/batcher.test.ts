import { describe, expect, it } from 'vitest';
import { Batcher } from './batcher.js';

describe('Batcher', () => {
  it('stores the items of one turn together, and those arriving during a store in the next batch', async () => {
    const batches: number[][] = [];
    let releaseFirst: () => void = () => {};
    const firstStored = new Promise<void>((resolve) => {
      releaseFirst = resolve;
    });
    const batcher = new Batcher<number, number>(async (items) => {
      batches.push([...items]);
      if (batches.length === 1) await firstStored;
      return items.map((n) => n * 10);
    });
    const first = [1, 2, 3].map((n) => batcher.add(n));
    await new Promise((resolve) => setImmediate(resolve)); // the first batch is being stored
    const second = [4, 5].map((n) => batcher.add(n));
    releaseFirst();
    expect(await Promise.all([...first, ...second])).toEqual([10, 20, 30, 40, 50]);
    expect(batches).toEqual([
      [1, 2, 3],
      [4, 5],
    ]);
  });

  it('fails an item whose result is an error, and no other', async () => {
    const batcher = new Batcher<string, string>(async (items) =>
      items.map((item) => (item === 'bad' ? new Error(`refused ${item}`) : item.toUpperCase())),
    );
    const [good, bad] = [batcher.add('good'), batcher.add('bad')];
    await expect(good).resolves.toBe('GOOD');
    await expect(bad).rejects.toThrow('refused bad');
  });

  it('stores each item alone when its batch fails, so one bad item fails nobody else', async () => {
    const calls: string[][] = [];
    const batcher = new Batcher<string, string>(async (items) => {
      calls.push([...items]);
      if (items.includes('poison')) throw new Error('the statement failed');
      return [...items];
    });
    const results = await Promise.allSettled(['a', 'poison', 'b'].map((item) => batcher.add(item)));
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    expect(calls).toEqual([['a', 'poison', 'b'], ['a'], ['poison'], ['b']]);
  });

  it('splits a burst larger than its batch size', async () => {
    const sizes: number[] = [];
    const batcher = new Batcher<number, number>(async (items) => {
      sizes.push(items.length);
      return [...items];
    }, 2);
    await Promise.all([1, 2, 3, 4, 5].map((n) => batcher.add(n)));
    expect(sizes).toEqual([2, 2, 1]);
  });

  it('groups a trickle: items that each come after the last store finished share a batch within spacingMs', async () => {
    const sizes: number[] = [];
    const batcher = new Batcher<number, number>(
      async (items) => {
        sizes.push(items.length);
        return [...items];
      },
      1_000,
      50,
    );
    // 20 items, one every 5 ms: each store is done long before the next item comes.
    const results: Promise<number>[] = [];
    for (let n = 0; n < 20; n++) {
      results.push(batcher.add(n));
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    expect(await Promise.all(results)).toEqual(Array.from({ length: 20 }, (_, n) => n));
    // Without the spacing it is 20 batches of one. On a loaded machine the timers stretch, so
    // the bound is loose; batches can only start 50 ms apart.
    expect(sizes.length).toBeLessThanOrEqual(8);
    expect(sizes.reduce((a, b) => a + b, 0)).toBe(20);
  });

  it('stores a lone item at once when no batch started lately', async () => {
    const batcher = new Batcher<string, string>(async (items) => [...items], 1_000, 10_000);
    const start = performance.now();
    await batcher.add('first');
    expect(performance.now() - start).toBeLessThan(1_000);
  });

  it('is idle once every item added, a batch started during a store included, has been stored', async () => {
    const stored: number[] = [];
    const batcher = new Batcher<number, void>(async (items) => {
      await new Promise((resolve) => setTimeout(resolve, 20));
      stored.push(...items);
      return items.map(() => undefined);
    });
    await batcher.idle(); // nothing waits: at once
    void batcher.add(1).catch(() => undefined);
    setTimeout(() => void batcher.add(2).catch(() => undefined), 5); // during the first store
    await new Promise((resolve) => setTimeout(resolve, 10));
    await batcher.idle();
    expect(stored).toEqual([1, 2]);
  });
});
