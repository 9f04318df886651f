import { ErrorCode, QuantixError } from '../errors.js';

const MAX_REL_PATH_LENGTH = 4096;

/**
 * Checks that `relPath` names a location inside a pool: relative, '/'-separated, and made of
 * plain segments only. Nothing is normalised away ('a/./b', 'a//b' are refused, not fixed),
 * so one file has exactly one relPath and the (poolId, relPath) key stays unique.
 * Returns the path unchanged; throws PATH_ESCAPES_POOL otherwise.
 */
export function assertRelPath(relPath: string): string {
  const refuse = (why: string): never => {
    throw new QuantixError(ErrorCode.PATH_ESCAPES_POOL, `relPath ${JSON.stringify(relPath)} ${why}`, {
      details: { relPath },
    });
  };
  if (typeof relPath !== 'string' || relPath.length === 0) refuse('is empty');
  if (relPath.length > MAX_REL_PATH_LENGTH) refuse(`is longer than ${MAX_REL_PATH_LENGTH} characters`);
  if (relPath.includes('\0')) refuse('contains a NUL byte');
  if (relPath.startsWith('/') || /^[A-Za-z]:[\\/]/.test(relPath))
    refuse('is absolute; give it relative to the pool root');
  if (relPath.includes('\\')) refuse("contains '\\'; use '/' as the separator");
  for (const segment of relPath.split('/')) {
    if (segment === '..') refuse("contains '..'");
    if (segment === '.' || segment === '') refuse("contains an empty or '.' segment");
  }
  return relPath;
}

export function isValidRelPath(relPath: string): boolean {
  try {
    assertRelPath(relPath);
    return true;
  } catch {
    return false;
  }
}
