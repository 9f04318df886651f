import { rename, rm, writeFile } from 'node:fs/promises';

let written = 0;

/**
 * Writes a file whole or not at all: the data goes to a file beside it, named for this process
 * and this call, and a rename puts it in place. A reader, or the next run after a process killed
 * mid-write, sees the old file or the new one, never half of either; two writers at once leave
 * one of their files, whole. `mode` (less the umask) is the file's whether or not it existed (`writeFile`
 * sets it only on a new file). Not a barrier against power loss: nothing is fsynced.
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
}
