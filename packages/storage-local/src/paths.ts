import { lstat, readlink, realpath } from 'node:fs/promises';
import { dirname, isAbsolute, join, resolve, sep } from 'node:path';
import { assertRelPath, ErrorCode, QuantixError } from '@quantix/core';

/** Symbolic links followed while resolving one path before giving up, as the kernel's ELOOP limit. */
const MAX_SYMLINK_HOPS = 40;

function escapes(relPath: string, why: string, details: Record<string, unknown> = {}): QuantixError {
  return new QuantixError(ErrorCode.PATH_ESCAPES_POOL, `relPath ${JSON.stringify(relPath)} ${why}`, {
    details: { relPath, ...details },
  });
}

/** Whether `path` is `root` or lies below it; both absolute and free of `..`. */
export function isWithin(root: string, path: string): boolean {
  if (root === sep) return path.startsWith(sep);
  return path === root || path.startsWith(root + sep);
}

/** The pool root with every symbolic link resolved; POOL_UNAVAILABLE when it is not there. */
export async function realRoot(root: string): Promise<string> {
  try {
    return await realpath(root);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new QuantixError(
      ErrorCode.POOL_UNAVAILABLE,
      code === 'ENOENT'
        ? `Pool directory ${root} does not exist`
        : `Pool directory ${root} cannot be resolved: ${(error as Error).message}`,
      { details: { root, errno: code ?? null }, cause: error },
    );
  }
}

/**
 * Where `segments`, taken from the real directory `start`, lead physically: each existing
 * component is lstat'ed and symbolic links are followed as the kernel would, `..` included;
 * from the first component that does not exist on, the rest is appended as it is written.
 * Unlike realpath() this also answers for paths that do not exist yet (allocate) and for
 * dangling links, so that no link can point a later write outside the pool.
 */
async function physicalPath(start: string, segments: readonly string[], hops: { count: number }): Promise<string> {
  let current = start;
  for (let i = 0; i < segments.length; i++) {
    const segment = segments[i] as string;
    if (segment === '' || segment === '.') continue;
    if (segment === '..') {
      current = dirname(current);
      continue;
    }
    const next = join(current, segment);
    let isLink: boolean;
    try {
      isLink = (await lstat(next)).isSymbolicLink();
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') return resolve(next, ...segments.slice(i + 1));
      throw error;
    }
    if (!isLink) {
      current = next;
      continue;
    }
    hops.count += 1;
    if (hops.count > MAX_SYMLINK_HOPS) throw Object.assign(new Error('too many symbolic links'), { code: 'ELOOP' });
    const target = await readlink(next);
    current = await physicalPath(isAbsolute(target) ? sep : current, target.split('/'), hops);
  }
  return current;
}

/**
 * Resolves a relPath to an absolute path under the pool root, refusing with PATH_ESCAPES_POOL
 * anything that would leave it: `..`, absolute paths (core's lexical assertRelPath), and symbolic
 * links — to files or directories, existing or dangling — whose target lies outside the root.
 * Links that stay inside the root are allowed. The returned path is spelled under `root` as
 * configured (not its realpath), so callers see the paths they configured.
 */
export async function resolveInPool(root: string, relPath: string): Promise<string> {
  assertRelPath(relPath);
  const rootPath = await realRoot(root);
  let physical: string;
  try {
    physical = await physicalPath(rootPath, relPath.split('/'), { count: 0 });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ELOOP')
      throw escapes(relPath, 'goes through too many symbolic links');
    throw error;
  }
  if (!isWithin(rootPath, physical)) {
    throw escapes(relPath, 'leads outside the pool through a symbolic link', { target: physical, root: rootPath });
  }
  return join(root, relPath);
}
