import { posix } from 'node:path';
import { z } from 'zod';
import { ErrorCode, QuantixError } from '../errors.js';
import { hasUnsafeNameCharacter } from './validation.js';

/**
 * Directories of the operating system that no pool may be, contain, or lie in. A pool root is
 * listed by scans and its files are removed by DELETE /images/<id>: a pool at `/etc` or `/` would
 * hand every host file to whoever may define pools.
 */
export const SYSTEM_DIRECTORIES: readonly string[] = [
  '/',
  '/bin',
  '/boot',
  '/dev',
  '/etc',
  '/home',
  '/lib',
  '/lib32',
  '/lib64',
  '/libexec',
  '/libx32',
  '/proc',
  '/root',
  '/run',
  '/sbin',
  '/snap',
  '/sys',
  '/usr',
  '/var/lib/apt',
  '/var/lib/dpkg',
  '/var/lib/postgresql',
  '/var/lock',
  '/var/log',
  '/var/mail',
  '/var/run',
  '/var/spool',
];

/** Where pools may be when the operator says nothing (`quantix up` adds `<dataDir>/pools`). */
export const DEFAULT_POOL_ROOTS: readonly string[] = ['/var/lib/quantix', '/srv'];

/** Longest pool root accepted, as Linux's PATH_MAX. */
const MAX_ROOT_LENGTH = 4096;

/**
 * Where pool roots may be. Every check is against this policy and SYSTEM_DIRECTORIES:
 *
 * - a pool root is an absolute, normalized path (no `.`/`..` segments, no `//`, no trailing `/`);
 * - it is one of `allowedRoots` or lies below one;
 * - it is never a protected directory (SYSTEM_DIRECTORIES and `protectedPaths`, e.g. the data
 *   directory) nor an ancestor of one (a pool there would contain it);
 * - it lies below a protected directory only when an allowed root that holds it lies strictly
 *   below that directory too: the operator opened exactly that subtree (`<dataDir>/pools` when
 *   the data directory is protected), never more.
 */
export interface PoolRootPolicy {
  /** Absolute, normalized directories pool roots must lie in. */
  readonly allowedRoots: readonly string[];
  /** Directories protected like system directories, beyond SYSTEM_DIRECTORIES (the data directory). */
  readonly protectedPaths: readonly string[];
}

/**
 * A pool root as a config carries it: any non-empty string without control characters. Whether it
 * is absolute, normalized and allowed is the policy's to say (POOL_ROOT_NOT_ALLOWED), not the
 * schema's, so that every root a config names is judged in one place with one error code.
 */
export const poolRootPathSchema = z
  .string()
  .min(1, 'must not be empty')
  .max(MAX_ROOT_LENGTH, `must be at most ${MAX_ROOT_LENGTH} characters`)
  .refine((path) => !hasUnsafeNameCharacter(path), 'must not contain control characters');

/** Whether `path` is absolute and spelled the one way posix.normalize spells it, without a trailing slash. */
export function isNormalizedAbsolutePath(path: string): boolean {
  if (!path.startsWith('/') || path.length > MAX_ROOT_LENGTH || hasUnsafeNameCharacter(path)) return false;
  if (posix.normalize(path) !== path) return false;
  return path === '/' || !path.endsWith('/');
}

/** Whether `path` is `root` or lies below it (both normalized absolute paths). */
export function isPathWithin(root: string, path: string): boolean {
  if (root === '/') return path.startsWith('/');
  return path === root || path.startsWith(`${root}/`);
}

/**
 * A policy from the operator's allowed roots (`--pool-root`, QUANTIX_POOL_ROOTS) and extra
 * protected paths. An allowed root that is not an absolute normalized path, or that is a system
 * directory or holds one (`/`, `/var`, `/etc`), is refused at once (INVALID_INPUT): start-up fails
 * naming it rather than every pool failing later.
 */
