import { lstatSync } from 'node:fs';
import { Worker } from 'node:worker_threads';

/**
 * lstat of many files on a local filesystem, split between this thread and one helper thread.
 *
 * A warm scan is mostly lstat: a few microseconds each, nearly all of them in the kernel, so
 * 20,000 files cost one thread as long as `find` takes for its whole listing. Two threads claim
 * chunks of the same list from a shared counter, so a helper that gets no CPU (both cores busy)
 * leaves its chunks to this thread instead of holding the listing up. Measured on 20,000 files
 * (2 cores): 59 ms against 91 ms on one thread, `find -printf` 77 ms; with both cores loaded,
 * no worse than one thread (see bench/README.md).
 *
 * The helper is started on the first large list, stays for the next (a scan is followed by
 * scans), and ends after a minute without work. It never keeps the process alive while idle.
 */

/** Below this many files the helper's start-up and message cost more than it saves. */
export const PARALLEL_STAT_MIN_FILES = 2_000;
/** Files a thread claims at a time: small enough that a descheduled helper holds up little. */
const CHUNK = 128;
/** Chunks this thread stats before letting its event loop run (a few milliseconds of lstat). */
const CHUNKS_PER_TURN = 16;
const IDLE_MS = 60_000;

// Outcome codes stored in place of a size; a size is never negative.
const MISSING = -1;
const NOT_A_FILE = -2;
const FAILED = -3;

export type LocalStatOutcome = 'file' | 'missing' | 'not-a-file' | 'failed';

/** The lstat of each path, by its index in the list that was given. */
export class LocalStats {
  constructor(
    private readonly values: Float64Array,
    private readonly errors: ReadonlyMap<number, string>,
    /** How many of the paths the helper thread stat'ed (0 when this thread did them all). */
    readonly byHelper: number,
  ) {}

  outcome(index: number): LocalStatOutcome {
    const value = this.values[2 * index] as number;
    if (value >= 0) return 'file';
    return value === MISSING ? 'missing' : value === NOT_A_FILE ? 'not-a-file' : 'failed';
  }

  size(index: number): number {
    return this.values[2 * index] as number;
  }

  /** Milliseconds since the epoch, as `Stats.mtimeMs` (sub-millisecond fraction included). */
  modifiedMs(index: number): number {
    return this.values[2 * index + 1] as number;
  }

  /** The error code of a 'failed' lstat (EACCES, ENAMETOOLONG…). */
  error(index: number): string {
    return this.errors.get(index) ?? 'error';
  }
}

export interface StatLocalFilesOptions {
  /** Lists at least this long share the work with the helper thread. */
  parallelFrom?: number;
}

/**
 * lstat of every path (symbolic links are not followed: a link is 'not-a-file'). ENOENT is
 * 'missing' (deleted since it was listed); any other error is 'failed' with its code.
 */
export async function statLocalFiles(
  paths: readonly string[],
  options: StatLocalFilesOptions = {},
): Promise<LocalStats> {
  const shared = statTable(paths.length);
  const helped =
    paths.length >= (options.parallelFrom ?? PARALLEL_STAT_MIN_FILES)
      ? helper.start(paths, shared.next, shared.values)
      : null;
  await statAll(paths, shared);
  const outcome = helped ? await helped : null;
  if (outcome === 'lost') {
    // The helper ended mid-way: what it had claimed may be unwritten. This thread does the whole
    // list again, into a table of its own (the helper may still be finishing a chunk).
    const own = statTable(paths.length);
    await statAll(paths, own);
    return new LocalStats(own.values, own.errors, 0);
  }
  for (const [index, code] of outcome?.errors ?? []) shared.errors.set(index, code);
  return new LocalStats(shared.values, shared.errors, outcome?.count ?? 0);
}

const NO_THROW = { throwIfNoEntry: false } as const;

/** Where the threads write: outcomes (size and mtimeMs per path), the next chunk to claim, this thread's errors. */
interface StatTable {
  values: Float64Array;
  next: Int32Array;
  errors: Map<number, string>;
}

const statTable = (count: number): StatTable => ({
  values: new Float64Array(new SharedArrayBuffer(16 * Math.max(1, count))),
  next: new Int32Array(new SharedArrayBuffer(4)),
  errors: new Map(),
});

/**
 * This thread's part: chunks until none are left to claim, letting the event loop run between
 * turns (a node's messages wait a few milliseconds at most, not the whole list).
 */
async function statAll(paths: readonly string[], table: StatTable): Promise<void> {
  while (!statChunks(paths, table, CHUNKS_PER_TURN)) await new Promise((resolve) => setImmediate(resolve));
}

