/**
 * bench/export — an image streamed out of its pool by GET /images/:id/content (the node reads the
 * file and pushes it over the channel it dials back, the control plane pipes it to the client)
 * beside its natural peer: the same file from a plain HTTP file server. The client is `curl -o`
 * on both sides, in a process of its own; the rounds are interleaved. The control plane and its
 * node run all-in-one in a process of their own (embedded PGlite, a local pool), as `quantix up`
 * runs them — not in this one: a server whose own process spawns the client measured 2–3x slower
 * here (a plain node file server: 150–170 ms for 64 MiB to a `curl` it spawned, 40–90 ms to a
 * `curl` from elsewhere), so both servers are this process's children, and so is every `curl`.
 *   target: throughput ≥ 0.5× the plain file server (the bytes cross two connections, not one).
 * Full: a 64 MiB and a 1 GiB image. QUANTIX_BENCH_QUICK=1: 64 MiB only.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { promisify } from 'node:util';
import { startFileServer } from './lib/file-server.js';
import { benchApi, downloadReady, startImageSystemProcess } from './lib/images.js';
import { benchResults } from './lib/results.js';

const run = promisify(execFile);
const results = benchResults('export');
const quick = process.env.QUANTIX_BENCH_QUICK === '1';
const MiB = 1024 * 1024;
const SIZES = quick ? [64 * MiB] : [64 * MiB, 1024 * MiB];
const ROUNDS = 3;
const repoRoot = join(import.meta.dirname, '..');

await run('bash', [join(repoRoot, 'scripts/ensure-packages.sh'), 'curl', 'coreutils'], { timeout: 900_000 });

const work = mkdtempSync(join(tmpdir(), 'quantix-bench-export-'));
// The source files are shared with bench/download (made once, kept between runs).
const sourceDir = join(tmpdir(), 'quantix-bench-download-sources');

/** `curl -o FILE` (with its headers, the API token as a header file, never in argv); its time in ms. */
async function curlTimed(url: string, out: string, headerFile?: string): Promise<number> {
  const start = performance.now();
  await run('curl', ['-sS', '--fail', ...(headerFile ? ['-H', `@${headerFile}`] : []), '-o', out, url]);
  const ms = performance.now() - start;
  return ms;
}

try {
  await run('mkdir', ['-p', sourceDir]);
  for (const size of SIZES) {
    const name = `bench-${size / MiB}MiB.img`;
    const file = join(sourceDir, name);
    const server = await startFileServer(file, size);
    const dataDir = join(work, `data-${size / MiB}`);
    const system = await startImageSystemProcess({ dataDir, port: server.port, file: name, catalogId: 'bench-export' });
    try {
      const headerFile = join(work, 'auth-header');
      await run('bash', [
        '-c',
        'umask 077; printf "Authorization: Bearer %s\\n" "$1" > "$2"',
        'auth',
        system.apiToken,
        headerFile,
      ]);
      const api = benchApi(system);
      // The image gets into the pool the way images do: a verified download from the mirror.
      const started = await downloadReady(api, 'bench-export', 'local');
      const expected = readFileSync(`${file}.SHA256SUMS`, 'utf8').split(' ')[0];
      const exportUrl = `${system.url}/api/v1/images/${started.id}/content`;
      const plainUrl = `http://127.0.0.1:${server.port}/${name}`;
      // Warm both sides' page cache once.
      await curlTimed(plainUrl, '/dev/null');
      await curlTimed(exportUrl, '/dev/null', headerFile);
      const ours: number[] = [];
      const peer: number[] = [];
      for (let round = 0; round < ROUNDS; round++) {
        const out = join(work, 'out.img');
        peer.push(await curlTimed(plainUrl, out));
        rmSync(out);
        ours.push(await curlTimed(exportUrl, out, headerFile));
        if (statSync(out).size !== size) throw new Error('export: wrong size');
        const { stdout } = await run('sha256sum', [out]);
        if (stdout.split(' ')[0] !== expected) throw new Error('export: checksum differs');
        rmSync(out);
      }
      const mibPerSecond = (ms: number) => size / MiB / (ms / 1000);
      console.log(
        results.add({
          name: `export ${size / MiB} MiB`,
          unit: 'MiB/s',
          better: 'higher',
          ours: {
            label: 'GET /images/:id/content (node → control plane → client)',
            value: mibPerSecond(Math.min(...ours)),
          },
          peer: { label: 'curl -o from a plain HTTP file server', value: mibPerSecond(Math.min(...peer)) },
          target: { ratio: 0.5 },
          details: {
            sizeBytes: size,
            rounds: ROUNDS,
            oursMs: Math.round(Math.min(...ours)),
            peerMs: Math.round(Math.min(...peer)),
          },
        }),
      );
    } finally {
      await system.close();
      await server.stop();
    }
  }
  await results.save();
} finally {
  rmSync(work, { recursive: true, force: true });
}
