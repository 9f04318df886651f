/**
 * bench/iso-identify — identifying installation media beside osinfo-detect (libosinfo-bin), the
 * tool libvirt's world uses for the same question, on the same ISOs and the same osinfo-db.
 *   The ISOs are made with xorriso from the labels of real media in
 *   packages/images-iso/src/__fixtures__/media-labels.tsv (volume, system, publisher and
 *   application ids, and the volume size written into the volume descriptor, the file made sparse
 *   to match; no dates, as the table has none), bootable as installation media are:
 *   - one process for all: read and identify every ISO (the scanner's path) — beside a loop of
 *     osinfo-detect, which can only run once per file;
 *   - one process per ISO: node running the built package for each file, osinfo-db from its cache
 *     file — beside the same osinfo-detect loop;
 *   - what each answers: right, wrong or silent against the OS the table gives.
 * QUANTIX_BENCH_QUICK=1 takes every 48th label, 10 ISOs (CI runs it so the bench never rots; 40 took a minute).
 */
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, open, readdir, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { promisify } from 'node:util';
import { clearOsinfoDatabaseCache, inspectIso, loadOsinfoDatabase } from '@quantix/images-iso';
import {
  type MediaLabel,
  readMediaLabels,
  type Verdict,
  verdict,
} from '../packages/images-iso/src/__fixtures__/media-labels.js';
// The package's XML reader is internal; the baseline below reads osinfo with it, from source.
import { childrenNamed, childText, parseXml } from '../packages/images-iso/src/xml.js';
import { benchResults } from './lib/results.js';

const run = promisify(execFile);
const quick = process.env.QUANTIX_BENCH_QUICK === '1';
const STEP = quick ? 48 : 1;
const OSINFO_DIR = '/usr/share/osinfo';
const SECTOR = 2048;

function ms(value: number): string {
  return `${value.toFixed(1)} ms`;
}

function tally(verdicts: Verdict[]): string {
  const pct = (v: Verdict) => `${((100 * verdicts.filter((x) => x === v).length) / verdicts.length).toFixed(1)} %`;
  return `right ${pct('right')}, wrong ${pct('wrong')}, silent ${pct('silent')}`;
}

/**
 * A bootable ISO carrying the row's descriptors and volume size, sparse beyond what xorriso wrote.
 * The descriptor fields are written into the primary volume descriptor as the media have them:
 * xorriso would upper-case the system, publisher and application ids, real media often do not.
 */
async function mediaIso(row: MediaLabel, source: string, out: string): Promise<void> {
  await run('xorriso', [
    '-as',
    'mkisofs',
    '-quiet',
    '-V',
    'BENCH',
    '-no-pad',
    '-b',
    'boot/boot.bin',
    '-no-emul-boot',
    '-o',
    out,
    source,
  ]);
  const pvd = 16 * SECTOR;
  const text = (value: string, length: number) => Buffer.from(value.padEnd(length, ' '), 'latin1');
  // Volume space size, both-endian.
  const blocks = Buffer.alloc(8);
  blocks.writeUInt32LE(row.volumeSizeBytes / SECTOR, 0);
  blocks.writeUInt32BE(row.volumeSizeBytes / SECTOR, 4);
  // Creation and modification dates "not specified" (ECMA-119 8.4.26.1): the dumps do not give the
  // real ones, and today's date would be a false hint where a date decides between releases.
  const unspecified = Buffer.concat([Buffer.from('0'.repeat(16), 'latin1'), Buffer.alloc(1)]);
  const fields: [number, Buffer][] = [
    [8, text(row.systemId, 32)],
    [40, text(row.volumeId, 32)],
    [80, blocks],
    [318, text(row.publisherId, 128)],
    [574, text(row.applicationId, 128)],
    [813, unspecified],
    [830, unspecified],
  ];
  const file = await open(out, 'r+');
  try {
    for (const [offset, bytes] of fields) await file.write(bytes, 0, bytes.length, pvd + offset);
  } finally {
    await file.close();
  }
  await truncate(out, row.volumeSizeBytes);
}

/**
 * The short ids each name stands for in osinfo-db: osinfo-detect prints the name of the OS, or of
 * the media's variant ("NixOS 20.03 (minimal installation CD)", "Endless OS English").
 */