export function createPoolRootPolicy(
  options: { allowedRoots?: readonly string[]; protectedPaths?: readonly string[] } = {},
): PoolRootPolicy {
  const allowedRoots = [...new Set(options.allowedRoots ?? DEFAULT_POOL_ROOTS)];
  const protectedPaths = [...new Set(options.protectedPaths ?? [])];
  const issues: { path: string; message: string }[] = [];
  for (const root of allowedRoots) {
    if (!isNormalizedAbsolutePath(root)) {
      issues.push({ path: 'allowedRoots', message: `${JSON.stringify(root)} is not an absolute, normalized path` });
      continue;
    }
    for (const directory of SYSTEM_DIRECTORIES) {
      const kind = relation(root, directory);
      if (kind === 'equal' || kind === 'ancestor') {
        issues.push({
          path: 'allowedRoots',
          message: `${root} ${kind === 'equal' ? 'is' : 'contains'} the system directory ${directory}`,
        });
        break;
      }
    }
  }
  for (const path of protectedPaths) {
    if (!isNormalizedAbsolutePath(path)) {
      issues.push({ path: 'protectedPaths', message: `${JSON.stringify(path)} is not an absolute, normalized path` });
    }
  }
  if (allowedRoots.length === 0) issues.push({ path: 'allowedRoots', message: 'must name at least one directory' });
  if (issues.length > 0) {
    throw new QuantixError(
      ErrorCode.INVALID_INPUT,
      `Invalid pool roots: ${issues.map((issue) => issue.message).join('; ')}`,
      { details: { issues } },
    );
  }
  return Object.freeze({ allowedRoots: Object.freeze(allowedRoots), protectedPaths: Object.freeze(protectedPaths) });
}

/** How `path` relates to a protected directory, if at all. */
function relation(path: string, directory: string): 'equal' | 'ancestor' | 'below' | null {
  if (path === directory) return 'equal';
  if (isPathWithin(directory, path)) return 'below';
  if (isPathWithin(path, directory)) return 'ancestor';
  return null;
}

/** Why a root is refused, or null when it is allowed; `allowedRoots`/`protectedPaths` as given. */
export function poolRootProblem(
  path: string,
  policy: Pick<PoolRootPolicy, 'allowedRoots' | 'protectedPaths'>,
): { reason: 'not-absolute' | 'not-normalized' | 'protected' | 'outside'; message: string } | null {
  if (!path.startsWith('/')) return { reason: 'not-absolute', message: 'is not an absolute path' };
  if (!isNormalizedAbsolutePath(path)) {
    const normalized = posix.normalize(path).replace(/(.)\/$/, '$1');
    return {
      reason: 'not-normalized',
      message: `is not normalized (no '.', '..', '//' or trailing '/'; it would be ${normalized})`,
    };
  }
  const holders = policy.allowedRoots.filter((root) => isPathWithin(root, path));
  const protectedDirectories = [...SYSTEM_DIRECTORIES, ...policy.protectedPaths];
  const what = (directory: string) =>
    `${SYSTEM_DIRECTORIES.includes(directory) ? 'the system directory' : 'the protected directory'} ${directory}`;
  for (const directory of protectedDirectories) {
    const kind = relation(path, directory);
    if (kind === 'equal') return { reason: 'protected', message: `is ${what(directory)}` };
    if (kind === 'ancestor') return { reason: 'protected', message: `contains ${what(directory)}` };
  }
  for (const directory of protectedDirectories) {
    // Everything is below `/`; what matters there is being inside an allowed root (below).
    if (directory === '/' || relation(path, directory) !== 'below') continue;
    // Only an allowed root strictly inside the protected directory opens it.
    const opened = holders.some((root) => root !== directory && isPathWithin(directory, root));
    if (!opened) return { reason: 'protected', message: `lies inside ${what(directory)}` };
  }
  if (holders.length === 0) {
    return { reason: 'outside', message: 'is outside the allowed pool roots' };
  }
  return null;
}

