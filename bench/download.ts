/**
 * bench/download — the images-cloud fetcher (stream + hash + fsync + verify + qemu-img info)
 * beside its natural peer, `curl -o FILE URL` followed by `sha256sum FILE`, on the same file
 * served over loopback in one run. The server and the fetcher each run in a process of their
 * own (the fetcher as plain node on the built package), so the fetcher's memory is its own.
 *   target: throughput ≥ 0.9× the curl pipeline; peak RSS flat and under 150 MB whatever the size.
 * Full: a 2 GiB file (and a 64 MiB one, to show memory does not grow with size).
 * QUANTIX_BENCH_QUICK=1: 64 MiB only.
 */
import { execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';

interface FetchOnce {
  ms: number;
  baselineRss: number;
  peakRss: number;
  maxRss: number;
  sizeBytes: number;
  checksum: string;
}

const run = promisify(execFile);
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

async function startServer(file: string, size: number): Promise<{ port: number; stop: () => Promise<void> }> {
  const server = spawn(
    process.execPath,
    [join(import.meta.dirname, '__fixtures__/file-server.mjs'), file, String(size)],
    {
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  const lines = createInterface({ input: server.stdout });
  const [line] = (await Promise.race([
    once(lines, 'line'),
    once(server, 'exit').then(() => {
      throw new Error('the file server exited before it was ready');
    }),
  ])) as [string];
  const port = Number(/^READY (\d+)$/.exec(line)?.[1]);
  return {
    port,
    stop: async () => {
      server.kill('SIGTERM');
      await once(server, 'exit');
    },
  };
}

const mb = (bytes: number) => `${(bytes / 1e6).toFixed(0)} MB`;
const rate = (bytes: number, ms: number) => `${(bytes / MiB / (ms / 1000)).toFixed(0)} MiB/s`;

const peaks: { size: number; peakRss: number; baselineRss: number }[] = [];
try {
  await run('mkdir', ['-p', sourceDir]);
  for (const size of SIZES) {
    const name = `bench-${size / MiB}MiB.img`;
    const file = join(sourceDir, name);
    const server = await startServer(file, size);
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
        await run('curl', ['-sS', '--fail', '-o', curlOut, url]);
        const { stdout } = await run('sha256sum', [curlOut]);
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
    // Throughput ratio: the fetcher's bytes per second over the curl pipeline's.
    const ratio = curlBest / ourBest;
    peaks.push({ size, peakRss, baselineRss });
    console.log(
      `download ${String(size / MiB).padStart(4)} MiB  fetcher (stream+sha256+fsync+verify) ${(ourBest / 1000).toFixed(2)} s ` +
        `(${rate(size, ourBest)})   curl -o + sha256sum ${(curlBest / 1000).toFixed(2)} s (${rate(size, curlBest)})   ` +
        `throughput ratio ${ratio.toFixed(2)}x (target ≥ 0.9x, ${ratio >= 0.9 ? 'ok' : 'UNDER TARGET'})`,
    );
    console.log(
      `download ${String(size / MiB).padStart(4)} MiB  through the download lifecycle (row, progress, fetch, result) ` +
        `${(lifecycleBest / 1000).toFixed(2)} s (${rate(size, lifecycleBest)})   ` +
        `${(curlBest / lifecycleBest).toFixed(2)}x curl's throughput, ${(ourBest / lifecycleBest).toFixed(2)}x the fetcher's alone`,
    );
  }
  const worst = Math.max(...peaks.map((p) => p.peakRss));
  const flat = peaks.length < 2 || Math.abs((peaks.at(-1)?.peakRss ?? 0) - (peaks[0]?.peakRss ?? 0)) < 30e6;
  console.log(
    `fetcher process peak RSS: ${peaks.map((p) => `${mb(p.peakRss)} for ${p.size / MiB} MiB`).join(', ')} ` +
      `(the process at rest, package loaded: ${mb(peaks[0]?.baselineRss ?? 0)}); ` +
      `target < 150 MB and flat: ${worst < 150e6 && flat ? 'ok' : 'OVER TARGET'}`,
  );
} finally {
  rmSync(work, { recursive: true, force: true });
}
