/**
 * bench/upload — a resumable upload (tus) of an ISO through the `quantix images upload` CLI to
 * the all-in-one control plane, until the control plane has the whole file checked (the CLI's
 * SHA-256, tus PATCHes, the server's SHA-256 of the bytes as it writes them, the ISO read) —
 * beside its natural peer, `curl -T FILE` of the same file to a plain PUT endpoint that writes it
 * to disk.
 * Each side runs in processes of its own, interleaved, on loopback; best of ROUNDS. Three lines:
 * the whole CLI command (node's start-up, the pool lookup and the client's own SHA-256 included),
 * the tus transfer alone (tus-js-client with the CLI's file reader timing itself: creation to the
 * last PATCH's answer), and the same tus upload with curl as the client (the server's side beside
 * the plain PUT with one client for both: a node client sends a file slower than curl does).
 *   target: each tus transfer ≥ 0.5× curl -T (the server's SHA-256 and ISO read beside a bare
 *   write); the CLI line has none (its start-up dominates small files).
 * Full: a 64 MiB and a 1 GiB ISO. QUANTIX_BENCH_QUICK=1: 32 MiB only.
 */
import { execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';
import { buildIso, REAL_MEDIA } from '@quantix/images-iso/testing';
import { benchResults } from './lib/results.js';

const run = promisify(execFile);
const results = benchResults('upload');
const quick = process.env.QUANTIX_BENCH_QUICK === '1';
const MiB = 1024 * 1024;
const SIZES = quick ? [32 * MiB] : [64 * MiB, 1024 * MiB];
const ROUNDS = quick ? 2 : 3;
const repoRoot = join(import.meta.dirname, '..');
const QUANTIX = join(repoRoot, 'examples/control-plane/bin/quantix.js');

await run('bash', [join(repoRoot, 'scripts/ensure-packages.sh'), 'curl', 'xorriso'], { timeout: 900_000 });

/** Starts a process and waits for the first stdout line matching `ready`. */
async function startUntil(args: string[], ready: RegExp, cwd?: string) {
  const child = spawn(process.execPath, args, {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, QUANTIX_LOG_LEVEL: 'warn' },
    ...(cwd ? { cwd } : {}),
  });
  const lines = createInterface({ input: child.stdout });
  const match = await new Promise<RegExpExecArray>((resolve, reject) => {
    lines.on('line', (line) => {
      const found = ready.exec(line);
      if (found) resolve(found);
    });
    child.once('exit', () => reject(new Error(`${args.join(' ')} exited before it was ready`)));
  });
  return {
    match,
    stop: async () => {
      child.kill('SIGTERM');
      await once(child, 'exit');
    },
  };
}