async function shortIdsByName(dir: string): Promise<Map<string, string[]>> {
  const byName = new Map<string, string[]>();
  const add = (name: string | null, shortId: string) => {
    if (!name) return;
    const ids = byName.get(name) ?? [];
    if (!ids.includes(shortId)) byName.set(name, [...ids, shortId]);
  };
  for (const entry of await readdir(join(dir, 'os'), { recursive: true, withFileTypes: true })) {
    if (!entry.isFile() || !entry.name.endsWith('.xml')) continue;
    const document = parseXml(await readFile(join(entry.parentPath, entry.name), 'utf8'), {
      keep: (_ancestors, _name, attributes) => attributes['xml:lang'] === undefined,
    });
    for (const os of childrenNamed(document, 'libosinfo').flatMap((l) => childrenNamed(l, 'os'))) {
      const shortId = childText(os, 'short-id') ?? '';
      add(childText(os, 'name'), shortId);
      for (const variant of childrenNamed(os, 'variant')) add(childText(variant, 'name'), shortId);
    }
  }
  return byName;
}

/**
 * osinfo-detect's answer as short ids: it prints "OS 'NAME (ARCH)'", and osinfo-db maps the name
 * back. Some names stand for several releases ("PureOS", "Endless OS English"); the peer is given
 * the benefit of the doubt there (right when the expected release is among them).
 */
async function osinfoDetect(path: string, shortIdsOfName: Map<string, string[]>): Promise<string[] | null> {
  const { stdout } = await run('osinfo-detect', [path]);
  const printed = /OS '(?<name>.*)'/.exec(stdout)?.groups?.name;
  if (!printed) return null;
  const name = shortIdsOfName.has(printed) ? printed : printed.replace(/ \([^()]*\)$/, '');
  return shortIdsOfName.get(name) ?? [`?${printed}`];
}

function peerVerdict(expected: string, answer: string[] | null): Verdict {
  if (!answer) return 'silent';
  if (answer.includes(expected)) return 'right';
  return answer.every((id) => verdict(expected, id) === 'silent') ? 'silent' : 'wrong';
}

