/**
 * bench/iso-scan — scanning a pool of ISOs beside its natural peer, in one run.
 *   1,000 small real ISOs (made once with xorriso and genisoimage under 20 labels real media carry,
 *   then copied) in a local pool, scanned into PostgreSQL:
 *   - cold: no rows yet and osinfo-db not loaded; every file is read, identified and inserted —
 *     beside a loop of `blkid -o value -s LABEL` over the same files, which only reads the labels
 *     (target: faster than the blkid loop);
 *   - warm: nothing changed; no file is read — beside the pool's directory listing alone
 *     (target: near the cost of the listing).
 * QUANTIX_BENCH_QUICK=1 runs 100 ISOs (CI runs it so the bench never rots).
 */
import { execFile } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { promisify } from 'node:util';
import { createRepositories, openDatabase } from '@quantix/core';
import { createPostgresTestDatabase } from '@quantix/core/testing';
import { clearOsinfoDatabaseCache, loadOsinfoDatabase, scanPool } from '@quantix/images-iso';
import { LocalStorageBackend } from '@quantix/storage-local';

const run = promisify(execFile);
const quick = process.env.QUANTIX_BENCH_QUICK === '1';
const ISOS = quick ? 100 : 1_000;
const PER_DIRECTORY = 100;
const WARM_ROUNDS = 5;

/** Volume ids of real media (publisher where identification needs it, UDF like Windows media). */
const LABELS: { volumeId: string; publisher?: string; udf?: boolean }[] = [
  { volumeId: 'Ubuntu-Server 24.04.1 LTS amd64' },
  { volumeId: 'Ubuntu 22.04.1 LTS amd64' },
  { volumeId: 'Ubuntu-Server 22.04.3 LTS amd64' },
  { volumeId: 'Debian 12.7.0 amd64 n' },
  { volumeId: 'Debian 11.2.0 amd64 n' },
  { volumeId: 'Debian 13.0.0 amd64 n' },
  { volumeId: 'Rocky-9-4-x86_64-dvd' },
  { volumeId: 'Rocky-8-10-x86_64-dvd' },
  { volumeId: 'AlmaLinux-9-4-x86_64-dvd' },
  { volumeId: 'Fedora-S-dvd-x86_64-41' },
  { volumeId: 'Fedora-S-dvd-x86_64-37' },
  { volumeId: 'CentOS-Stream-9-BaseOS-x86_64' },
  { volumeId: 'RHEL-9-4-0-BaseOS-x86_64' },
  { volumeId: 'openSUSE-Leap-15.6-DVD-x86_64' },
  { volumeId: '14_1_RELEASE_AMD64_CD' },
  { volumeId: 'CCCOMA_X64FRE_EN-US_DV9', publisher: 'MICROSOFT CORPORATION', udf: true },
  { volumeId: 'SSS_X64FREE_EN-US_DV9', publisher: 'MICROSOFT CORPORATION', udf: true },
  { volumeId: 'virtio-win-0.1.262' },
  { volumeId: 'cidata' },
  { volumeId: 'MY_BACKUP_DISC' },
];

function ms(value: number): string {
  return `${value.toFixed(1)} ms`;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] as number;
}

