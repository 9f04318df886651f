/**
 * Sums of the profiles the benches write, where time or memory went, by place (a package, Node's
 * own code, the collector) and by function — the few lines every stop wrote again as scratch:
 *   - a CPU profile (`node --cpu-prof`; `QUANTIX_BENCH_CPU_PROF=<dir>` for `api` and `pool-sync`):
 *     self time of each sample, idle left out of the busy share;
 *   - a sampled-allocation profile (`.heapprofile`; `QUANTIX_BENCH_ALLOC_PROF=<file>` for
 *     `pool-sync`, collected objects included): bytes allocated by each frame.
 *
 *   node --import tsx bench/lib/profile-summary.ts <file> [--top N] [--last-ms N] [--callers NAME]
 *
 * `--last-ms N` keeps the samples of a CPU profile's last N ms (a bench's last phase: the warm
 * rounds of `iso-scan`, say). `--callers NAME` prints the stacks under which function NAME spent
 * its self time: which query's `writev`, which route's allocations.
 * A syscall's self time (`writev`, `writeUtf8String`) is wall time: on loopback the writer is
 * often descheduled for the reader it woke, so it is not all CPU of this process.
 */
import { readFileSync } from 'node:fs';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}

export interface CpuProfile {
  nodes: { id: number; callFrame: CallFrame; children?: number[] }[];
  startTime: number;
  endTime: number;
  samples: number[];
  /** Microseconds since the sample before (the first: since startTime). */
  timeDeltas: number[];
}

interface HeapNode {
  callFrame: CallFrame;
  selfSize: number;
  children: HeapNode[];
}

export interface HeapProfile {
  head: HeapNode;
}

export interface Share {
  name: string;
  /** Milliseconds (CPU profile) or bytes (allocation profile). */
  value: number;
}

/**
 * Where a frame's code lives: the npm package (`pg`, `zod`), the workspace package
 * (`@quantix/core`), the example app, Node's own code (`node`), or V8's pseudo-frames by name
 * (`(garbage collector)`, `(idle)`, `(program)`; a native function without one is `(native)`).
 */
export function placeOf({ url, functionName }: CallFrame): string {
  if (url === '') return functionName.startsWith('(') ? functionName : '(native)';
  const npm = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (npm) return npm[1] as string;
  const workspace = /\/(packages|examples)\/([^/]+)\//.exec(url);
  if (workspace) return workspace[1] === 'packages' ? `@quantix/${workspace[2]}` : `examples/${workspace[2]}`;
  if (url.startsWith('node:')) return 'node';
  if (url.includes('/bench/')) return 'bench';
  return url.split('/').slice(-2).join('/');
}

/** `function file:line`; V8's pseudo-frames and native functions (no file) by their name alone. */
const frameName = (frame: CallFrame) =>
  frame.url === ''
    ? frame.functionName || '(anonymous)'
    : `${frame.functionName || '(anonymous)'} ${frame.url.split('/').at(-1)}:${frame.lineNumber + 1}`;

/** A frame with its place in front, unless the place is the frame itself (`(garbage collector)`). */
const placedName = (frame: CallFrame) =>
  placeOf(frame) === frame.functionName ? frame.functionName : `${placeOf(frame)} ${frameName(frame)}`;

const top = (totals: Map<string, number>, count: number): Share[] =>
  [...totals]
    .map(([name, value]) => ({ name, value }))
    .sort((a, b) => b.value - a.value)
    .slice(0, count);

const add = (totals: Map<string, number>, key: string, value: number) =>
  totals.set(key, (totals.get(key) ?? 0) + value);

export interface CpuSummary {
  sampledMs: number;
  idleMs: number;
  busyMs: number;
  byPlace: Share[];
  byFunction: Share[];
  /** With `callers`: the stacks above that function (nearest first), by its self time under each. */
  callers: Share[];
}

export function summarizeCpuProfile(
  profile: CpuProfile,
  options: { top?: number; lastMs?: number; callers?: string; depth?: number } = {},
): CpuSummary {
  const count = options.top ?? 25;
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const parentOf = new Map<number, number>();
  for (const node of profile.nodes) for (const child of node.children ?? []) parentOf.set(child, node.id);
  const since = options.lastMs === undefined ? -Infinity : profile.endTime - options.lastMs * 1000;
  const places = new Map<string, number>();
  const functions = new Map<string, number>();
  const stacks = new Map<string, number>();
  let sampledMs = 0;
  let idleMs = 0;
  let at = profile.startTime;
  profile.samples.forEach((id, i) => {
    at += profile.timeDeltas[i] ?? 0;
    // A sample stands for the time until the next one.
    const ms = (profile.timeDeltas[i + 1] ?? 0) / 1000;
    const node = byId.get(id);
    if (at < since || !node) return;
    sampledMs += ms;
    if (node.callFrame.functionName === '(idle)') {
      idleMs += ms;
      return;
    }
    add(places, placeOf(node.callFrame), ms);
    add(functions, placedName(node.callFrame), ms);
    if (options.callers !== undefined && node.callFrame.functionName === options.callers) {
      const stack: string[] = [];
      for (
        let up = parentOf.get(node.id);
        up !== undefined && stack.length < (options.depth ?? 8);
        up = parentOf.get(up)
      ) {
        stack.push(frameName((byId.get(up) as (typeof profile.nodes)[number]).callFrame));
      }
      add(stacks, stack.join(' < '), ms);
    }
  });
  return {
    sampledMs,
    idleMs,
    busyMs: sampledMs - idleMs,
    byPlace: top(places, count),
    byFunction: top(functions, count),
    callers: top(stacks, count),
  };
}