await run('bash', [
  join(import.meta.dirname, '..', 'scripts', 'ensure-packages.sh'),
  'xorriso',
  'osinfo-db',
  'libosinfo-bin',
]);
const base = await mkdtemp(join(tmpdir(), 'quantix-bench-identify-'));
try {
  const rows = readMediaLabels().filter((_, i) => i % STEP === 0);
  const source = join(base, 'source');
  await mkdir(join(source, 'boot'), { recursive: true });
  await writeFile(join(source, 'boot', 'boot.bin'), Buffer.alloc(SECTOR));
  const files: string[] = [];
  for (const [i, row] of rows.entries()) {
    const out = join(base, `disc-${i}.iso`);
    await mediaIso(row, source, out);
    files.push(out);
  }

  // osinfo-db on its own, cold from its XML and then from the cache file the per-process runs use.
  const cacheDir = join(base, 'cache');
  const parsed = await loadOsinfoDatabase({ dir: OSINFO_DIR, cacheDir });
  const cached = await loadOsinfoDatabase({ dir: OSINFO_DIR, cacheDir });
  if (!parsed || !cached) throw new Error(`no osinfo-db at ${OSINFO_DIR}`);
  const shortIdsOfName = await shortIdsByName(OSINFO_DIR);

  // Ours, one process: read and identify every file (the scanner's path).
  clearOsinfoDatabaseCache();
  let start = performance.now();
  const osinfo = await loadOsinfoDatabase({ dir: OSINFO_DIR, cacheDir: false });
  const ours: (string | null)[] = [];
  for (const [i, path] of files.entries()) {
    const found = await inspectIso({ path, fileName: `disc-${i}.iso`, osinfo });
    // The ISO as read must be the row as published, or the comparison means nothing.
    const row = rows[i] as MediaLabel;
    const read = [found.iso.volumeId, found.iso.systemId, found.iso.publisherId, found.iso.applicationId];
    const published = [row.volumeId, row.systemId, row.publisherId, row.applicationId];
    if (
      read.join('\0') !== published.join('\0') ||
      found.iso.volumeSizeBytes !== row.volumeSizeBytes ||
      found.iso.createdAt !== null
    ) {
      throw new Error(`disc-${i}.iso reads as ${JSON.stringify(read)}, not ${JSON.stringify(published)}`);
    }
    ours.push(found.identification.shortId);
  }
  const oursMs = performance.now() - start;

  // The peer: osinfo-detect once per file (it loads osinfo-db each time; there is no other way).
  start = performance.now();
  const peer: (string[] | null)[] = [];
  for (const path of files) peer.push(await osinfoDetect(path, shortIdsOfName));
  const peerMs = performance.now() - start;

  const n = files.length;
  // Ours, one process per file: node, the built package, osinfo-db from its cache file.
  const script = join(import.meta.dirname, '__fixtures__', 'identify-one.mjs');
  const env = { ...process.env, QUANTIX_CACHE_DIR: cacheDir, OSINFO_SYSTEM_DIR: OSINFO_DIR };
  start = performance.now();
  const perProcess: string[] = [];
  for (const path of files) perProcess.push((await run(process.execPath, [script, path], { env })).stdout.trim());
  const perProcessMs = performance.now() - start;
  // What of that is node starting and importing the package, before any ISO is read.
  const importRuns = Math.min(n, 10);
  start = performance.now();
  for (let i = 0; i < importRuns; i++) {
    await run(process.execPath, ['--input-type=module', '-e', "await import('@quantix/images-iso')"], { env });
  }
  const importMs = (performance.now() - start) / importRuns;
  const disagree = perProcess.filter((id, i) => id !== (ours[i] ?? '')).length;
  if (disagree) throw new Error(`one process per ISO answered differently on ${disagree} ISOs`);

  const decidable = rows.map((r, i) => ({ r, i })).filter(({ r }) => !r.truthByDate);
  const oursVerdicts = decidable.map(({ r, i }) => verdict(r.expected, ours[i] ?? null));
  const peerVerdicts = decidable.map(({ r, i }) => peerVerdict(r.expected, peer[i] ?? null));
  console.log(
    `bench/iso-identify: ${n} bootable ISOs with the labels and volume sizes of real media ` +
      `(${new Set(rows.map((r) => r.family)).size} families), osinfo-db ${parsed.dbVersion}${quick ? ' (quick mode)' : ''}`,
  );
  const results = benchResults('iso-identify');
  const right = (verdicts: string[]) => verdicts.filter((v) => v === 'right').length;
  const details = { isos: n, 'ours right': right(oursVerdicts), 'osinfo-detect right': right(peerVerdicts) };
  console.log(
    results.add({
      name: 'one process, load db + identify all',
      unit: 'ms',
      better: 'lower',
      ours: { label: 'ours', value: oursMs },
      peer: { label: 'osinfo-detect loop', value: peerMs },
      details,
    }),
  );
  console.log(
    results.add({
      name: 'one process per ISO (built dist)',
      unit: 'ms',
      better: 'lower',
      ours: { label: 'ours', value: perProcessMs },
      peer: { label: 'osinfo-detect loop', value: peerMs },
      details,
    }),
  );
  console.log(
    `per ISO: ours ${((oursMs / n) * 1000).toFixed(0)} µs in one process, ${(perProcessMs / n).toFixed(0)} ms as a process; ` +
      `osinfo-detect ${(peerMs / n).toFixed(0)} ms`,
  );
  console.log(
    `  of each process, ${importMs.toFixed(0)} ms are node starting and importing @quantix/images-iso (and @quantix/core)`,
  );
  console.log(`answers on the ${decidable.length} ISOs whose release the descriptors decide:`);
  console.log(`  ours           ${tally(oursVerdicts)}`);
  console.log(`  osinfo-detect  ${tally(peerVerdicts)}`);
  const newer = decidable.filter(({ r }) => r.newerThanDb);
  console.log(
    `  of them ${newer.length} are releases newer than this osinfo-db: ours right on ` +
      `${newer.filter(({ r, i }) => verdict(r.expected, ours[i] ?? null) === 'right').length}, osinfo-detect on ` +
      `${newer.filter(({ r, i }) => peerVerdict(r.expected, peer[i] ?? null) === 'right').length}`,
  );
  console.log(
    `osinfo-db load: ${ms(parsed.loadMs)} parsing the XML of ${parsed.rules.length} media entries, ` +
      `${ms(cached.loadMs)} from the cache file`,
  );
  await results.save();
} finally {
  await rm(base, { recursive: true, force: true });
}
