/**
 * Where every bench puts its numbers, so people can look at them: `bench/results.json` (one
 * entry per bench, replaced on each full run) and one SVG chart per bench under
 * `bench/results/`, ours beside its peer. Quick mode (CI) writes nothing unless
 * QUANTIX_BENCH_RESULTS names a directory, so a test run never overwrites a full run's figures.
 *
 *   const results = benchResults('download');
 *   results.add({ name: '2 GiB download + verify', unit: 'MiB/s', better: 'higher',
 *     ours: { label: 'Quantix', value: 330 }, peer: { label: 'curl | tee | sha256sum', value: 310 },
 *     target: { ratio: 1.0 } });
 *   console.log(results.line(...)) / await results.save();
 */
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

export interface Side {
  label: string;
  value: number;
}

export interface Measurement {
  name: string;
  /** Unit of both values: 'ms', 'ms/op', 'req/s', 'MiB/s', 'MB'… */
  unit: string;
  /** Whether a lower value (times) or a higher one (throughput) is better. */
  better: 'lower' | 'higher';
  ours: Side;
  peer: Side;
  /**
   * The ratio the issue asks for, expressed as "ours relative to peer, in the direction where
   * bigger is worse" for `lower` (ours/peer ≤ ratio) and "bigger is better" for `higher`
   * (ours/peer ≥ ratio).
   */
  target?: { ratio: number };
  /** Extra facts worth keeping next to the figures (sizes, counts, p99…). */
  details?: Record<string, string | number>;
}

export interface RecordedMeasurement extends Measurement {
  ratio: number;
  ok: boolean | null;
}

export interface BenchEntry {
  bench: string;
  quick: boolean;
  at: string;
  host: { cpus: number; node: string };
  measurements: RecordedMeasurement[];
}

const quick = process.env.QUANTIX_BENCH_QUICK === '1';

/**
 * A measurement held to a fixed bound instead of a peer (an issue's "< 2 ms", "< 150 MB"): the
 * bound stands where the peer would, with target ratio 1, so the table shows the absolute figure
 * and its verdict like any other line.
 *
 *   results.add(againstBound({ name: 'search, vs the 2 ms target', unit: 'ms/op', better: 'lower',
 *     ours: { label: 'repository', value: 1.4 }, bound: { label: 'issue target', value: 2 } }));
 */
export function againstBound(m: Omit<Measurement, 'peer' | 'target'> & { bound: Side }): Measurement {
  const { bound, ...measurement } = m;
  return { ...measurement, peer: bound, target: { ratio: 1 } };
}

/** ours/peer, and whether it meets its target. */
export function judge(m: Measurement): RecordedMeasurement {
  const ratio = m.peer.value === 0 ? Number.POSITIVE_INFINITY : m.ours.value / m.peer.value;
  const ok = m.target ? (m.better === 'lower' ? ratio <= m.target.ratio : ratio >= m.target.ratio) : null;
  return { ...m, ratio, ok };
}

/** A ratio with the digits that matter: 0.012x, 0.85x, 12.30x. */
export function formatRatio(ratio: number): string {
  return `${ratio.toFixed(ratio < 0.1 ? 3 : 2)}x`;
}

/** One printed line: both sides, the ratio and the target with its verdict. */
export function formatLine(m: RecordedMeasurement): string {
  const fmt = (v: number) => (v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(3));
  const target = m.target
    ? ` (target ${m.better === 'lower' ? '≤' : '≥'} ${m.target.ratio}x, ${m.ok ? 'ok' : 'MISSED'})`
    : '';
  return (
    `${m.name.padEnd(34)} ${m.ours.label} ${fmt(m.ours.value)} ${m.unit}   ` +
    `${m.peer.label} ${fmt(m.peer.value)} ${m.unit}   ratio ${formatRatio(m.ratio)}${target}`
  );
}

export interface BenchResults {
  /** Records a measurement and returns its printed line. */
  add(m: Measurement): string;
  readonly measurements: readonly RecordedMeasurement[];
  /** Writes results.json and the chart (full runs, or quick runs with QUANTIX_BENCH_RESULTS). */
  save(): Promise<void>;
}

