import { lstat, realpath } from 'node:fs/promises';
import { posix } from 'node:path';
import type { PoolTypeDefinition } from '../contracts/pool-type.js';
import {
  checkPoolRoot,
  type PoolRootPolicy,
  type PoolRoots,
  poolRootNotAllowed,
  poolRootProblem,
} from '../domain/pool-roots.js';
import { ErrorCode, QuantixError } from '../errors.js';

type Issue = { path: string; message: string };

function invalidPool(what: string, issues: Issue[]): QuantixError {
  return new QuantixError(
    ErrorCode.INVALID_INPUT,
    `Invalid ${what}: ${issues.map((i) => `${i.path}: ${i.message}`).join('; ')}`,
    { details: { issues } },
  );
}

/** The definitions by type; two plugins defining one type is PLUGIN_CONFLICT, not a silent pick. */
export function poolTypesByName(types: readonly PoolTypeDefinition[]): Map<string, PoolTypeDefinition> {
  const byName = new Map<string, PoolTypeDefinition>();
  for (const definition of types) {
    if (byName.has(definition.type)) {
      throw new QuantixError(ErrorCode.PLUGIN_CONFLICT, `Pool type '${definition.type}' is defined twice`, {
        details: { type: definition.type },
      });
    }
    byName.set(definition.type, definition);
  }
  return byName;
}

/** The definition of `type`; INVALID_INPUT naming the field `type` and the known types otherwise. */
export function poolTypeFor(types: readonly PoolTypeDefinition[], type: string): PoolTypeDefinition {
  const definition = types.find((candidate) => candidate.type === type);
  if (definition) return definition;
  const known = types.map((t) => t.type).join(', ') || 'none';
  throw invalidPool('storage pool', [{ path: 'type', message: `unknown pool type '${type}' (known: ${known})` }]);
}

/**
 * A pool's config parsed with its type's schema. INVALID_INPUT lists each problem under
 * `config.<key>`: a missing key, a wrong value, and each key the type does not have.
 */
export function parsePoolConfig<Config>(
  definition: PoolTypeDefinition<Config>,
  pool: { id: string; config: unknown },
): Config {
  const result = definition.configSchema.safeParse(pool.config ?? {});
  if (result.success) return result.data;
  const issues: Issue[] = [];
  for (const issue of result.error.issues) {
    const base = ['config', ...issue.path.map(String)];
    if (issue.code === 'unrecognized_keys') {
      for (const key of issue.keys) {
        issues.push({ path: [...base, key].join('.'), message: `is not a setting of ${definition.type} pools` });
      }
    } else {
      issues.push({ path: base.join('.'), message: issue.message });
    }
  }
  throw invalidPool(`config of ${definition.type} pool '${pool.id}'`, issues);
}

export interface CheckedPool<Config = unknown> {
  definition: PoolTypeDefinition<Config>;
  config: Config;
  /** The pool's roots on a node, each allowed by the policy. */
  roots: string[];
}

/**
 * What the control plane checks when a pool is defined or its config changes: the type is known,
 * the config matches its schema (INVALID_INPUT naming the field), and every root the config names
 * is allowed by the policy (POOL_ROOT_NOT_ALLOWED). By spelling only: the node checks again on its
 * own file system (checkPoolOnDisk).
 */
export function checkPoolDefinition(options: {
  types: readonly PoolTypeDefinition[];
  policy: PoolRootPolicy;
  pool: { id: string; type: string; config: unknown };
}): CheckedPool {
  const { pool, policy } = options;
  const definition = poolTypeFor(options.types, pool.type);
  const config = parsePoolConfig(definition, pool);
  const roots = definition.roots(config, pool.id);
  for (const root of roots) checkPoolRoot(root, policy, 'config');
  return { definition, config, roots };
}

/**
 * Where a stored pool's files are, as its type names them, without the root policy (a pool
 * defined before the policy changed still has its place); null when its type is not known here
 * or its config no longer parses — such a pool is never activated, so it holds no files.
 */
export function poolRootsOf(
  types: readonly PoolTypeDefinition[],
  pool: { id: string; name: string; type: string; config: unknown },
): PoolRoots | null {
  try {
    const definition = poolTypeFor(types, pool.type);
    return { id: pool.id, name: pool.name, roots: definition.roots(parsePoolConfig(definition, pool), pool.id) };
  } catch {
    return null;
  }
}

/**
 * Where `path` leads on this machine: the real path of its deepest existing ancestor (every
 * symbolic link resolved) with the missing rest appended. A dangling or looping link throws
 * (realpath's ENOENT/ELOOP): where it would lead once its target appears cannot be told.
 */
export async function physicalPoolPath(path: string): Promise<string> {
  let existing = path;
  const rest: string[] = [];
  for (;;) {
    try {
      await lstat(existing);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if ((code !== 'ENOENT' && code !== 'ENOTDIR') || existing === '/') throw error;
      rest.unshift(posix.basename(existing));
      existing = posix.dirname(existing);
      continue;
    }
    const real = await realpath(existing);
    return rest.length === 0 ? real : posix.join(real, ...rest);
  }
}

/** The policy with each allowed root and protected path also in its real spelling (when it exists). */
async function physicalPolicy(policy: PoolRootPolicy): Promise<PoolRootPolicy> {
  const both = async (paths: readonly string[]) => {
    const out = new Set(paths);
    for (const path of paths) {
      const real = await physicalPoolPath(path).catch(() => null);
      if (real) out.add(real);
    }
    return [...out];
  };
  return { allowedRoots: await both(policy.allowedRoots), protectedPaths: await both(policy.protectedPaths) };
}

/**
 * Checks a pool root on the node that will use it: as spelled (checkPoolRoot), then as it really
 * is — every symbolic link on the way resolved, for the deepest part that exists — against the
 * allowed and protected directories, themselves resolved. A link inside /srv to /etc is refused
 * even though `/srv/link` reads well. Returns the real path.
 */
export async function checkPoolRootOnDisk(path: string, policy: PoolRootPolicy, field?: string): Promise<string> {
  checkPoolRoot(path, policy, field);
  let real: string;
  try {
    real = await physicalPoolPath(path);
  } catch (error) {
    throw new QuantixError(
      ErrorCode.POOL_ROOT_NOT_ALLOWED,
      `Pool root ${path} cannot be resolved: ${(error as Error).message}`,
      { details: { path, reason: 'unresolvable', allowedRoots: [...policy.allowedRoots] }, cause: error },
    );
  }
  if (real === path) return path;
  const problem = poolRootProblem(real, await physicalPolicy(policy));
  if (problem) throw poolRootNotAllowed(path, problem, policy, { realPath: real, ...(field ? { field } : {}) });
  return real;
}

/**
 * What a node checks before it activates a pool: the definition as the control plane checked it,
 * and each root again on this node's file system (symbolic links followed). `realRoots` are the
 * roots as they really are there, in the same order.
 */
export async function checkPoolOnDisk(options: {
  types: readonly PoolTypeDefinition[];
  policy: PoolRootPolicy;
  pool: { id: string; type: string; config: unknown };
}): Promise<CheckedPool & { realRoots: string[] }> {
  const checked = checkPoolDefinition(options);
  const realRoots: string[] = [];
  for (const root of checked.roots) realRoots.push(await checkPoolRootOnDisk(root, options.policy, 'config'));
  return { ...checked, realRoots };
}