const work = mkdtempSync(join(tmpdir(), 'quantix-bench-upload-'));
try {
  const putDir = join(work, 'put');
  mkdirSync(putDir);
  const peer = await startUntil([join(import.meta.dirname, '__fixtures__/put-server.mjs'), putDir], /^READY (\d+)$/);
  const putUrl = `http://127.0.0.1:${peer.match[1]}`;
  // `quantix up` keeps its URL and token in <cwd>/.quantix, where the CLI finds them.
  const cp = await startUntil(
    [QUANTIX, 'up', '--data-dir', join(work, '.quantix'), '--port', '0', '--libvirt', 'none'],
    /Pool:\s+local /,
    work,
  );
  const credentials = JSON.parse(readFileSync(join(work, '.quantix', 'credentials.json'), 'utf8')) as {
    url: string;
    token: string;
  };
  /**
   * Waits until the upload named `name` is no longer on its way to its pool: `--no-wait` and the
   * tus transfer end when the control plane has the bytes, and the node's fetch of them (another
   * gigabyte written and hashed) would otherwise run during the next measurement.
   */
  const settled = async (name: string) => {
    for (;;) {
      const response = await fetch(`${credentials.url}/api/v1/images?text=${encodeURIComponent(name)}&limit=10`, {
        headers: { authorization: `Bearer ${credentials.token}` },
      });
      const { images } = (await response.json()) as { images: { name: string; phase: string }[] };
      const phase = images.find((image) => image.name === name)?.phase;
      if (phase === 'ready') return;
      if (phase === 'error' || phase === 'missing') throw new Error(`upload ${name} ended ${phase}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  };
  /**
   * The same tus upload with curl as the client, two processes timed as the peer's one is: the
   * server's side beside the plain PUT, with the client the same on both sides.
   */
  const curlTusUpload = async (file: string, size: number, name: string) => {
    const base64 = (text: string) => Buffer.from(text).toString('base64');
    const headers = ['-H', `Authorization: Bearer ${credentials.token}`, '-H', 'Tus-Resumable: 1.0.0'];
    const metadata = `poolId ${base64('local')},name ${base64(name)},kind ${base64('iso')}`;
    const creation = await run('curl', [
      ...['-sS', '--fail', '-D', '-', '-o', '/dev/null', '-X', 'POST', ...headers],
      ...[
        '-H',
        `Upload-Length: ${size}`,
        '-H',
        `Upload-Metadata: ${metadata}`,
        `${credentials.url}/api/v1/uploads/tus`,
      ],
    ]);
    const location = /^location:\s*(\S+)/im.exec(creation.stdout)?.[1];
    if (!location) throw new Error(`tus creation with curl named no upload: ${creation.stdout}`);
    await run('curl', [
      ...['-sS', '--fail', '-o', '/dev/null', '-X', 'PATCH', ...headers, '-H', 'Upload-Offset: 0'],
      ...['-H', 'Content-Type: application/offset+octet-stream', '-T', file, new URL(location, credentials.url).href],
    ]);
  };
  try {
    for (const size of SIZES) {
      const iso = await buildIso(join(work, `bench-${size / MiB}.iso`), { ...REAL_MEDIA.debian12, padBytes: size });
      const bytes = readFileSync(iso).length;
      const curlTimes: number[] = [];
      const ourTimes: number[] = [];
      const transferTimes: number[] = [];
      const curlTusTimes: number[] = [];
      for (let round = 0; round < ROUNDS; round++) {
        const name = `bench-${size / MiB}-${round}.iso`;
        let start = performance.now();
        await run('curl', ['-sS', '--fail', '-T', iso, `${putUrl}/${name}`]);
        curlTimes.push(performance.now() - start);

        start = performance.now();
        await run(
          process.execPath,
          [QUANTIX, 'images', 'upload', iso, '--pool', 'local', '--name', name, '--no-wait', '--json'],
          { cwd: work, env: { ...process.env, XDG_CACHE_HOME: join(work, 'cache') }, maxBuffer: 16 * MiB },
        );
        ourTimes.push(performance.now() - start);
        await settled(name);

        const alone = await run(process.execPath, [
          join(import.meta.dirname, '__fixtures__/tus-upload-once.mjs'),
          credentials.url,
          credentials.token,
          iso,
          `alone-${name}`,
        ]);
        transferTimes.push((JSON.parse(alone.stdout) as { ms: number }).ms);
        await settled(`alone-${name}`);

        start = performance.now();
        await curlTusUpload(iso, bytes, `curl-${name}`);
        curlTusTimes.push(performance.now() - start);
        await settled(`curl-${name}`);
      }
      const mibPerSecond = (ms: number) => bytes / MiB / (ms / 1000);
      const ourBest = Math.min(...ourTimes);
      const curlBest = Math.min(...curlTimes);
      const transferBest = Math.min(...transferTimes);
      const curlTusBest = Math.min(...curlTusTimes);
      /** One line: our best time beside curl -T's, as MiB/s. */
      const line = (what: string, label: string, oursMs: number, target?: { ratio: number }) =>
        console.log(
          results.add({
            name: `upload ${size / MiB} MiB ISO, ${what}`,
            unit: 'MiB/s',
            better: 'higher',
            ours: { label, value: mibPerSecond(oursMs) },
            peer: { label: 'curl -T to a plain PUT', value: mibPerSecond(curlBest) },
            ...(target ? { target } : {}),
            details: { sizeBytes: bytes, rounds: ROUNDS, oursMs: Math.round(oursMs), peerMs: Math.round(curlBest) },
          }),
        );
      line('transfer', 'tus (tus-js-client → @tus/server, sha256, ISO read)', transferBest, { ratio: 0.5 });
      line('tus with curl as the client', 'curl: tus creation, then one PATCH (sha256, ISO read)', curlTusBest, {
        ratio: 0.5,
      });
      line('CLI command', 'quantix images upload (tus, sha256 both ends, ISO read)', ourBest);
    }
  } finally {
    await cp.stop();
    await peer.stop();
  }
  await results.save();
} finally {
  rmSync(work, { recursive: true, force: true });
}
