/**
 * Identification measured on real media: every row of __fixtures__/media-labels.tsv (descriptors
 * of real ISOs, from public sources) goes through a node scan's path — osinfo-db as the node's inspector
 * loads it (the installed one, 2022-12) and identifyOs — and the answer is compared with the OS
 * osinfo-db's own test data files the media under. Prints the figures; fails below 95 % right or
 * above 0.5 % wrong on the rows whose release the descriptors can decide (NixOS unstable snapshots
 * carry the label of a release and are filed by date: they are printed, not held to the bar).
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { requireIsoTools } from './__fixtures__/isos.js';
import { type MediaLabel, readMediaLabels, type Verdict, verdict } from './__fixtures__/media-labels.js';
import { identifyOs } from './identify.js';
import { loadOsinfo } from './inspect.js';
import type { OsinfoDatabase } from './osinfo.js';

interface Scored {
  row: MediaLabel;
  shortId: string | null;
  confidence: string | null;
  rule: string | null;
  verdict: Verdict;
}

let osinfo: OsinfoDatabase | null;
let scored: Scored[];

beforeAll(async () => {
  requireIsoTools();
  osinfo = await loadOsinfo({ dir: '/usr/share/osinfo', cacheDir: false });
  scored = readMediaLabels().map((row) => {
    const result = identifyOs({
      iso: {
        volumeId: row.volumeId,
        systemId: row.systemId,
        publisherId: row.publisherId,
        applicationId: row.applicationId,
        volumeSizeBytes: row.volumeSizeBytes,
        createdAt: null,
      },
      osinfo,
    });
    return {
      row,
      shortId: result.shortId,
      confidence: result.confidence,
      rule: result.rule,
      verdict: verdict(row.expected, result.shortId),
    };
  });
});

const percent = (n: number, of: number) => `${((100 * n) / Math.max(of, 1)).toFixed(1)} %`;

function summary(name: string, rows: Scored[]) {
  const count = (v: Verdict) => rows.filter((r) => r.verdict === v).length;
  const [right, wrong, silent] = [count('right'), count('wrong'), count('silent')];
  return {
    right,
    wrong,
    silent,
    line: `${name.padEnd(28)} ${String(rows.length).padStart(4)} labels: right ${percent(right, rows.length).padStart(7)}, wrong ${percent(wrong, rows.length).padStart(6)}, silent ${percent(silent, rows.length).padStart(6)}`,
  };
}

describe('identification of real media labels (installed osinfo-db + family rules)', () => {
  it('the table holds at least 400 labels of 35 families, each with its public source', () => {
    const rows = scored.map((s) => s.row);
    expect(rows.length).toBeGreaterThanOrEqual(400);
    expect(new Set(rows.map((r) => r.family)).size).toBeGreaterThanOrEqual(35);
    for (const row of rows) expect(row.source, row.volumeId).toMatch(/^https:\/\/\S+$/);
    // Releases the installed database does not know, and media it pins by volume size.
    expect(rows.filter((r) => r.newerThanDb).length).toBeGreaterThanOrEqual(100);
    const pinned = new Set(osinfo?.rules.filter((r) => r.volumeSize !== null).map((r) => r.volumeSize));
    expect(rows.filter((r) => pinned.has(r.volumeSizeBytes)).length).toBeGreaterThanOrEqual(10);
  });

  it('is right on at least 95 % and wrong on at most 0.5 %', () => {
    expect(osinfo?.dbVersion).toBe('20221203');
    const decidable = scored.filter((s) => !s.row.truthByDate);
    const bar = summary('decidable from descriptors', decidable);
    const lines = [
      `osinfo-db ${osinfo?.dbVersion} (${osinfo?.rules.length} media entries) + family rules, ${new Set(scored.map((s) => s.row.family)).size} families`,
      summary('all', scored).line,
      bar.line,
      summary(
        'held out (after the rules)',
        scored.filter((s) => s.row.heldOut),
      ).line,
      summary(
        'held out, decidable',
        decidable.filter((s) => s.row.heldOut),
      ).line,
      summary(
        'shaped the rules',
        scored.filter((s) => !s.row.heldOut),
      ).line,
      summary(
        'releases the db knows',
        scored.filter((s) => !s.row.newerThanDb),
      ).line,
      summary(
        'releases newer than the db',
        scored.filter((s) => s.row.newerThanDb),
      ).line,
      ...scored
        .filter((s) => s.verdict !== 'right')
        .map(
          (s) =>
            `  ${s.verdict.padEnd(6)} ${JSON.stringify(s.row.volumeId).padEnd(36)} expected ${s.row.expected.padEnd(18)} got ${String(s.shortId).padEnd(18)} ${s.rule ?? ''}${s.row.heldOut ? ' (held out)' : ''}${s.row.truthByDate ? ' (date decides)' : ''}`,
        ),
    ];
    console.log(lines.join('\n'));
    expect(bar.right / decidable.length).toBeGreaterThanOrEqual(0.95);
    expect(bar.wrong / decidable.length).toBeLessThanOrEqual(0.005);
    // The excluded rows stay few: they are one family's snapshots, not a place to hide misses.
    expect(scored.length - decidable.length).toBeLessThanOrEqual(scored.length * 0.02);
  });

  it('marks every release the installed database does not know as extrapolated when it names one', () => {
    const unknownToDb = scored.filter((s) => s.row.newerThanDb && s.verdict === 'right');
    expect(unknownToDb.length).toBeGreaterThan(0);
    for (const s of unknownToDb) expect(s.confidence, s.row.volumeId).toBe('extrapolated');
  });
});
