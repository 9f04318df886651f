import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A real file system of a small size, mounted for a test. */
export interface SmallFilesystem {
  path: string;
  /** Unmounts it (lazily: another process that happens to look into it must not fail the test) and removes the folder. */
  unmount(): void;
}

/**
 * A tmpfs of `size` (`2m`, `24m`) mounted on a new folder (in `under`, default the system's
 * temporary directory): a disk that really fills, so writes fail with ENOSPC where a test needs
 * them to. Needs root, as CI has.
 */
export function mountSmallFilesystem(size: string, options: { under?: string } = {}): SmallFilesystem {
  const path = mkdtempSync(join(options.under ?? tmpdir(), 'quantix-small-fs-'));
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'quantix-test', path]);
  } catch (error) {
    rmSync(path, { recursive: true, force: true });
    throw error;
  }
  return {
    path,
    unmount() {
      execFileSync('umount', ['--lazy', path]);
      rmSync(path, { recursive: true, force: true });
    },
  };
}
