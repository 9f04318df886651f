/**
 * bench/pool-scan — listing the ISOs of a directory pool through @quantix/storage-local, beside
 * `find DIR -type f -name '*.iso' -printf '%s %T@ %p\n'` and libvirt's `virsh pool-refresh` +
 * `vol-list` on the same directory, in one run. Targets: within 1.5× of find, faster than libvirt.
 *   20,000 files, 2,000 of them ISOs, in a nested tree (QUANTIX_BENCH_QUICK=1: 2,000 and 200).
 * libvirt: qemu:///system when its daemon answers, else the daemon-less test:///default driver
 * (said in the output: that driver does not read the directory, so its figure is only virsh's
 * own cost — a lower bound for libvirt). Needs the packages built (npx turbo run build).
 */
import { execFile, execFileSync } from 'node:child_process';
import { closeSync, ftruncateSync, openSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { promisify } from 'node:util';
import { LocalStorageBackend } from '@quantix/storage-local';
import { testPool } from '@quantix/storage-local/testing';
import { benchResults } from './lib/results.js';
import { median } from './lib/stats.js';

const run = promisify(execFile);
const results = benchResults('pool-scan');
const quick = process.env.QUANTIX_BENCH_QUICK === '1';
const FILES = quick ? 2_000 : 20_000;
const ISOS = FILES / 10;
const ROUNDS = quick ? 3 : 7;
/** Files per leaf directory, one in ten an ISO; the pool's top level holds as many again. */
const PER_DIR = 100;

/** A nested tree: vendor-N/release-M/arch-K leaves of 100 files, plus 100 files at the top. */
async function buildPool(root: string): Promise<number> {
  const extensions = ['qcow2', 'img', 'txt', 'sha256', 'raw', 'log', 'xml', 'json', 'iso.partial'];
  const dirs = [root];
  for (let leaf = 0; dirs.length * PER_DIR < FILES; leaf++) {
    dirs.push(
      join(root, `vendor-${leaf % 10}`, `release-${Math.floor(leaf / 10) % 10}`, `arch-${Math.floor(leaf / 100)}`),
    );
  }
  let n = 0;
  for (const dir of dirs) {
    await mkdir(dir, { recursive: true });
    for (let i = 0; i < PER_DIR; i++, n++) {
      const iso = i % 10 === 0;
      const name = iso ? `image-${n}.iso` : `file-${n}.${extensions[i % extensions.length]}`;
      // Sparse files of varied sizes: nothing to read, but sizes to report. Sync: setup only.
      const fd = openSync(join(dir, name), 'w');
      if (iso) ftruncateSync(fd, 1_000_000 + n * 4096);
      closeSync(fd);
    }
  }
  return dirs.length;
}

/** The first libvirt URI that answers, installing virsh if it is missing. */
async function libvirtUri(): Promise<{ uri: string; note: string } | { uri: null; note: string }> {
  const hasVirsh = () => {
    try {
      execFileSync('virsh', ['--version'], { stdio: 'ignore' });
      return true;
    } catch {
      return false;
    }
  };
  if (!hasVirsh()) {
    console.log('virsh is missing; installing libvirt-clients');
    try {
      execFileSync('apt-get', ['install', '-y', '-qq', '--no-install-recommends', 'libvirt-clients'], {
        stdio: 'ignore',
        env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
      });
    } catch {
      // Reported below as "not available".
    }
    if (!hasVirsh()) return { uri: null, note: 'virsh is not installed and could not be installed' };
  }
  try {
    await run('virsh', ['-c', 'qemu:///system', 'uri'], { timeout: 5_000 });
    return { uri: 'qemu:///system', note: 'libvirt qemu:///system (libvirtd storage driver)' };
  } catch {
    return {
      uri: 'test:///default',
      note: "libvirtd is not running: used virsh -c test:///default, whose driver does not read the directory, so this is virsh's own cost, a lower bound for libvirt",
    };
  }
}

const root = await mkdtemp(join(tmpdir(), 'quantix-pool-scan-'));
const poolName = `quantix-bench-${process.pid}`;
let virshUri: string | null = null;
try {
  const started = performance.now();
  const directories = await buildPool(root);
  console.log(
    `pool-scan: built ${FILES.toLocaleString('en')} files (${ISOS.toLocaleString('en')} ISOs) in ${directories} directories under ${root} in ${Math.round(performance.now() - started)} ms${quick ? ' (quick mode)' : ''}`,
  );

  const backend = new LocalStorageBackend();
  const pool = testPool('local', { path: root }, { id: 'bench' });

  const libvirt = await libvirtUri();
  virshUri = libvirt.uri;
  // The test driver keeps nothing between connections, so there each run defines the pool first.
  const createPool = `pool-create-as --name ${poolName} --type dir --target ${root}`;
  const persistent = virshUri === 'qemu:///system';
  if (virshUri && persistent) await run('virsh', ['-c', virshUri, createPool]);

  const quantixRun = async () => (await backend.list({ pool, content: 'iso' })).files.length;
  const findRun = async () => {
    const { stdout } = await run('find', [root, '-type', 'f', '-name', '*.iso', '-printf', '%s %T@ %p\n'], {
      maxBuffer: 64 * 1024 * 1024,
    });
    return stdout.split('\n').length - 1;
  };
  // One virsh process running both commands: the cheapest way to ask libvirt.
  const virshRun = async () => {
    const { stdout } = await run(
      'virsh',
      [
        '-c',
        virshUri as string,
        `${persistent ? '' : `${createPool}; `}pool-refresh ${poolName}; vol-list ${poolName} --details`,
      ],
      { maxBuffer: 64 * 1024 * 1024 },
    );
    return stdout.split('\n').filter((l) => l.startsWith(' ') && l.includes(root)).length;
  };

  const contenders: { name: string; fn: () => Promise<number>; times: number[]; count: number }[] = [
    { name: 'quantix', fn: quantixRun, times: [], count: 0 },
    { name: 'find', fn: findRun, times: [], count: 0 },
  ];
  if (virshUri) contenders.push({ name: 'virsh', fn: virshRun, times: [], count: 0 });

  for (const c of contenders) c.count = await c.fn(); // warm-up: page cache and JIT
  for (let round = 0; round < ROUNDS; round++) {
    for (const c of contenders) {
      const t0 = performance.now();
      await c.fn();
      c.times.push(performance.now() - t0);
    }
  }

  const [ours, find, virsh] = contenders.map((c) => median(c.times)) as [number, number, number | undefined];
  const describe: Record<string, string> = {
    quantix: "LocalStorageBackend.list({ content: 'iso' })",
    find: "find -type f -name '*.iso' -printf '%s %T@ %p\\n'",
    virsh: 'virsh pool-refresh + vol-list --details',
  };
  for (const c of contenders) {
    const what = c.name === 'virsh' ? 'volumes (libvirt dir pools are not recursive: top level only)' : 'ISOs';
    console.log(
      `  ${c.name.padEnd(8)} ${describe[c.name]?.padEnd(52)} ${median(c.times).toFixed(1).padStart(8)} ms  (median of ${ROUNDS}; ${c.count} ${what})`,
    );
  }
  const findCount = contenders[1]?.count;
  if (contenders[0]?.count !== findCount) {
    console.log(`  WARNING: quantix listed ${contenders[0]?.count} ISOs, find ${findCount}`);
  }
  console.log(`  virsh: ${libvirt.note}`);
  const ourLabel = 'LocalStorageBackend.list';
  console.log(
    results.add({
      name: `list ${ISOS} ISOs of ${FILES} files`,
      unit: 'ms',
      better: 'lower',
      ours: { label: ourLabel, value: ours },
      peer: { label: 'find -printf', value: find },
      target: { ratio: 1.5 },
      details: { files: FILES, isos: ISOS, directories, rounds: ROUNDS },
    }),
  );
  if (virsh !== undefined) {
    console.log(
      results.add({
        name: `list vs libvirt, ${FILES} files`,
        unit: 'ms',
        better: 'lower',
        ours: { label: ourLabel, value: ours },
        peer: {
          label: virshUri === 'test:///default' ? 'virsh (test driver)' : 'virsh refresh + vol-list',
          value: virsh,
        },
        target: { ratio: 1 },
        details: { libvirt: libvirt.note },
      }),
    );
  } else {
    console.log(`  virsh n/a (${libvirt.note})`);
  }
  await results.save();
} finally {
  if (virshUri === 'qemu:///system') {
    await run('virsh', ['-c', virshUri, 'pool-destroy', poolName]).catch(() => undefined);
  }
  await rm(root, { recursive: true, force: true });
}
