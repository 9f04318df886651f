import { randomUUID } from 'node:crypto';
import { constants, type Dirent, lstatSync, type Stats, statSync } from 'node:fs';
import { lstat, mkdir, open, readdir, rmdir, stat, statfs, unlink } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import {
  ErrorCode,
  isQuantixError,
  type PoolContentType,
  type PoolFile,
  type PoolListing,
  type PoolStatus,
  QuantixError,
  VM_FILES_DIRECTORY,
} from '@quantix/core';
import { contentMatcher, isTemporaryName } from './content.js';
import { type DirectoryRead, DirectoryReads, type MatchedFiles } from './directory-reads.js';
import { resolveInPool } from './paths.js';
import { statLocalFiles } from './stat-files.js';

/** Directories read at once by a listing: a few more than libuv's four threads, to keep them busy. */
const LIST_CONCURRENCY = 8;

export interface ListPoolFilesOptions {
  content: PoolContentType;
  /** Directory levels below the root to descend; 0 lists the root only. */
  maxDepth: number;
  signal?: AbortSignal;
  /**
   * Stat matching files synchronously once the directories are read (statLocalFiles: this thread
   * and a helper thread). On a local filesystem that is several times faster than a thread-pool
   * round trip per file (the difference between keeping up with `find` and not) and blocks the
   * event loop a few milliseconds at a time; on a network filesystem a hung server would block
   * the whole process. Default 'auto': blocking unless statfs says the root is on a network
   * filesystem.
   */
  blockingStat?: boolean | 'auto';
  /**
   * The directories of this pool's last listing: those unchanged since are not read again. Used
   * with blocking stats only (a local filesystem, whose times come from this machine's clock).
   */
  reads?: DirectoryReads;
}

interface PendingDirectory {
  path: string;
  /** '' for the root, else 'a/b'. */
  relPath: string;
  depth: number;
}

const errno = (error: unknown): string => (error as NodeJS.ErrnoException).code ?? 'error';

/**
 * Lists the files of one content type under `root`, recursively to `maxDepth`, with size and
 * modification time. Directory entries come from readdir's file types (no stat per entry, as
 * `find -type f` does); only matching files are stat'ed, several directories are read at once.
 * Given the pool's `reads`, a directory unchanged since the last listing is not read again, nor
 * its matching files' paths built again (they are still stat'ed: a file rewritten in place
 * changes no directory).
 * Temporary and hidden entries are ignored, and so is the VM-files directory at the root (`vms/`:
 * each VM's disk and cloud-init seed belong to that VM, never to the images). Symbolic links are
 * not followed (a link could leave the pool or loop), and directories that are too deep or
 * unreadable are reported in `skipped`.
 * Files come sorted by relPath.
 */
