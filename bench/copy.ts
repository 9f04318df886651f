/**
 * bench/copy — a ready image copied into another pool by POST /images/:id/copy, beside its
 * natural peers, in one run:
 *   - on one node (file.copy: clone or copy to a partial file, SHA-256, fsync, rename) beside
 *     `cp --reflink=auto` of the same file;
 *   - to another node (that node's resumable, verified download of GET /images/:id/content, which
 *     the control plane relays from the source's node) beside `curl -o` of the same file from a
 *     plain HTTP file server followed by `sha256sum`;
 *   - the source verified (POST /images/:id/verify: its node reads the file whole, file.hash)
 *     beside `sha256sum` of the same file (no target: the API round trip and the node request
 *     are what it adds).
 * The control plane and its node run all-in-one in this process (embedded PGlite, a local pool),
 * as `quantix up` runs them; the second node is a node daemon in this process too, as `quantix-node`
 * runs it. Times are from the copy's 202 to its row being ready (the API polled every 50 ms).
 *   targets: none on one node (ours hashes and fsyncs, cp does neither: `cp; sha256sum` is in the
 *   line's details); to another node ≤ 1.5x curl + sha256sum.
 * Full: a 64 MiB and a 1 GiB image. QUANTIX_BENCH_QUICK=1: 64 MiB only, one round.
 */
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { promisify } from 'node:util';
import { newToken, tokenDigest } from '@quantix/control-plane';
import { startNodeDaemon } from '@quantix/example-node-daemon';
import { pino } from 'pino';
import { startFileServer } from './lib/file-server.js';
import { benchApi, downloadReady, imageReady, poolActive, startImageSystem } from './lib/images.js';
import { benchResults } from './lib/results.js';

const run = promisify(execFile);
const results = benchResults('copy');
const quick = process.env.QUANTIX_BENCH_QUICK === '1';
const MiB = 1024 * 1024;
const SIZES = quick ? [64 * MiB] : [64 * MiB, 1024 * MiB];
const ROUNDS = quick ? 1 : 3;
const repoRoot = join(import.meta.dirname, '..');

await run('bash', [join(repoRoot, 'scripts/ensure-packages.sh'), 'curl', 'coreutils'], { timeout: 900_000 });

const work = mkdtempSync(join(tmpdir(), 'quantix-bench-copy-'));
// The source files are shared with bench/download and bench/export (made once, kept between runs).
const sourceDir = join(tmpdir(), 'quantix-bench-download-sources');

async function timed(work: () => Promise<unknown>): Promise<number> {
  const start = performance.now();
  await work();
  return performance.now() - start;
}

