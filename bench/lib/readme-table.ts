/**
 * Rewrites the table of latest figures in bench/README.md (between its two marker comments)
 * from bench/results.json. `npm run bench` runs it after the benches; it can be run alone:
 *   node --import tsx bench/lib/readme-table.ts
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { type BenchEntry, formatRatio } from './results.js';

const START = '<!-- results:start -->';
const END = '<!-- results:end -->';

/** A table cell's text: a pipe (a peer such as `curl | tee | sha256sum`) would split the cell. */
const cell = (text: string) => text.replaceAll('|', '\\|');

const fmt = (v: number) => (v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2));

export function resultsTable(entries: BenchEntry[]): string {
  const lines = [
    '| bench | measurement | Quantix | peer | ratio (ours/peer) | target | |',
    '|---|---|---|---|---|---|---|',
  ];
  for (const entry of entries) {
    for (const m of entry.measurements) {
      const target = m.target ? `${m.better === 'lower' ? '≤' : '≥'} ${m.target.ratio}x` : '—';
      const verdict = m.ok === null ? '' : m.ok ? 'ok' : '**missed**';
      lines.push(
        `| [${entry.bench}](results/${entry.bench}.svg) | ${cell(m.name)} | ${fmt(m.ours.value)} ${m.unit} | ` +
          `${cell(m.peer.label)}: ${fmt(m.peer.value)} ${m.unit} | ${formatRatio(m.ratio)} | ${target} | ${verdict} |`,
      );
    }
  }
  const dates = entries.map((e) => e.at).sort();
  const when = dates.length ? `${dates[0]?.slice(0, 10)} to ${dates.at(-1)?.slice(0, 10)}` : 'never';
  const cores = [...new Set(entries.map((e) => e.host.cpus))].join('/');
  return `Full runs (\`npm run bench\`) from ${when}, ${cores} cores.\n\n${lines.join('\n')}`;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const dir = join(import.meta.dirname, '..');
  const entries = JSON.parse(await readFile(join(dir, 'results.json'), 'utf8')) as BenchEntry[];
  const readmePath = join(dir, 'README.md');
  const readme = await readFile(readmePath, 'utf8');
  const start = readme.indexOf(START);
  const end = readme.indexOf(END);
  if (start < 0 || end < start) throw new Error(`bench/README.md has no ${START} … ${END} block`);
  const table = resultsTable(entries.filter((e) => !e.quick));
  await writeFile(readmePath, `${readme.slice(0, start + START.length)}\n${table}\n${readme.slice(end)}`);
  console.log(`bench/README.md: table of ${entries.length} benches rewritten`);
}
