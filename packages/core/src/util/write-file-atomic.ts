import { lstat, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

let written = 0;

/** An aside older than this was left by a writer killed mid-write: no write of a file takes that long. */
const STALE_ASIDE_MS = 10 * 60_000;
/** What follows `<file>.` in the name of an aside: `<pid>.<counter>.tmp`. */
const ASIDE_SUFFIX = /^\d+\.\d+\.tmp$/;
/** Paths whose stale asides this process has swept: once each, not a directory read per write. */
const swept = new Set<string>();
const SWEPT_REMEMBERED = 10_000;

/**
 * Writes a file whole or not at all: the data goes to a file beside it, named for this process
 * and this call, and a rename puts it in place. A reader, or the next run after a process killed
 * mid-write, sees the old file or the new one, never half of either; two writers at once leave
 * one of their files, whole. `mode` (less the umask) is the file's whether or not it existed (`writeFile`
 * sets it only on a new file). Not a barrier against power loss: nothing is fsynced.
 * The first write of a path in a process removes the asides a killed writer left beside it.
 */
export async function writeFileAtomic(
  path: string,
  data: string | Uint8Array,
  options: { mode?: number } = {},
): Promise<void> {
  written += 1;
  const aside = `${path}.${process.pid}.${written}.tmp`;
  try {
    await writeFile(aside, data, options.mode === undefined ? {} : { mode: options.mode });
    await rename(aside, path);
  } catch (error) {
    await rm(aside, { force: true }).catch(() => undefined);
    throw error;
  }
  await sweepStaleAsides(path);
}

/** Removes the asides of `path` older than STALE_ASIDE_MS; a failure to is no failure of the write. */
async function sweepStaleAsides(path: string): Promise<void> {
  if (swept.has(path)) return;
  if (swept.size >= SWEPT_REMEMBERED) swept.clear();
  swept.add(path);
  const directory = dirname(path);
  const prefix = `${basename(path)}.`;
  const names = await readdir(directory).catch(() => [] as string[]);
  const cutoff = Date.now() - STALE_ASIDE_MS;
  for (const name of names) {
    if (!name.startsWith(prefix) || !ASIDE_SUFFIX.test(name.slice(prefix.length))) continue;
    const stale = join(directory, name);
    const info = await lstat(stale).catch(() => null);
    if (info?.isFile() && info.mtimeMs < cutoff) await rm(stale, { force: true }).catch(() => undefined);
  }
}
