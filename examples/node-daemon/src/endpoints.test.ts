import { describe, expect, it } from 'vitest';
import { dialOrder } from './endpoints.js';

describe('dialOrder', () => {
  it('gives every endpoint once, in a new array, leaving the list as it was', () => {
    const endpoints = ['a', 'b', 'c', 'd'];
    const order = dialOrder(endpoints);
    expect([...order].sort()).toEqual(endpoints);
    expect(endpoints).toEqual(['a', 'b', 'c', 'd']);
    expect(dialOrder([])).toEqual([]);
  });

  it('starts each round at any endpoint, and follows it with any other', () => {
    const firsts = new Map<string, number>();
    const afterA = new Map<string, number>();
    for (let round = 0; round < 600; round++) {
      const order = dialOrder(['a', 'b', 'c']);
      firsts.set(order[0] as string, (firsts.get(order[0] as string) ?? 0) + 1);
      if (order[0] === 'a') afterA.set(order[1] as string, (afterA.get(order[1] as string) ?? 0) + 1);
    }
    // Expected 200 each, and about 100 each after `a`: a rotation of the list would give b only.
    for (const endpoint of ['a', 'b', 'c']) expect(firsts.get(endpoint)).toBeGreaterThan(120);
    for (const endpoint of ['b', 'c']) expect(afterA.get(endpoint)).toBeGreaterThan(50);
  });
});
