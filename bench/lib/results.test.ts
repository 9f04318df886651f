import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { resultsTable } from './readme-table.js';
import { againstBound, type BenchEntry, benchResults, judge } from './results.js';

const measurement = {
  name: 'download 2 GiB',
  unit: 'MiB/s',
  better: 'higher' as const,
  ours: { label: 'Quantix', value: 300 },
  peer: { label: 'curl | tee | sha256sum', value: 250 },
  target: { ratio: 1.0 },
};

describe('bench results', () => {
  let dir: string | undefined;
  afterEach(async () => {
    delete process.env.QUANTIX_BENCH_RESULTS;
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('judges a ratio in the direction of its unit', () => {
    expect(judge(measurement)).toMatchObject({ ratio: 1.2, ok: true });
    expect(judge({ ...measurement, better: 'lower' })).toMatchObject({ ratio: 1.2, ok: false });
    expect(judge({ ...measurement, target: undefined }).ok).toBeNull();
  });

  it('prints both sides, the ratio and the target with its verdict', () => {
    const line = benchResults('download').add({ ...measurement, ours: { label: 'Quantix', value: 200 } });
    expect(line).toContain('Quantix 200 MiB/s');
    expect(line).toContain('curl | tee | sha256sum 250 MiB/s');
    expect(line).toContain('ratio 0.80x (target ≥ 1x, MISSED)');
  });

  it('holds a figure to a fixed bound, which the line shows where a peer would be', () => {
    const bound = { label: 'issue target', value: 2 };
    const line = (value: number) =>
      benchResults('repository').add(
        againstBound({
          name: 'search, vs the 2 ms target',
          unit: 'ms/op',
          better: 'lower',
          ours: { label: 'repository', value },
          bound,
        }),
      );
    expect(line(1.5)).toContain('issue target 2.000 ms/op   ratio 0.75x (target ≤ 1x, ok)');
    expect(line(2.5)).toContain('ratio 1.25x (target ≤ 1x, MISSED)');
  });

  it('writes into a QUANTIX_BENCH_RESULTS folder that does not exist yet', async () => {
    dir = await mkdtemp(join(tmpdir(), 'quantix-bench-results-'));
    process.env.QUANTIX_BENCH_RESULTS = join(dir, 'new', 'folder');
    const results = benchResults('download');
    results.add(measurement);
    await results.save();
    const entries = JSON.parse(await readFile(join(dir, 'new', 'folder', 'results.json'), 'utf8')) as BenchEntry[];
    expect(entries.map((e) => e.bench)).toEqual(['download']);
  });

  it('keeps one entry per bench in results.json, draws a chart, and the README table lists them', async () => {
    dir = await mkdtemp(join(tmpdir(), 'quantix-bench-results-'));
    process.env.QUANTIX_BENCH_RESULTS = dir;
    const first = benchResults('download');
    first.add(measurement);
    await first.save();
    const other = benchResults('api');
    other.add({ ...measurement, name: 'GET /images', unit: 'req/s', target: { ratio: 0.7 } });
    await other.save();
    const again = benchResults('download');
    again.add({ ...measurement, ours: { label: 'Quantix', value: 500 } });
    await again.save();

    const entries = JSON.parse(await readFile(join(dir, 'results.json'), 'utf8')) as BenchEntry[];
    expect(entries.map((e) => e.bench)).toEqual(['api', 'download']);
    expect(entries[1]?.measurements[0]?.ours.value).toBe(500);

    const svg = await readFile(join(dir, 'results', 'download.svg'), 'utf8');
    expect(svg).toMatch(/^<svg xmlns="http:\/\/www.w3.org\/2000\/svg"/);
    expect(svg).toContain('curl | tee | sha256sum: 250 MiB/s');
    // A chart has a title (screen readers; the lint requires it).
    expect(svg).toContain('<title>bench/download: Quantix beside its peer</title>');
    expect(svg).toContain('2.00x (target ≥ 1x) ✓');

    const table = resultsTable(entries);
    expect(table).toContain('| [api](results/api.svg) | GET /images | 300 req/s |');
    expect(table).toContain('| 2.00x | ≥ 1x | ok |');
    // A pipe in a peer's name stays inside its cell.
    expect(table).toContain('| curl \\| tee \\| sha256sum: 250 MiB/s | 2.00x |');
  });
});
