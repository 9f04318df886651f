/**
 * bench/download — the images-cloud fetcher (stream + hash + fsync + verify + qemu-img info)
 * beside its natural peer, the single-pass `curl -s URL | tee FILE | sha256sum` (download, write
 * and hash at once, as the fetcher does), on the same file served over loopback in one run,
 * interleaved. The server and the fetcher each run in a process of their own (the fetcher as
 * plain node on the built package), so the fetcher's memory is its own.
 *   targets: throughput ≥ 1.0× the curl pipeline; peak RSS under 150 MB, and flat: the 2 GiB
 *   download's peak within 1.25× the 64 MiB one's.
 * Full: a 64 MiB and a 2 GiB file. QUANTIX_BENCH_QUICK=1: 64 MiB only.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { promisify } from 'node:util';
import { startFileServer } from './lib/file-server.js';
import { againstBound, benchResults } from './lib/results.js';

interface FetchOnce {
  ms: number;
  baselineRss: number;
  peakRss: number;
  maxRss: number;
  sizeBytes: number;
  checksum: string;
}

const run = promisify(execFile);
const results = benchResults('download');
/**
 * The peer, one pipeline: the URL and the file are positional arguments of a fixed script, never
 * part of it. pipefail makes a failed curl fail the whole.
 */
const CURL_TEE_SHA256SUM = 'set -o pipefail; curl -sS --fail "$1" | tee "$2" | sha256sum';
/** The memory limit of the issue: the fetcher process's peak RSS stays under it, whatever the size. */
const RSS_LIMIT_MB = 150;
const quick = process.env.QUANTIX_BENCH_QUICK === '1';
const MiB = 1024 * 1024;
const SIZES = quick ? [64 * MiB] : [64 * MiB, 2048 * MiB];
const ROUNDS = quick ? 3 : 2;
const repoRoot = join(import.meta.dirname, '..');

await run('bash', [join(repoRoot, 'scripts/ensure-packages.sh'), 'curl', 'coreutils', 'qemu-utils'], {
  timeout: 900_000,
});

const work = mkdtempSync(join(tmpdir(), 'quantix-bench-download-'));
// The source files are kept between runs (made once); outputs go to a fresh directory.
const sourceDir = join(tmpdir(), 'quantix-bench-download-sources');

const peaks: { size: number; peakRss: number; baselineRss: number }[] = [];
try {
  await run('mkdir', ['-p', sourceDir]);
  for (const size of SIZES) {
    const name = `bench-${size / MiB}MiB.img`;
    const file = join(sourceDir, name);
    const server = await startFileServer(file, size);
    const url = `http://127.0.0.1:${server.port}/${name}`;
    const expected = readFileSync(`${file}.SHA256SUMS`, 'utf8').split(' ')[0];
    const curlTimes: number[] = [];
    const ourTimes: number[] = [];
    const lifecycleTimes: number[] = [];
    let peakRss = 0;
    let baselineRss = 0;
    try {
      // Warm the server's page cache once so neither side pays for the first disk read.
      await run('curl', ['-sS', '-o', '/dev/null', url]);
      for (let round = 0; round < ROUNDS; round++) {
        const curlOut = join(work, `curl-${round}.img`);
        const start = performance.now();
        const { stdout } = await run('bash', ['-c', CURL_TEE_SHA256SUM, 'curl-tee-sha256sum', url, curlOut]);
        curlTimes.push(performance.now() - start);
        if (stdout.split(' ')[0] !== expected) throw new Error('curl pipeline: checksum differs');
        rmSync(curlOut);

        const ourOut = join(work, `fetcher-${round}.img`);
        // The fetcher runs in a plain node process of its own (the built package, no tsx), which
        // times itself and samples its own RSS: what it reports is the fetcher's alone.
        const child = await run(process.execPath, [
          join(import.meta.dirname, '__fixtures__/fetch-once.mjs'),
          url,
          `http://127.0.0.1:${server.port}/SHA256SUMS`,
          ourOut,
        ]);
        const measured = JSON.parse(child.stdout) as FetchOnce;
        ourTimes.push(measured.ms);
        peakRss = Math.max(peakRss, measured.peakRss, measured.maxRss);
        baselineRss = Math.max(baselineRss, measured.baselineRss);
        if (measured.checksum !== expected || measured.sizeBytes !== size) throw new Error('fetcher: wrong result');
        rmSync(ourOut);

        // The same bytes through the download lifecycle that runs (rows, progress, the fetch, the result).
        const poolDir = join(work, `pool-${round}`);
        const lifecycle = await run(process.execPath, [
          join(import.meta.dirname, '__fixtures__/download-once.mjs'),
          url,
          `http://127.0.0.1:${server.port}/SHA256SUMS`,
          poolDir,
        ]);
        const through = JSON.parse(lifecycle.stdout) as { ms: number; checksum: string; phase: string };
        if (through.phase !== 'ready' || through.checksum !== expected) throw new Error('lifecycle: wrong result');
        lifecycleTimes.push(through.ms);
        rmSync(poolDir, { recursive: true, force: true });
      }
    } finally {
      await server.stop();
    }
    const curlBest = Math.min(...curlTimes);
    const ourBest = Math.min(...ourTimes);
    const lifecycleBest = Math.min(...lifecycleTimes);
    const mibPerSecond = (ms: number) => size / MiB / (ms / 1000);
    peaks.push({ size, peakRss, baselineRss });
    const sizeLabel = `${size / MiB} MiB`;
    console.log(
      results.add({
        name: `download ${sizeLabel} + verify`,
        unit: 'MiB/s',
        better: 'higher',
        ours: { label: 'fetcher (stream+sha256+fsync+verify)', value: mibPerSecond(ourBest) },
        peer: { label: 'curl | tee | sha256sum', value: mibPerSecond(curlBest) },
        target: { ratio: 1.0 },
        details: { sizeBytes: size, rounds: ROUNDS, fetcherMs: Math.round(ourBest), peerMs: Math.round(curlBest) },
      }),
    );
    console.log(
      results.add({
        name: `download ${sizeLabel} lifecycle`,
        unit: 'MiB/s',
        better: 'higher',
        ours: { label: 'download lifecycle (row, progress, fetch, result)', value: mibPerSecond(lifecycleBest) },
        peer: { label: 'curl | tee | sha256sum', value: mibPerSecond(curlBest) },
        details: { sizeBytes: size, lifecycleMs: Math.round(lifecycleBest), fetcherMs: Math.round(ourBest) },
      }),
    );
    console.log(
      results.add(
        againstBound({
          name: `fetcher peak RSS, ${sizeLabel}`,
          unit: 'MB',
          better: 'lower',
          ours: { label: 'fetcher process', value: peakRss / 1e6 },
          bound: { label: 'limit', value: RSS_LIMIT_MB },
          details: { atRestMB: Math.round(baselineRss / 1e6) },
        }),
      ),
    );
  }
  const [smallest, largest] = [peaks[0], peaks.at(-1)];
  if (smallest && largest && largest !== smallest) {
    // Flat: the largest download's peak is (within noise) the smallest one's.
    console.log(
      results.add({
        name: 'fetcher peak RSS flat',
        unit: 'MB',
        better: 'lower',
        ours: { label: `${largest.size / MiB} MiB`, value: largest.peakRss / 1e6 },
        peer: { label: `${smallest.size / MiB} MiB`, value: smallest.peakRss / 1e6 },
        target: { ratio: 1.25 },
      }),
    );
  }
  await results.save();
} finally {
  rmSync(work, { recursive: true, force: true });
}