await run('bash', [
  join(import.meta.dirname, '..', 'scripts', 'ensure-packages.sh'),
  'xorriso',
  'genisoimage',
  'osinfo-db',
]);
const base = await mkdtemp(join(tmpdir(), 'quantix-bench-iso-'));
const testDb = await createPostgresTestDatabase();
const db = await openDatabase(testDb.config);
try {
  // Stock ISOs: one per label, small (no padding), as xorriso and genisoimage make them.
  const stock = join(base, 'stock');
  const source = join(base, 'source');
  await mkdir(stock);
  await mkdir(source);
  await run('sh', ['-c', 'echo quantix > "$1/README.TXT"', 'sh', source]);
  const stockFiles: string[] = [];
  for (const [index, label] of LABELS.entries()) {
    const out = join(stock, `${index}.iso`);
    const ids = ['-V', label.volumeId, ...(label.publisher ? ['-publisher', label.publisher] : [])];
    if (label.udf) await run('genisoimage', ['-quiet', ...ids, '-udf', '-J', '-o', out, source]);
    else
      await run('xorriso', [
        '-as',
        'mkisofs',
        '-quiet',
        ...ids,
        '-sysid',
        'LINUX',
        '-J',
        '-R',
        '-no-pad',
        '-o',
        out,
        source,
      ]);
    stockFiles.push(out);
  }
  const root = join(base, 'pool');
  const files: string[] = [];
  for (let i = 0; i < ISOS; i++) {
    const directory = join(root, `shelf-${Math.floor(i / PER_DIRECTORY)}`);
    if (i % PER_DIRECTORY === 0) await mkdir(directory, { recursive: true });
    const path = join(directory, `disc-${i}.iso`);
    await copyFile(stockFiles[i % stockFiles.length] as string, path);
    files.push(path);
  }

  const repos = createRepositories(db.knex);
  const pool = await repos.pools.create({
    name: 'bench',
    type: 'local',
    config: { path: root },
    contentTypes: ['iso'],
  });
  const backend = new LocalStorageBackend();

  // osinfo-db on its own: parsed from its XML (a machine's first start), then from its cache file.
  const parsed = await loadOsinfoDatabase({ cacheDir: join(base, 'osinfo-cache') });
  const cached = await loadOsinfoDatabase({ cacheDir: join(base, 'osinfo-cache') });

  // The peer, cold: one blkid per file, as a shell loop over the pool would.
  let start = performance.now();
  for (const path of files) await run('blkid', ['-o', 'value', '-s', 'LABEL', path]);
  const blkidMs = performance.now() - start;

  // Cold: empty table, osinfo-db not loaded in this process and no cache file of it (the worst case).
  clearOsinfoDatabaseCache();
  const osinfo = { cacheDir: join(base, 'cold-cache') };
  start = performance.now();
  const cold = await scanPool({ pool, backend, images: repos.images, osinfo });
  const coldMs = performance.now() - start;
  if (cold.added !== ISOS || cold.invalid.length !== 0) throw new Error(`cold scan added ${cold.added} of ${ISOS}`);
  const identified = await repos.images.count({ poolId: pool.id });

  const warmTimes: number[] = [];
  const listTimes: number[] = [];
  const rowTimes: number[] = [];
  for (let round = 0; round < WARM_ROUNDS; round++) {
    start = performance.now();
    await backend.list({ pool, content: 'iso' });
    listTimes.push(performance.now() - start);
    start = performance.now();
    await repos.images.list({ poolId: pool.id, kind: 'iso' });
    rowTimes.push(performance.now() - start);
    start = performance.now();
    const warm = await scanPool({ pool, backend, images: repos.images, osinfo });
    warmTimes.push(performance.now() - start);
    if (warm.unchanged !== ISOS || warm.filesRead !== 0) throw new Error('warm scan read files');
  }
  const warmMs = median(warmTimes);
  const listMs = median(listTimes);
  const rowsMs = median(rowTimes);
  const unknown = (await repos.images.list({ poolId: pool.id })).filter((i) => i.os.family === 'unknown').length;

  const coldRatio = coldMs / blkidMs;
  const warmRatio = warmMs / listMs;
  console.log(
    `bench/iso-scan: ${ISOS} ISOs (${LABELS.length} labels of real media) in a local pool, PostgreSQL${quick ? ' (quick mode)' : ''}`,
  );
  console.log(
    `cold scan (read, identify, insert)  ${ms(coldMs).padStart(10)}   blkid loop ${ms(blkidMs).padStart(10)}   ` +
      `ratio ${coldRatio.toFixed(2)}x (target < 1x: ${coldRatio < 1 ? 'ok' : 'OVER TARGET'})`,
  );
  console.log(
    `warm scan (nothing changed)         ${ms(warmMs).padStart(10)}   listing    ${ms(listMs).padStart(10)}   ` +
      `ratio ${warmRatio.toFixed(2)}x (target: near the listing; ${warmRatio <= 3 ? 'ok' : 'OVER TARGET'})`,
  );
  console.log(
    `  the warm scan is the listing and, at the same time, reading the pool's ${ISOS} rows through the repository: ` +
      `${ms(rowsMs)} alone (${(warmMs / Math.max(listMs, rowsMs)).toFixed(2)}x the slower of the two)`,
  );
  console.log(
    `per ISO: cold ${((coldMs / ISOS) * 1000).toFixed(0)} µs, blkid ${((blkidMs / ISOS) * 1000).toFixed(0)} µs, ` +
      `warm ${((warmMs / ISOS) * 1000).toFixed(0)} µs; ${identified} rows, ${unknown} of unknown OS (the backup disc's copies)`,
  );
  console.log(
    `osinfo-db load, once per process (in the cold scan above): ${ms(parsed?.loadMs ?? 0)} parsing the XML of ` +
      `${parsed?.rules.length} media entries on a machine's first start, ${ms(cached?.loadMs ?? 0)} from its cache file after`,
  );
} finally {
  await db.close();
  await testDb.dispose();
  await rm(base, { recursive: true, force: true });
}