try {
  mkdirSync(sourceDir, { recursive: true });
  for (const size of SIZES) {
    const name = `bench-${size / MiB}MiB.img`;
    const file = join(sourceDir, name);
    const server = await startFileServer(file, size);
    const dataDir = join(work, `data-${size / MiB}`);
    const system = await startImageSystem({ dataDir, port: server.port, file: name, catalogId: 'bench-copy' });
    // A second node, dialling the control plane as a node daemon does.
    const pools = join(dataDir, 'pools');
    await system.quantix.repositories.nodes.create({ id: 'bench-n2', hostname: 'bench-n2' });
    const token = newToken();
    await system.quantix.repositories.nodes.setTokenDigest('bench-n2', tokenDigest(token));
    const second = await startNodeDaemon({
      urls: [system.url],
      nodeId: 'bench-n2',
      token,
      libvirtUri: null,
      poolRoots: [pools],
      logger: pino({ level: 'silent' }),
    });
    try {
      await second.connection.ready;
      const api = benchApi(system);
      const source = await downloadReady(api, 'bench-copy', 'local');
      const localNode = (await api('GET', '/pools/local')).nodeIds as string[];
      const expected = readFileSync(`${file}.SHA256SUMS`, 'utf8').split(' ')[0];
      const sourcePath = join(pools, 'local', (source.location as { relPath: string }).relPath);
      const ours = { local: [] as number[], remote: [] as number[], verify: [] as number[] };
      const peer = { local: [] as number[], remote: [] as number[], hashed: [] as number[], verify: [] as number[] };
      for (let round = 0; round < ROUNDS; round++) {
        // Fresh pools each round: a copy lands where no file is.
        for (const [id, nodeIds] of [
          [`same-${round}`, localNode],
          [`other-${round}`, ['bench-n2']],
        ] as const) {
          await api('POST', '/pools', {
            id,
            name: id,
            type: 'local',
            config: { path: join(pools, id), create: true },
            nodeIds,
          });
          await poolActive(api, id);
        }
        const copy = async (poolId: string) => {
          const image = await imageReady(api, await api('POST', `/images/${source.id}/copy`, { poolId }));
          if ((image.checksum as { value: string }).value !== expected) throw new Error('copy: checksum differs');
          return image;
        };
        peer.local.push(await timed(() => run('cp', ['--reflink=auto', sourcePath, join(work, 'cp.img')])));
        rmSync(join(work, 'cp.img'));
        peer.hashed.push(
          await timed(async () => {
            await run('cp', ['--reflink=auto', sourcePath, join(work, 'cp.img')]);
            await run('sha256sum', [join(work, 'cp.img')]);
          }),
        );
        rmSync(join(work, 'cp.img'));
        ours.local.push(await timed(() => copy(`same-${round}`)));
        peer.remote.push(
          await timed(async () => {
            const out = join(work, 'curl.img');
            await run('curl', ['-sS', '--fail', '-o', out, `http://127.0.0.1:${server.port}/${name}`]);
            const { stdout } = await run('sha256sum', [out]);
            if (stdout.split(' ')[0] !== expected) throw new Error('curl: checksum differs');
          }),
        );
        rmSync(join(work, 'curl.img'));
        ours.remote.push(await timed(() => copy(`other-${round}`)));
        peer.verify.push(await timed(() => run('sha256sum', [sourcePath])));
        ours.verify.push(
          await timed(async () => {
            const verified = await api('POST', `/images/${source.id}/verify`, {});
            if (verified.outcome !== 'matches') throw new Error(`verify: ${verified.outcome}`);
          }),
        );
      }
      const details = (o: number[], p: number[]) => ({
        sizeBytes: size,
        rounds: ROUNDS,
        oursMs: Math.round(Math.min(...o)),
        peerMs: Math.round(Math.min(...p)),
      });
      console.log(
        results.add({
          name: `copy ${size / MiB} MiB on one node`,
          unit: 'ms',
          better: 'lower',
          ours: {
            label: 'POST /images/:id/copy, same node (file.copy + SHA-256 + fsync)',
            value: Math.min(...ours.local),
          },
          peer: { label: 'cp --reflink=auto', value: Math.min(...peer.local) },
          details: { ...details(ours.local, peer.local), cpSha256sumMs: Math.round(Math.min(...peer.hashed)) },
        }),
      );
      console.log(
        results.add({
          name: `copy ${size / MiB} MiB to another node`,
          unit: 'ms',
          better: 'lower',
          ours: {
            label: 'POST /images/:id/copy, other node (verified download of the relayed content)',
            value: Math.min(...ours.remote),
          },
          peer: { label: 'curl -o from a plain HTTP file server; sha256sum', value: Math.min(...peer.remote) },
          target: { ratio: 1.5 },
          details: details(ours.remote, peer.remote),
        }),
      );
      console.log(
        results.add({
          name: `verify ${size / MiB} MiB`,
          unit: 'ms',
          better: 'lower',
          ours: {
            label: 'POST /images/:id/verify (its node reads the file whole, SHA-256)',
            value: Math.min(...ours.verify),
          },
          peer: { label: 'sha256sum of the file', value: Math.min(...peer.verify) },
          details: details(ours.verify, peer.verify),
        }),
      );
    } finally {
      await second.close();
      await system.close();
      await server.stop();
    }
  }
  await results.save();
} finally {
  rmSync(work, { recursive: true, force: true });
}