export async function listPoolFiles(root: string, options: ListPoolFilesOptions): Promise<PoolListing> {
  const matches = contentMatcher(options.content);
  const files: PoolFile[] = [];
  const skipped: PoolListing['skipped'] = [];
  const limit = limiter(LIST_CONCURRENCY);
  // Matching files of a blocking listing, stat'ed all at once after the walk.
  const toStat: { paths: string[]; relPaths: string[] } = { paths: [], relPaths: [] };
  const blockingStat =
    options.blockingStat === 'auto' || options.blockingStat === undefined
      ? !(await isOnNetworkFilesystem(root))
      : options.blockingStat;
  // The pool's kept reads: the last listing's, and this one's, kept for the next once it has finished.
  const reads =
    blockingStat && options.reads
      ? { kept: options.reads, last: options.reads.of(root), next: new Map<string, DirectoryRead>() }
      : undefined;
  let reused = 0;

  /**
   * A directory's entries: as last read while it is unchanged since, else read now; with the read
   * kept for the next listing (none if it is not to be kept).
   */
  const entriesOf = async (dir: PendingDirectory): Promise<{ entries: Dirent[]; read?: DirectoryRead }> => {
    if (!reads) return { entries: await readdir(dir.path, { withFileTypes: true }) };
    const readAt = Date.now();
    // The root may be a link to the pool's directory; anything below is entered only as a directory.
    const info = statDirectory(dir.path, dir.depth === 0);
    const last = reads.last?.get(dir.path);
    if (info && DirectoryReads.unchanged(last, info)) {
      reused += 1;
      reads.next.set(dir.path, last);
      return { entries: last.entries, read: last };
    }
    const entries = await readdir(dir.path, { withFileTypes: true });
    const read = info ? reads.kept.settledRead(info, entries, readAt) : null;
    if (!read) return { entries };
    reads.next.set(dir.path, read);
    return { entries, read };
  };

  /** Reads one directory, stats its matching files, and returns its subdirectories to descend. */
  const visit = async (dir: PendingDirectory): Promise<PendingDirectory[]> => {
    let entries: Dirent[];
    let read: DirectoryRead | undefined;
    try {
      ({ entries, read } = await entriesOf(dir));
    } catch (error) {
      if (dir.relPath === '') throw unavailable(root, error);
      if (errno(error) === 'ENOENT' && isUndecodable(dir.relPath))
        skipped.push({ relPath: dir.relPath, reason: NOT_UTF8 });
      else skipped.push({ relPath: dir.relPath, reason: `unreadable (${errno(error)})` });
      return [];
    }
    const subdirectories: PendingDirectory[] = [];
    const stats: Promise<void>[] = [];
    // readdir names hold no '/': a concatenation is the join, without normalizing 20,000 paths.
    const prefix = dir.path.endsWith('/') ? dir.path : `${dir.path}/`;
    // The matching files of a directory as its kept read found them (none: found and kept now).
    const known = read?.matched?.content === options.content ? read.matched : undefined;
    const matched: MatchedFiles | undefined =
      read && !known ? { content: options.content, paths: [], relPaths: [] } : undefined;
    // A name refused here is reported by every listing, so such a directory's files are not kept.
    let refused = false;
    for (const entry of entries) {
      const name = entry.name;
      if (isTemporaryName(name)) continue;
      if (entry.isFile()) {
        if (known || !matches(name)) continue;
        const relPath = dir.relPath === '' ? name : `${dir.relPath}/${name}`;
        if (!blockingStat) stats.push(statFile(prefix + name, relPath, files, skipped));
        else if (checkName(relPath, skipped)) {
          const path = prefix + name;
          toStat.paths.push(path);
          toStat.relPaths.push(relPath);
          matched?.paths.push(path);
          matched?.relPaths.push(relPath);
        } else refused = true;
        continue;
      }
      const relPath = dir.relPath === '' ? name : `${dir.relPath}/${name}`;
      if (entry.isDirectory()) {
        // A VM's own files (vms/<name>/disk.qcow2, seed.iso with its user data and keys) are never content.
        if (dir.depth === 0 && name === VM_FILES_DIRECTORY) continue;
        if (dir.depth < options.maxDepth) {
          subdirectories.push({ path: join(dir.path, name), relPath, depth: dir.depth + 1 });
        } else {
          skipped.push({ relPath, reason: `deeper than maxDepth ${options.maxDepth}` });
        }
      } else if (entry.isSymbolicLink()) {
        if (matches(name)) skipped.push({ relPath, reason: 'symbolic link, not followed' });
        // A link to a directory is not entered either (it may lead out of the pool), and is reported
        // so that rows under it are known to be unlooked-at, not gone.
        else stats.push(skipLinkedDirectory(join(dir.path, name), relPath, skipped));
      }
    }
    if (known) {
      // One push a file: a spread of a directory of 200,000 files into push() would overflow the stack.
      for (let i = 0; i < known.paths.length; i++) {
        toStat.paths.push(known.paths[i] as string);
        toStat.relPaths.push(known.relPaths[i] as string);
      }
    } else if (read && matched && !refused) read.matched = matched;
    await Promise.all(stats);
    return subdirectories;
  };

  const walk = async (dir: PendingDirectory): Promise<void> => {
    options.signal?.throwIfAborted();
    const subdirectories = await limit(() => visit(dir));
    await Promise.all(subdirectories.map(walk));
  };
  await walk({ path: root, relPath: '', depth: 0 });
  if (toStat.paths.length > 0) {
    options.signal?.throwIfAborted();
    const stats = await statLocalFiles(toStat.paths);
    toStat.relPaths.forEach((relPath, i) => {
      const outcome = stats.outcome(i);
      // Stats.mtime is the rounded mtimeMs: the same Date either way.
      if (outcome === 'file')
        files.push({ relPath, sizeBytes: stats.size(i), modifiedAt: new Date(Math.round(stats.modifiedMs(i))) });
      else if (outcome === 'failed') skipped.push({ relPath, reason: `cannot be read (${stats.error(i)})` });
      else if (outcome === 'missing' && isUndecodable(relPath)) skipped.push({ relPath, reason: NOT_UTF8 });
    });
  }

  reads?.kept.keep(root, reads.next, reused);
  files.sort((a, b) => (a.relPath < b.relPath ? -1 : a.relPath > b.relPath ? 1 : 0));
  skipped.sort((a, b) => (a.relPath < b.relPath ? -1 : a.relPath > b.relPath ? 1 : 0));
  return { files, skipped };
}

