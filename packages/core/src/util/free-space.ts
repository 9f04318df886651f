import { statfs } from 'node:fs/promises';
import { dirname } from 'node:path';
import { ErrorCode, QuantixError } from '../errors.js';

/**
 * What the file system holding `directory` has free for an unprivileged writer; null where statfs
 * cannot tell. A directory not made yet is asked of its nearest existing ancestor, the file system
 * it would be made on (a copy into `images/` of a pool that has no `images/` yet).
 */
export async function freeBytesAt(directory: string): Promise<number | null> {
  for (let at = directory; ; at = dirname(at)) {
    try {
      const fs = await statfs(at);
      return fs.bavail * fs.bsize;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT' || dirname(at) === at) return null;
    }
  }
}

/**
 * POOL_NO_SPACE unless the file system holding `directory` has `bytes` free: a file that will
 * not fit is refused before it is written, not when the disk fills part way. Where statfs cannot
 * tell, the writes will.
 */
export async function requireRoom(directory: string, bytes: number, what: string): Promise<void> {
  const available = await freeBytesAt(directory);
  if (available !== null && available < bytes) {
    throw new QuantixError(
      ErrorCode.POOL_NO_SPACE,
      `No room in the pool for ${what}: ${bytes} bytes needed, ${available} available`,
      { details: { neededBytes: bytes, availableBytes: available } },
    );
  }
}