/** Claims up to `chunks` chunks of `paths`, writing each outcome; true when none are left. */
function statChunks(paths: readonly string[], { next, values, errors }: StatTable, chunks: number): boolean {
  const count = paths.length;
  for (let claimed = 0; claimed < chunks; claimed++) {
    const start = Atomics.add(next, 0, CHUNK);
    if (start >= count) return true;
    const end = Math.min(count, start + CHUNK);
    for (let i = start; i < end; i++) {
      try {
        const info = lstatSync(paths[i] as string, NO_THROW);
        if (info === undefined) values[2 * i] = MISSING;
        else if (!info.isFile()) values[2 * i] = NOT_A_FILE;
        else {
          values[2 * i] = info.size;
          values[2 * i + 1] = info.mtimeMs;
        }
      } catch (error) {
        values[2 * i] = FAILED;
        errors.set(i, (error as NodeJS.ErrnoException).code ?? 'error');
      }
    }
  }
  return false;
}

/**
 * The helper thread's code: the same loop as statChunks. It is given as source (CommonJS, as
 * an eval'd worker runs) so that it runs alike from the built package and from the TypeScript
 * sources under the test runner, with no file of its own to locate.
 */
const HELPER_SOURCE = `
const { parentPort } = require('node:worker_threads');
const { lstatSync } = require('node:fs');
const NO_THROW = { throwIfNoEntry: false };
parentPort.on('message', ({ job, paths, next, values }) => {
  const errors = [];
  let done = 0;
  const count = paths.length;
  for (let start = Atomics.add(next, 0, ${CHUNK}); start < count; start = Atomics.add(next, 0, ${CHUNK})) {
    const end = Math.min(count, start + ${CHUNK});
    done += end - start;
    for (let i = start; i < end; i++) {
      try {
        const info = lstatSync(paths[i], NO_THROW);
        if (info === undefined) values[2 * i] = ${MISSING};
        else if (!info.isFile()) values[2 * i] = ${NOT_A_FILE};
        else {
          values[2 * i] = info.size;
          values[2 * i + 1] = info.mtimeMs;
        }
      } catch (error) {
        values[2 * i] = ${FAILED};
        errors.push([i, error.code || 'error']);
      }
    }
  }
  parentPort.postMessage({ job, errors, count: done });
});
`;

/** The helper's errors (index, code) and how many paths it stat'ed, or 'lost' if it ended first. */
type HelperOutcome = { errors: [number, string][]; count: number } | 'lost';

/** The one helper thread of the process, started when first needed. */
class StatHelper {
  private worker: Worker | null = null;
  private readonly pending = new Map<number, (outcome: HelperOutcome) => void>();
  private jobs = 0;
  private idle: NodeJS.Timeout | null = null;

  /** Hands the list to the helper; null if no thread can be started (this thread does it all). */
  start(paths: readonly string[], next: Int32Array, values: Float64Array): Promise<HelperOutcome> | null {
    const worker = this.worker ?? this.spawn();
    if (!worker) return null;
    if (this.idle) clearTimeout(this.idle);
    this.idle = null;
    const job = ++this.jobs;
    const done = new Promise<HelperOutcome>((resolve) => this.pending.set(job, resolve));
    // Held open while it has work: a caller awaiting it must not see the process exit first.
    worker.ref();
    worker.postMessage({ job, paths, next, values });
    return done;
  }

  /** Ends the helper thread now (jobs under way are finished by their callers' threads). */
  async close(): Promise<void> {
    const worker = this.worker;
    this.worker = null;
    if (this.idle) clearTimeout(this.idle);
    this.idle = null;
    this.settleAll('lost');
    await worker?.terminate();
  }

  private spawn(): Worker | null {
    let worker: Worker;
    try {
      worker = new Worker(HELPER_SOURCE, { eval: true, name: 'quantix-stat' });
    } catch {
      return null;
    }
    worker.unref();
    // A worker closed before (its jobs settled then) says nothing of the current one's jobs.
    worker.on('message', ({ job, ...outcome }: { job: number; errors: [number, string][]; count: number }) => {
      if (this.worker !== worker) return;
      this.pending.get(job)?.(outcome);
      this.pending.delete(job);
      if (this.pending.size === 0) this.rest(worker);
    });
    const lost = () => {
      if (this.worker !== worker) return;
      this.worker = null;
      this.settleAll('lost');
    };
    worker.on('error', lost);
    worker.on('exit', lost);
    this.worker = worker;
    return worker;
  }

  private rest(worker: Worker) {
    worker.unref();
    this.idle = setTimeout(() => void this.close(), IDLE_MS);
    this.idle.unref();
  }

  private settleAll(outcome: HelperOutcome) {
    for (const resolve of this.pending.values()) resolve(outcome);
    this.pending.clear();
  }
}

const helper = new StatHelper();

/** Ends the helper thread of statLocalFiles, if one runs (a later large list starts another). */
export function closeStatHelper(): Promise<void> {
  return helper.close();
}