/** The POOL_ROOT_NOT_ALLOWED error for `path`, naming what is wrong and what is allowed. */
export function poolRootNotAllowed(
  path: string,
  problem: { reason: string; message: string },
  policy: PoolRootPolicy,
  extra: { field?: string; realPath?: string } = {},
): QuantixError {
  const spelled = extra.realPath && extra.realPath !== path ? `${path} (which resolves to ${extra.realPath})` : path;
  return new QuantixError(
    ErrorCode.POOL_ROOT_NOT_ALLOWED,
    `Pool root ${spelled} ${problem.message}; pool roots must lie inside one of ${policy.allowedRoots.join(', ')} (an operator allows more with --pool-root)`,
    {
      details: {
        path,
        ...(extra.realPath ? { realPath: extra.realPath } : {}),
        ...(extra.field ? { field: extra.field } : {}),
        reason: problem.reason,
        allowedRoots: [...policy.allowedRoots],
      },
    },
  );
}

/** A pool and where its files are on a node (its roots, as a pool type names them), to tell pools apart. */
export interface PoolRoots {
  readonly id: string;
  readonly name: string;
  readonly roots: readonly string[];
}

/** Where two pools meet: a root of `pool` that is, lies inside or contains a root of `other`. */
export interface PoolOverlap {
  readonly other: PoolRoots;
  readonly root: string;
  readonly otherRoot: string;
}

/**
 * The first of `others` whose files `pool` would share on one node: one of its roots is a root of
 * `pool`, lies inside one, or contains one (normalized absolute paths, compared as spelled — a node
 * compares them again with every symbolic link resolved). Two such pools list each other's files,
 * and deleting an image through one takes a file the other's image or VM still uses.
 */
export function findOverlappingPool(pool: PoolRoots, others: readonly PoolRoots[]): PoolOverlap | null {
  for (const other of others) {
    if (other.id === pool.id) continue;
    for (const root of pool.roots) {
      const otherRoot = other.roots.find((candidate) => isPathWithin(candidate, root) || isPathWithin(root, candidate));
      if (otherRoot !== undefined) return { other, root, otherRoot };
    }
  }
  return null;
}

/**
 * The POOL_ROOT_OVERLAPS error for `pool` meeting `overlap.other` on `node` (named by its hostname,
 * where it has one other than its id).
 */
export function poolRootOverlaps(
  pool: PoolRoots,
  overlap: PoolOverlap,
  node?: { id: string; hostname?: string | undefined },
): QuantixError {
  const { other, root, otherRoot } = overlap;
  const nodeId = node?.id;
  const how = root === otherRoot ? 'is also' : isPathWithin(otherRoot, root) ? 'lies inside' : 'contains';
  return new QuantixError(
    ErrorCode.POOL_ROOT_OVERLAPS,
    `Pool ${pool.name}'s root ${root} ${how} pool ${other.name}'s root ${otherRoot}${node ? ` on node ${node.hostname ?? node.id}` : ''}: a file there would be both pools', listed by both and deleted through either; give one pool a directory apart from the other's`,
    {
      details: {
        path: root,
        overlaps: { poolId: other.id, name: other.name, root: otherRoot },
        ...(nodeId ? { nodeId } : {}),
      },
    },
  );
}

/**
 * Checks only that a pool root is an absolute, normalized path (POOL_ROOT_NOT_ALLOWED otherwise):
 * what a storage backend used without a policy still insists on, so that `relative/dir` never
 * resolves against the process's working directory.
 */
export function checkPoolRootShape(path: string, field?: string): string {
  const problem = poolRootProblem(path, { allowedRoots: ['/'], protectedPaths: [] });
  if (problem && (problem.reason === 'not-absolute' || problem.reason === 'not-normalized')) {
    throw new QuantixError(ErrorCode.POOL_ROOT_NOT_ALLOWED, `Pool root ${JSON.stringify(path)} ${problem.message}`, {
      details: { path, reason: problem.reason, ...(field ? { field } : {}) },
    });
  }
  return path;
}

/**
 * Checks a pool root by its spelling alone (no file system: the control plane has none of the
 * node's). POOL_ROOT_NOT_ALLOWED when it is relative, not normalized, protected or outside the
 * allowed roots. A node checks again with checkPoolRootOnDisk, which follows symbolic links.
 */
export function checkPoolRoot(path: string, policy: PoolRootPolicy, field?: string): string {
  const problem = poolRootProblem(path, policy);
  if (problem) throw poolRootNotAllowed(path, problem, policy, field ? { field } : {});
  return path;
}