/**
 * statfs f_type magic numbers of filesystems whose calls go over a network (linux/magic.h):
 * NFS, SMB, CIFS, SMB2, Ceph, 9P, AFS, Coda, NCP, FUSE (sshfs, glusterfs, s3fs…), GFS2, OCFS2.
 */
export const NETWORK_FILESYSTEM_TYPES: ReadonlySet<number> = new Set([
  0x6969, 0x517b, 0xff534d42, 0xfe534d42, 0x00c36400, 0x01021997, 0x5346414f, 0x73757245, 0x564c, 0x65735546,
  0x01161970, 0x7461636f,
]);

/** Whether `path` lies on a network filesystem; true when that cannot be told, to be safe. */
export async function isOnNetworkFilesystem(path: string): Promise<boolean> {
  try {
    return NETWORK_FILESYSTEM_TYPES.has((await statfs(path)).type);
  } catch {
    return true;
  }
}

/** Runs at most `concurrency` of the given tasks at once, in the order they were given. */
function limiter(concurrency: number): <T>(task: () => Promise<T>) => Promise<T> {
  let active = 0;
  const waiting: (() => void)[] = [];
  return async (task) => {
    // A finishing task hands its slot straight to the next waiting one, so `active` never overshoots.
    if (active >= concurrency) await new Promise<void>((start) => waiting.push(start));
    else active += 1;
    try {
      return await task();
    } finally {
      const next = waiting.shift();
      if (next) next();
      else active -= 1;
    }
  };
}

/** A directory's stat before it is read, or null when it is no directory now (readdir then says why). */
function statDirectory(path: string, followLink: boolean): Stats | null {
  try {
    const info = followLink ? statSync(path, { throwIfNoEntry: false }) : lstatSync(path, { throwIfNoEntry: false });
    return info?.isDirectory() ? info : null;
  } catch {
    return null;
  }
}

function checkName(relPath: string, skipped: PoolListing['skipped']): boolean {
  if (!relPath.includes('\\')) return true;
  skipped.push({ relPath, reason: "name contains '\\', which a relPath cannot" });
  return false;
}

/**
 * A name that is not valid UTF-8 (Latin-1 from an old share, say) is read with U+FFFD in place of
 * its odd bytes, and by that name it opens nothing (ENOENT). No relPath can name it: it is reported
 * for someone to rename, not taken for a file deleted since the directory was read.
 */
const NOT_UTF8 = 'name is not valid UTF-8; rename it to have it listed';
const isUndecodable = (relPath: string) => relPath.includes('\uFFFD');

// lstat (here and in statLocalFiles): the entry was a regular file when listed; if it became a
// link since, leave it. A file deleted between readdir and lstat is simply not there any more.