export function benchResults(bench: string): BenchResults {
  const measurements: RecordedMeasurement[] = [];
  return {
    measurements,
    add(m) {
      const recorded = judge(m);
      measurements.push(recorded);
      return formatLine(recorded);
    },
    async save() {
      const dir = process.env.QUANTIX_BENCH_RESULTS ?? (quick ? undefined : join(import.meta.dirname, '..'));
      if (!dir || measurements.length === 0) return;
      const { cpus } = await import('node:os');
      const entry: BenchEntry = {
        bench,
        quick,
        at: new Date().toISOString(),
        host: { cpus: cpus().length, node: process.version },
        measurements,
      };
      // The charts' folder, made first, makes DIR too: QUANTIX_BENCH_RESULTS may name a new one.
      await mkdir(join(dir, 'results'), { recursive: true });
      await mergeResults(join(dir, 'results.json'), entry);
      await writeAtomically(join(dir, 'results', `${bench}.svg`), chartOf(entry));
    },
  };
}

async function writeAtomically(path: string, text: string): Promise<void> {
  const temp = `${path}.${process.pid}.tmp`;
  await writeFile(temp, text);
  await rename(temp, path);
}

/** results.json keeps one entry per bench: a new run of a bench replaces its old entry. */
async function mergeResults(path: string, entry: BenchEntry): Promise<void> {
  let all: BenchEntry[] = [];
  try {
    all = JSON.parse(await readFile(path, 'utf8')) as BenchEntry[];
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  const others = all.filter((e) => e.bench !== entry.bench);
  const merged = [...others, entry].sort((a, b) => a.bench.localeCompare(b.bench));
  await writeAtomically(path, `${JSON.stringify(merged, null, 2)}\n`);
}

const escapeXml = (s: string) => s.replace(/[<>&"']/g, (c) => `&#${c.charCodeAt(0)};`);

/**
 * A horizontal bar chart: per measurement, our bar and the peer's bar, scaled to the larger of
 * the two (units differ between measurements, so each pair has its own scale).
 */
export function chartOf(entry: BenchEntry): string {
  const width = 760;
  const labelWidth = 250;
  const barMax = width - labelWidth - 140;
  const rowHeight = 58;
  const top = 40;
  const height = top + entry.measurements.length * rowHeight + 20;
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="12" role="img">`,
    `<title>bench/${escapeXml(entry.bench)}: Quantix beside its peer</title>`,
    `<rect width="100%" height="100%" fill="#fff"/>`,
    `<text x="10" y="22" font-size="15" font-weight="bold">bench/${escapeXml(entry.bench)}</text>`,
    `<text x="${width - 10}" y="22" text-anchor="end" fill="#555">${escapeXml(entry.at.slice(0, 16).replace('T', ' '))} UTC, ${entry.host.cpus} cores${entry.quick ? ', quick mode' : ''}</text>`,
  ];
  entry.measurements.forEach((m, row) => {
    const y = top + row * rowHeight;
    const scale = Math.max(m.ours.value, m.peer.value) || 1;
    const verdict = m.ok === null ? '' : m.ok ? ' ✓' : ' ✗';
    parts.push(
      `<text x="10" y="${y + 16}" font-weight="bold">${escapeXml(m.name)}</text>`,
      `<text x="10" y="${y + 32}" fill="#555">${formatRatio(m.ratio)}${m.target ? ` (target ${m.better === 'lower' ? '≤' : '≥'} ${m.target.ratio}x)${verdict}` : ''}</text>`,
      `<text x="10" y="${y + 46}" fill="#888">${m.better} is better</text>`,
    );
    for (const [i, side, colour] of [
      [0, m.ours, '#2563eb'],
      [1, m.peer, '#9ca3af'],
    ] as const) {
      const barY = y + 4 + i * 22;
      const w = Math.max(1, (side.value / scale) * barMax);
      parts.push(
        `<rect x="${labelWidth}" y="${barY}" width="${w.toFixed(1)}" height="18" fill="${colour}"/>`,
        `<text x="${labelWidth + w + 6}" y="${barY + 13}">${escapeXml(side.label)}: ${side.value.toFixed(side.value >= 100 ? 0 : 2)} ${escapeXml(m.unit)}</text>`,
      );
    }
  });
  parts.push('</svg>');
  return `${parts.join('\n')}\n`;
}
