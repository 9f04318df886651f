import type { FetchProgress } from '@quantix/core';
import { describe, expect, it } from 'vitest';
import { ProgressMeter } from './progress.js';

describe('ProgressMeter', () => {
  it('throttles reports to the interval or a whole percent, with rate and ETA', () => {
    let now = 0;
    const reports: FetchProgress[] = [];
    // A deterministic clock: the meter's arithmetic is what is under test, not time itself.
    const meter = new ProgressMeter((p) => reports.push(p), { intervalMs: 250, now: () => now });
    meter.reset(0, 10_000_000);
    // 10 MB at 1 MB/s in 1 kB steps: 10,000 adds over 10 s.
    for (let i = 0; i < 10_000; i++) {
      now += 1;
      meter.add(1000);
    }
    // One report per whole percent (100), never more often than asked otherwise.
    expect(reports.length).toBeGreaterThanOrEqual(100);
    expect(reports.length).toBeLessThanOrEqual(141);
    const middle = reports[50] as FetchProgress;
    expect(middle.bytesPerSecond).toBeCloseTo(1_000_000, -3);
    expect(middle.etaSeconds).toBeCloseTo((10_000_000 - middle.bytesDone) / 1_000_000, 0);
    expect(reports.at(-1)).toMatchObject({ bytesDone: 10_000_000, percent: 100, etaSeconds: 0 });
  });

  it('reports by time when the total is unknown, and resumes counting from bytes already there', () => {
    let now = 0;
    const reports: FetchProgress[] = [];
    const meter = new ProgressMeter((p) => reports.push(p), { intervalMs: 250, now: () => now });
    meter.reset(5_000, null);
    for (let i = 0; i < 1000; i++) {
      now += 1;
      meter.add(100);
    }
    expect(reports.length).toBe(4); // at 1 ms (first), 251, 501, 751
    expect(reports.at(-1)).toMatchObject({ bytesTotal: null, percent: null, etaSeconds: null });
    expect(meter.current().bytesDone).toBe(105_000);
  });
});