async function statFile(path: string, relPath: string, files: PoolFile[], skipped: PoolListing['skipped']) {
  if (!checkName(relPath, skipped)) return;
  try {
    const info = await lstat(path);
    if (info.isFile()) files.push({ relPath, sizeBytes: info.size, modifiedAt: info.mtime });
  } catch (error) {
    if (errno(error) !== 'ENOENT') skipped.push({ relPath, reason: `cannot be read (${errno(error)})` });
    else if (isUndecodable(relPath)) skipped.push({ relPath, reason: NOT_UTF8 });
  }
}

async function skipLinkedDirectory(path: string, relPath: string, skipped: PoolListing['skipped']) {
  const target = await stat(path).catch(() => null);
  if (target?.isDirectory()) skipped.push({ relPath, reason: 'symbolic link to a directory, not followed' });
}

function unavailable(root: string, error: unknown): QuantixError {
  const code = errno(error);
  const why =
    code === 'ENOENT'
      ? 'does not exist'
      : code === 'ENOTDIR'
        ? 'is not a directory'
        : `cannot be read: ${(error as Error).message}`;
  return new QuantixError(ErrorCode.POOL_UNAVAILABLE, `Pool directory ${root} ${why}`, {
    details: { root, errno: code },
    cause: error,
  });
}

/** The status of a pool that cannot be used, with the reason a person can act on. */
export const unavailableStatus = (reason: string, rootPath: string | null = null): PoolStatus => ({
  available: false,
  reason,
  rootPath,
  capacityBytes: null,
  availableBytes: null,
  usedBytes: null,
});

/**
 * Status of a pool directory: capacity, free and used bytes as `df` computes them from
 * statfs (size = blocks × block size, available = blocks available to unprivileged users).
 * A statfs that does not answer within `timeoutMs` (a hung network mount) makes the pool
 * unavailable instead of hanging the caller.
 */
