import type { Dirent, Stats } from 'node:fs';
import type { PoolContentType } from '@quantix/core';

/**
 * How long after a directory last changed (its mtime or ctime) a read of it is trusted to stand
 * for it while its times stay the same. A change in the same clock tick as the read could leave
 * the times as they were; the kernel's tick is milliseconds, FAT's timestamps step by 2 s.
 */
export const SETTLED_DIRECTORY_MS = 3_000;

/** Pools whose last listing is kept; the oldest is forgotten beyond this (a pool since removed, say). */
const MAX_ROOTS = 64;

/** One directory's entries as a listing read them, with the stat taken just before. */
export interface DirectoryRead {
  dev: number;
  ino: number;
  mtimeMs: number;
  ctimeMs: number;
  entries: Dirent[];
  /**
   * The matching files of one content type found among the entries, as the listing stats them:
   * kept so that the next listing of that content builds no path of them again.
   */
  matched?: MatchedFiles;
}

export interface MatchedFiles {
  content: PoolContentType;
  /** Each file's path on disk, and its relPath in the pool, index by index. */
  paths: string[];
  relPaths: string[];
}

/**
 * The directories a pool's last listing read, so that the next listing reads again only those
 * that changed since: a warm scan of a pool where nothing moved is then its files' stats, without
 * a readdir per directory or a path built per file (as git's index spares it `readdir` of
 * untouched directories).
 *
 * A directory counts as unchanged while its device, inode, mtime and ctime are those stat'ed before
 * it was read. Adding, removing or renaming an entry sets its mtime and ctime; `touch -d` or
 * rsync putting the mtime back still moves the ctime, which no one can set. A read made within
 * `settledMs` of the directory's last change is not kept (see SETTLED_DIRECTORY_MS). Only for local
 * filesystems: on NFS the times come from the server's clock, not this one's.
 */
export class DirectoryReads {
  private readonly roots = new Map<string, Map<string, DirectoryRead>>();
  /** Directories the last listing took from here instead of reading them (what the tests check). */
  lastReused = 0;

  constructor(readonly settledMs: number = SETTLED_DIRECTORY_MS) {}

  /** The reads of `root`'s last listing (none if it has not been listed). */
  of(root: string): ReadonlyMap<string, DirectoryRead> | undefined {
    return this.roots.get(root);
  }

  /** Keeps a finished listing's reads as `root`'s, in place of the ones before. */
  keep(root: string, reads: Map<string, DirectoryRead>, reused: number): void {
    this.roots.delete(root);
    this.roots.set(root, reads);
    this.lastReused = reused;
    if (this.roots.size > MAX_ROOTS) this.roots.delete(this.roots.keys().next().value as string);
  }

  /** Whether `info`, stat'ed now, shows the directory as it was when `read` was made. */
  static unchanged(read: DirectoryRead | undefined, info: Stats): read is DirectoryRead {
    return (
      read !== undefined &&
      read.ino === info.ino &&
      read.dev === info.dev &&
      read.mtimeMs === info.mtimeMs &&
      read.ctimeMs === info.ctimeMs
    );
  }

  /** A read to keep, or null when the directory changed too shortly before `readAt` to trust it later. */
  settledRead(info: Stats, entries: Dirent[], readAt: number): DirectoryRead | null {
    if (readAt - Math.max(info.mtimeMs, info.ctimeMs) < this.settledMs) return null;
    return { dev: info.dev, ino: info.ino, mtimeMs: info.mtimeMs, ctimeMs: info.ctimeMs, entries };
  }
}