export interface HeapSummary {
  totalBytes: number;
  byPlace: Share[];
  /** Each allocating frame with its nearest callers: `frame < caller < caller`. */
  byFrame: Share[];
}

export function summarizeHeapProfile(
  profile: HeapProfile,
  options: { top?: number; depth?: number } = {},
): HeapSummary {
  const count = options.top ?? 25;
  const depth = options.depth ?? 3;
  const places = new Map<string, number>();
  const frames = new Map<string, number>();
  let totalBytes = 0;
  // Iterative: an allocation stack can be deeper than the JavaScript stack allows recursion.
  const pending: { node: HeapNode; callers: string[] }[] = [{ node: profile.head, callers: [] }];
  for (let next = pending.pop(); next; next = pending.pop()) {
    const { node, callers } = next;
    const name = frameName(node.callFrame);
    if (node.selfSize > 0) {
      totalBytes += node.selfSize;
      add(places, placeOf(node.callFrame), node.selfSize);
      add(frames, [placedName(node.callFrame), ...callers.slice(0, depth)].join(' < '), node.selfSize);
    }
    for (const child of node.children) pending.push({ node: child, callers: [name, ...callers] });
  }
  return { totalBytes, byPlace: top(places, count), byFrame: top(frames, count) };
}

function main(argv: string[]): void {
  // Piped into `head`, which closes the pipe early: the rest is simply not wanted.
  process.stdout.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code !== 'EPIPE') throw error;
    process.exit(0);
  });
  const [file, ...rest] = argv;
  if (!file) {
    console.error(
      'usage: profile-summary.ts <file.cpuprofile|file.heapprofile> [--top N] [--last-ms N] [--callers NAME]',
    );
    process.exit(2);
  }
  const option = (flag: string) => {
    const at = rest.indexOf(flag);
    return at >= 0 ? rest[at + 1] : undefined;
  };
  const number = (flag: string) => (option(flag) === undefined ? undefined : Number(option(flag)));
  const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile | HeapProfile;
  const row = (value: string, share: string, name: string) => `${value.padStart(9)} ${share.padStart(6)}  ${name}`;
  if ('head' in profile) {
    const summary = summarizeHeapProfile(profile, { top: number('--top') ?? 25 });
    const mb = (bytes: number) => (bytes / 1e6).toFixed(1);
    const pct = (bytes: number) => `${((100 * bytes) / summary.totalBytes).toFixed(1)}%`;
    console.log(`${mb(summary.totalBytes)} MB allocated (sampled)\n\nby place (MB):`);
    for (const { name, value } of summary.byPlace) console.log(row(mb(value), pct(value), name));
    console.log('\nby frame, with its callers (MB):');
    for (const { name, value } of summary.byFrame) console.log(row(mb(value), pct(value), name));
    return;
  }
  const callers = option('--callers');
  const summary = summarizeCpuProfile(profile, {
    top: number('--top') ?? 25,
    ...(number('--last-ms') !== undefined ? { lastMs: number('--last-ms') } : {}),
    ...(callers !== undefined ? { callers } : {}),
  });
  const pct = (ms: number) => `${((100 * ms) / summary.busyMs).toFixed(1)}%`;
  console.log(
    `${summary.busyMs.toFixed(0)} ms busy of ${summary.sampledMs.toFixed(0)} ms sampled (idle ${summary.idleMs.toFixed(0)})`,
  );
  if (callers !== undefined) {
    console.log(`\n${callers}: its self time by the stack above it (ms, % of busy):`);
    for (const { name, value } of summary.callers) console.log(row(value.toFixed(0), pct(value), name));
    return;
  }
  console.log('\nself time by place (ms, % of busy):');
  for (const { name, value } of summary.byPlace) console.log(row(value.toFixed(0), pct(value), name));
  console.log('\nself time by function:');
  for (const { name, value } of summary.byFunction) console.log(row(value.toFixed(0), pct(value), name));
}

if (import.meta.url === `file://${process.argv[1]}`) main(process.argv.slice(2));
