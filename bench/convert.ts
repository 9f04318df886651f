/**
 * bench/convert — image import (QemuImgConverter: header checks, qemu-img info, convert with
 * progress, qemu-img info + check of the result, fsync, rename, SHA-256 of the result) beside
 * its natural peer, `qemu-img convert -f vmdk -O qcow2` run by hand on the same file; and an
 * xz-compressed image beside `xz -dk` then `qemu-img convert`. Rounds interleaved, best of each.
 *   target: throughput ≥ 0.8× `qemu-img convert; sha256sum` (a verified import needs the result's
 *   hash for its row; the checks cost at most 25 % beyond that). The bare convert is printed too.
 * Full: a 1 GiB streamOptimized VMDK (512 MiB of random data). QUANTIX_BENCH_QUICK=1: 64 MiB.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { promisify } from 'node:util';
import { QemuImgConverter } from '@quantix/images-cloud';
import { benchResults } from './lib/results.js';

const run = promisify(execFile);
const results = benchResults('convert');
const quick = process.env.QUANTIX_BENCH_QUICK === '1';
const MiB = 1024 * 1024;
const SIZE = quick ? 64 * MiB : 1024 * MiB;
const ROUNDS = quick ? 2 : 3;
const repoRoot = join(import.meta.dirname, '..');

await run('bash', [join(repoRoot, 'scripts/ensure-packages.sh'), 'qemu-utils', 'xz-utils'], { timeout: 900_000 });

const work = mkdtempSync(join(tmpdir(), 'quantix-bench-convert-'));
try {
  // Half random data, half holes: what a real disk image looks like to qemu-img.
  const raw = join(work, 'disk.raw');
  writeFileSync(raw, Buffer.alloc(0));
  await run('truncate', ['-s', String(SIZE), raw]);
  const chunk = 8 * MiB;
  const handle = await open(raw, 'r+');
  for (let offset = 0; offset < SIZE; offset += 2 * chunk) await handle.write(randomBytes(chunk), 0, chunk, offset);
  await handle.close();
  const vmdk = join(work, 'disk.vmdk');
  await run('qemu-img', ['convert', '-q', '-f', 'raw', '-O', 'vmdk', '-o', 'subformat=streamOptimized', raw, vmdk]);
  const xz = join(work, 'disk.raw.xz');
  await run('xz', ['-k', '-0', '-T1', raw]);
  rmSync(raw);

  const converter = new QemuImgConverter();
  const times = {
    ours: [] as number[],
    peer: [] as number[],
    peerHashed: [] as number[],
    oursXz: [] as number[],
    peerXz: [] as number[],
  };
  for (let round = 0; round < ROUNDS; round++) {
    const peerOut = join(work, 'peer.qcow2');
    let start = performance.now();
    await run('qemu-img', ['convert', '-f', 'vmdk', '-O', 'qcow2', vmdk, peerOut]);
    times.peer.push(performance.now() - start);
    // The floor of a verified import: the same conversion, then the hash a row records.
    await run('sha256sum', [peerOut]);
    times.peerHashed.push(performance.now() - start);
    rmSync(peerOut);

    const ourOut = join(work, 'ours.qcow2');
    start = performance.now();
    const result = await converter.importDisk({ sourcePath: vmdk, destinationPath: ourOut });
    times.ours.push(performance.now() - start);
    if (result.virtualSizeBytes !== SIZE) throw new Error('converter: wrong virtual size');
    rmSync(ourOut);

    // The compressed peer: decompress with xz (keeping the source), then convert.
    start = performance.now();
    // The paths are positional arguments of a fixed script, never part of it.
    await run('bash', ['-c', 'xz -dc -T1 "$1" > "$2"', 'xz-decompress', xz, join(work, 'peer.raw')]);
    await run('qemu-img', ['convert', '-f', 'raw', '-O', 'qcow2', join(work, 'peer.raw'), peerOut]);
    await run('sha256sum', [peerOut]);
    times.peerXz.push(performance.now() - start);
    rmSync(peerOut);
    rmSync(join(work, 'peer.raw'), { force: true });

    start = performance.now();
    const fromXz = await converter.importDisk({ sourcePath: xz, destinationPath: ourOut });
    times.oursXz.push(performance.now() - start);
    if (fromXz.compression !== 'xz' || fromXz.virtualSizeBytes !== SIZE) throw new Error('converter: wrong xz result');
    rmSync(ourOut);
  }
  const mibPerSecond = (ms: number) => SIZE / MiB / (ms / 1000);
  const label = `${SIZE / MiB} MiB`;
  const ours = mibPerSecond(Math.min(...times.ours));
  const oursLabel = 'QemuImgConverter (checks, convert, verify, fsync, sha256)';
  console.log(
    results.add({
      name: `import ${label} VMDK → qcow2`,
      unit: 'MiB/s',
      better: 'higher',
      ours: { label: oursLabel, value: ours },
      peer: { label: 'qemu-img convert by hand', value: mibPerSecond(Math.min(...times.peer)) },
      details: { sizeBytes: SIZE, rounds: ROUNDS },
    }),
  );
  console.log(
    results.add({
      name: `import ${label} VMDK → qcow2, hashed`,
      unit: 'MiB/s',
      better: 'higher',
      ours: { label: oursLabel, value: ours },
      peer: { label: 'qemu-img convert; sha256sum', value: mibPerSecond(Math.min(...times.peerHashed)) },
      target: { ratio: 0.8 },
      details: { sizeBytes: SIZE, rounds: ROUNDS },
    }),
  );
  console.log(
    results.add({
      name: `import ${label} raw.xz → qcow2`,
      unit: 'MiB/s',
      better: 'higher',
      ours: {
        label: 'QemuImgConverter (xz, checks, convert, verify, sha256)',
        value: mibPerSecond(Math.min(...times.oursXz)),
      },
      peer: { label: 'xz -dc > file; qemu-img convert; sha256sum', value: mibPerSecond(Math.min(...times.peerXz)) },
      details: { sizeBytes: SIZE, rounds: ROUNDS },
    }),
  );
  await results.save();
} finally {
  rmSync(work, { recursive: true, force: true });
}
