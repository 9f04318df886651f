import { constants } from 'node:fs';
import { open } from 'node:fs/promises';
import { ErrorCode, QuantixError } from '../errors.js';

/**
 * Reads a file's first `length` bytes (fewer when it is shorter): the one way a file's head is
 * read for a format or header check. Opened without following a symbolic link and without
 * blocking, and refused unless it is a regular file (INVALID_INPUT), so a FIFO, device or link
 * put where an image was listed is never waited on or read through.
 */
export async function readFileHead(path: string, length: number): Promise<Buffer> {
  const handle = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK).catch(
    (error: NodeJS.ErrnoException) => {
      if (error.code === 'ELOOP') throw notARegularFile(path, 'a symbolic link');
      throw error;
    },
  );
  try {
    if (!(await handle.stat()).isFile()) throw notARegularFile(path, 'not a regular file');
    // Not zero-filled first (64 KiB a file adds up over a scan); a shorter file's bytes are
    // copied out, so no byte that was not read stays reachable through the returned buffer.
    const { buffer, bytesRead } = await handle.read(Buffer.allocUnsafe(length), 0, length, 0);
    return bytesRead === length ? buffer : Buffer.from(buffer.subarray(0, bytesRead));
  } finally {
    await handle.close();
  }
}

function notARegularFile(path: string, what: string): QuantixError {
  return new QuantixError(ErrorCode.INVALID_INPUT, `${path} is ${what}; only a regular file is read`, {
    details: { path },
  });
}