export async function directoryStatus(root: string, options: { timeoutMs?: number } = {}): Promise<PoolStatus> {
  try {
    const info = await stat(root);
    if (!info.isDirectory()) return unavailableStatus(`Pool path ${root} is not a directory`);
  } catch (error) {
    return unavailableStatus(unavailable(root, error).message);
  }
  let timer: NodeJS.Timeout | undefined;
  try {
    const fs = await Promise.race([
      statfs(root),
      new Promise<null>((done) => {
        if (options.timeoutMs !== undefined) timer = setTimeout(() => done(null), options.timeoutMs);
      }),
    ]);
    if (fs === null) {
      return unavailableStatus(`Pool directory ${root} did not answer statfs within ${options.timeoutMs} ms`, root);
    }
    return {
      available: true,
      reason: null,
      rootPath: root,
      capacityBytes: fs.blocks * fs.bsize,
      availableBytes: fs.bavail * fs.bsize,
      usedBytes: (fs.blocks - fs.bfree) * fs.bsize,
    };
  } catch (error) {
    return unavailableStatus(`Pool directory ${root}: statfs failed: ${(error as Error).message}`, root);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Makes sure `root` is a directory, creating it (and its parents) when `create` is set.
 * Returns whether it was created. POOL_UNAVAILABLE otherwise.
 */
export async function ensureDirectory(root: string, options: { create: boolean }): Promise<boolean> {
  try {
    const info = await stat(root);
    if (info.isDirectory()) return false;
    throw new QuantixError(ErrorCode.POOL_UNAVAILABLE, `Pool path ${root} exists but is not a directory`, {
      details: { root },
    });
  } catch (error) {
    if (errno(error) !== 'ENOENT') {
      if (isQuantixError(error)) throw error;
      throw unavailable(root, error);
    }
  }
  if (!options.create) {
    throw new QuantixError(
      ErrorCode.POOL_UNAVAILABLE,
      `Pool directory ${root} does not exist; create it, or set create: true in the pool's config`,
      { details: { root } },
    );
  }
  try {
    await mkdir(root, { recursive: true, mode: 0o755 });
    return true;
  } catch (error) {
    throw new QuantixError(
      ErrorCode.POOL_UNAVAILABLE,
      `Pool directory ${root} could not be created: ${(error as Error).message}`,
      {
        details: { root, errno: errno(error) },
        cause: error,
      },
    );
  }
}

/**
 * Proves `root` writable by creating and deleting a hidden probe file — the only test that
 * holds for read-only mounts, squashed NFS exports and ACLs alike (access(2) says yes to root).
 */
export async function assertWritable(root: string): Promise<void> {
  const probe = join(root, `.quantix-write-probe-${randomUUID()}`);
  try {
    const handle = await open(probe, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600);
    await handle.close();
    await unlink(probe);
  } catch (error) {
    throw new QuantixError(
      ErrorCode.POOL_UNAVAILABLE,
      `Pool directory ${root} is not writable: ${(error as Error).message}`,
      {
        details: { root, errno: errno(error) },
        cause: error,
      },
    );
  }
}

/**
 * Creates an empty file at relPath (sparse, `sizeBytes` long when given), creating parent
 * directories inside the pool. Never overwrites: an existing file, directory or link there
 * gives ALREADY_EXISTS (O_EXCL, which also refuses to follow a final symbolic link).
 */
export async function allocatePoolFile(root: string, relPath: string, sizeBytes?: number): Promise<PoolFile> {
  if (sizeBytes !== undefined && (!Number.isSafeInteger(sizeBytes) || sizeBytes < 0)) {
    throw new QuantixError(ErrorCode.INVALID_INPUT, `sizeBytes must be a whole number of bytes, not ${sizeBytes}`, {
      details: { sizeBytes },
    });
  }
  const path = await resolveInPool(root, relPath);
  const parent = dirname(path);
  const created = await mkdir(parent, { recursive: true, mode: 0o755 }).catch((error) => {
    throw fileError(error, relPath, 'allocate');
  });
  // Parents made just now could have raced with a link swap; check the path again before writing.
  if (created !== undefined) await resolveInPool(root, relPath);
  let handle: Awaited<ReturnType<typeof open>> | undefined;
  try {
    handle = await open(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o644);
    if (sizeBytes) await handle.truncate(sizeBytes);
    const info = await handle.stat();
    return { relPath, sizeBytes: info.size, modifiedAt: info.mtime };
  } catch (error) {
    throw fileError(error, relPath, 'allocate');
  } finally {
    await handle?.close();
  }
}

/** Removes the file at relPath; refuses paths outside the pool and directories. */
export async function removePoolFile(root: string, relPath: string): Promise<void> {
  const path = await resolveInPool(root, relPath);
  try {
    const info = await lstat(path);
    if (info.isDirectory()) {
      throw new QuantixError(ErrorCode.INVALID_INPUT, `relPath ${JSON.stringify(relPath)} is a directory, not a file`, {
        details: { relPath },
      });
    }
    await unlink(path);
  } catch (error) {
    if (isQuantixError(error)) throw error;
    throw fileError(error, relPath, 'remove');
  }
}

/** Removes an empty directory, ignoring one that is not there or not empty. */
export async function removeEmptyDirectory(path: string): Promise<void> {
  await rmdir(path).catch(() => undefined);
}

function fileError(error: unknown, relPath: string, operation: string): QuantixError {
  const code = errno(error);
  const details = { relPath, operation, errno: code };
  const quoted = JSON.stringify(relPath);
  switch (code) {
    case 'EEXIST':
      return new QuantixError(ErrorCode.ALREADY_EXISTS, `${quoted} already exists in the pool`, {
        details,
        cause: error,
      });
    case 'ENOENT':
      return new QuantixError(ErrorCode.NOT_FOUND, `${quoted} does not exist in the pool`, { details, cause: error });
    case 'ENOTDIR':
    case 'EISDIR':
      return new QuantixError(ErrorCode.INVALID_INPUT, `${quoted} does not name a file: ${(error as Error).message}`, {
        details,
        cause: error,
      });
    default:
      return new QuantixError(
        ErrorCode.POOL_UNAVAILABLE,
        `Cannot ${operation} ${quoted}: ${(error as Error).message}`,
        { details, cause: error },
      );
  }
}
