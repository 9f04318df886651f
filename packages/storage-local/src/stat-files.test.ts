import { lstatSync } from 'node:fs';
import { mkdir, mkdtemp, realpath, rm, symlink, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listPoolFiles } from './directory.js';
import { closeStatHelper, type LocalStats, PARALLEL_STAT_MIN_FILES, statLocalFiles } from './stat-files.js';

// Real files in a temporary directory; the helper is a real worker thread.
let base: string;
const files: string[] = [];

beforeAll(async () => {
  base = await realpath(await mkdtemp(join(tmpdir(), 'quantix-stat-')));
  // Enough files that a list of them is shared with the helper, each with its own size and a
  // modification time with a sub-millisecond part (some before 1970, where rounding differs).
  for (let shelf = 0; shelf < 25; shelf++) {
    await mkdir(join(base, `shelf-${shelf}`));
    await Promise.all(
      Array.from({ length: 100 }, async (_, i) => {
        const n = shelf * 100 + i;
        const path = join(base, `shelf-${shelf}`, `disc-${n}.iso`);
        await writeFile(path, 'x'.repeat(n % 97));
        const seconds = (n % 2 === 0 ? 1_700_000_000 : -86_400) + n + 0.0004567 * (n % 13);
        await utimes(path, seconds, seconds);
        files[n] = path;
      }),
    );
  }
  await mkdir(join(base, 'a-directory'));
  await symlink(files[0] as string, join(base, 'a-link.iso'));
});

afterAll(async () => {
  await closeStatHelper();
  await rm(base, { recursive: true, force: true });
});

/**
 * statLocalFiles of a list the helper thread took part in. How much it takes depends on when it
 * gets a core (none, if this thread finishes first): this waits for a list it shared.
 */
async function sharedStats(paths: readonly string[]): Promise<LocalStats> {
  const deadline = Date.now() + 30_000;
  let stats = await statLocalFiles(paths, { parallelFrom: 0 });
  while (stats.byHelper === 0 && Date.now() < deadline) stats = await statLocalFiles(paths, { parallelFrom: 0 });
  expect(stats.byHelper, 'the helper thread stat part of the list').toBeGreaterThan(0);
  return stats;
}

/** What one lstat on this thread says of a path, in statLocalFiles' terms. */
function expected(path: string) {
  try {
    const info = lstatSync(path, { throwIfNoEntry: false });
    if (info === undefined) return { outcome: 'missing' };
    if (!info.isFile()) return { outcome: 'not-a-file' };
    return { outcome: 'file', size: info.size, modifiedMs: info.mtimeMs };
  } catch (error) {
    return { outcome: 'failed', error: (error as NodeJS.ErrnoException).code };
  }
}

describe('statLocalFiles', () => {
  const odd = () => [
    join(base, 'gone.iso'), // deleted since it was listed
    join(base, 'a-directory'),
    join(base, 'a-link.iso'), // not followed
    `${files[1]}/under-a-file.iso`, // ENOTDIR: a file where a directory was
    join(base, 'x'.repeat(300)), // a name longer than NAME_MAX
  ];

  it('says of every path what lstat says, whether or not the helper thread shares the list', async () => {
    const paths = [...odd(), ...files, ...odd()];
    expect(paths.length).toBeGreaterThanOrEqual(PARALLEL_STAT_MIN_FILES);
    const want = paths.map(expected);
    expect(want.slice(0, 5)).toEqual([
      { outcome: 'missing' },
      { outcome: 'not-a-file' },
      { outcome: 'not-a-file' },
      { outcome: 'failed', error: 'ENOTDIR' },
      { outcome: 'failed', error: 'ENAMETOOLONG' },
    ]);
    const said = (stats: LocalStats, list: readonly string[]) =>
      list.map((_, i) => {
        const outcome = stats.outcome(i);
        if (outcome === 'file') return { outcome, size: stats.size(i), modifiedMs: stats.modifiedMs(i) };
        return outcome === 'failed' ? { outcome, error: stats.error(i) } : { outcome };
      });
    expect(said(await statLocalFiles(paths, { parallelFrom: Number.POSITIVE_INFINITY }), paths)).toEqual(want);
    // Long enough that the helper takes chunks of it, wherever in the list they fall.
    const longList = Array.from({ length: 4 }, () => paths).flat();
    expect(said(await sharedStats(longList), longList)).toEqual(longList.map(expected));
  });

  it('shares a large list with the helper thread, and does a short one alone', async () => {
    const longList = Array.from({ length: 8 }, () => files).flat();
    const stats = await sharedStats(longList);
    expect(stats.byHelper).toBeLessThanOrEqual(longList.length);
    expect(longList.every((path, i) => stats.outcome(i) === 'file' && stats.size(i) === lstatSync(path).size)).toBe(
      true,
    );
    expect((await statLocalFiles(files.slice(0, 100))).byHelper).toBe(0);
  });

  it('lets the event loop run while it stats a long list, not only once the list is done', async () => {
    const longList = Array.from({ length: 8 }, () => files).flat();
    let turns = 0;
    let stopped = false;
    const tick = () => {
      if (stopped) return;
      turns += 1;
      setImmediate(tick);
    };
    setImmediate(tick);
    // On this thread alone, where the yielding is: the helper's part never blocks it.
    const stats = await statLocalFiles(longList, { parallelFrom: Number.POSITIVE_INFINITY });
    stopped = true;
    expect(stats.outcome(longList.length - 1)).toBe('file');
    expect(turns).toBeGreaterThanOrEqual(5);
  });

  it('does the whole list on this thread when the helper ends mid-way, and starts a new helper after', async () => {
    const listing = statLocalFiles(files, { parallelFrom: 0 });
    await closeStatHelper(); // the helper thread is terminated while it holds the list
    const stats = await listing;
    expect(stats.byHelper).toBe(0);
    expect(files.map((_, i) => [stats.outcome(i), stats.size(i)])).toEqual(
      files.map((path) => ['file', lstatSync(path).size]),
    );
    const again = await statLocalFiles(files, { parallelFrom: 0 });
    expect(again.modifiedMs(7)).toBe(lstatSync(files[7] as string).mtimeMs);
  });
});

describe('listPoolFiles of a pool large enough to share its stats', () => {
  it('lists every file with the size and date lstat gives, as the thread-pool listing does', async () => {
    const shared = await listPoolFiles(base, { content: 'iso', maxDepth: 2, blockingStat: true });
    const threaded = await listPoolFiles(base, { content: 'iso', maxDepth: 2, blockingStat: false });
    expect(shared.files).toHaveLength(files.length);
    expect(shared).toEqual(threaded);
    const sample = shared.files.find((f) => f.relPath === 'shelf-0/disc-13.iso');
    expect(sample).toEqual({
      relPath: 'shelf-0/disc-13.iso',
      sizeBytes: 13,
      modifiedAt: lstatSync(files[13] as string).mtime,
    });
    expect(shared.skipped).toEqual([{ relPath: 'a-link.iso', reason: 'symbolic link, not followed' }]);
  });
});
