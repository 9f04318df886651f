import { type ChildProcessByStdio, spawn } from 'node:child_process';
import { createReadStream, createWriteStream } from 'node:fs';
import { open } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { ErrorCode, QuantixError } from '@quantix/core';
import { ImagesCloudErrorCode } from '../errors.js';

export const COMPRESSIONS = ['xz', 'gzip', 'zstd', 'bzip2'] as const;
export type Compression = (typeof COMPRESSIONS)[number];

/** Magic bytes at offset 0 of each compressed format (file names are not trusted). */
const MAGIC: readonly { compression: Compression; bytes: readonly number[] }[] = [
  { compression: 'xz', bytes: [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00] },
  { compression: 'gzip', bytes: [0x1f, 0x8b] },
  { compression: 'zstd', bytes: [0x28, 0xb5, 0x2f, 0xfd] },
  // "BZh" then the block size digit 1-9.
  { compression: 'bzip2', bytes: [0x42, 0x5a, 0x68] },
];

/** The compression a file's first bytes say it is in, or null for none recognised. */
export function compressionOfHead(head: Uint8Array): Compression | null {
  for (const { compression, bytes } of MAGIC) {
    if (head.length < bytes.length) continue;
    if (!bytes.every((byte, index) => head[index] === byte)) continue;
    if (compression === 'bzip2' && !(head[3] !== undefined && head[3] >= 0x31 && head[3] <= 0x39)) continue;
    return compression;
  }
  return null;
}

/** Decompressors run as child processes; each reads stdin and writes stdout. */
const DECOMPRESS_ARGV: Record<Exclude<Compression, 'gzip'>, readonly string[]> = {
  xz: ['xz', '--decompress', '--stdout', '--single-stream'],
  zstd: ['zstd', '--decompress', '--stdout', '--quiet'],
  bzip2: ['bzip2', '--decompress', '--stdout'],
};

/**
 * Decompresses `source` into `destination` streaming: gzip in-process with node:zlib, the others
 * through their tool with an argument list (no shell), reading and writing file descriptors so
 * nothing is held in memory. Stops once more than `maxBytes` came out (a decompression bomb),
 * with IMAGE_TOO_LARGE. `onBytes` sees the running count of bytes written.
 */
export async function decompressFile(options: {
  source: string;
  destination: string;
  compression: Compression;
  maxBytes: number;
  signal?: AbortSignal;
  onBytes?: (written: number) => void;
}): Promise<{ bytes: number }> {
  const { source, destination, compression, maxBytes, signal } = options;
  let written = 0;
  const tooLarge = () =>
    new QuantixError(
      ImagesCloudErrorCode.IMAGE_TOO_LARGE,
      `${source} decompresses to more than ${maxBytes} bytes, the import limit`,
      { details: { path: source, maxBytes, retryable: false } },
    );
  const count = async function* (chunks: AsyncIterable<Buffer>) {
    for await (const chunk of chunks) {
      written += chunk.length;
      if (written > maxBytes) throw tooLarge();
      options.onBytes?.(written);
      yield chunk;
    }
  };
  const failed = (error: unknown) => {
    if (error instanceof QuantixError) return error;
    const errno = (error as NodeJS.ErrnoException).code;
    if (errno === 'ENOSPC' || errno === 'EDQUOT') {
      return new QuantixError(
        ErrorCode.POOL_NO_SPACE,
        `No room in the pool to decompress ${source} (${compression}): the file system was full after ${written} bytes`,
        { details: { path: source, compression, errno, writtenBytes: written, retryable: true }, cause: error },
      );
    }
    return new QuantixError(
      ImagesCloudErrorCode.CONVERSION_FAILED,
      `Cannot decompress ${source} (${compression}): ${(error as Error).message}`,
      { details: { path: source, compression, retryable: false }, cause: error },
    );
  };
  if (compression === 'gzip') {
    try {
      await pipeline(createReadStream(source), createGunzip(), count, createWriteStream(destination), { signal });
    } catch (error) {
      throw failed(error);
    }
    return { bytes: written };
  }
  const [program, ...args] = DECOMPRESS_ARGV[compression] as [string, ...string[]];
  const input = await open(source, 'r');
  try {
    const child = spawn(program, args, {
      shell: false,
      stdio: [input.fd, 'pipe', 'pipe'],
      signal,
    }) as unknown as ChildProcessByStdio<null, Readable, Readable>;
    const stderr: Buffer[] = [];
    child.stderr.on('data', (chunk: Buffer) => {
      if (stderr.length < 64) stderr.push(chunk);
    });
    const exited = new Promise<number | null>((resolve, reject) => {
      child.once('error', reject);
      child.once('close', (code) => resolve(code));
    });
    // Swallowed here and reported by the pipeline or the exit status below.
    exited.catch(() => undefined);
    try {
      await pipeline(child.stdout, count, createWriteStream(destination), { signal });
    } catch (error) {
      child.kill('SIGKILL');
      await exited.catch(() => undefined);
      throw failed(error);
    }
    let code: number | null;
    try {
      code = await exited;
    } catch (error) {
      const missing = (error as NodeJS.ErrnoException).code === 'ENOENT';
      throw failed(missing ? new Error(`${program} is not installed`) : error);
    }
    if (code !== 0) {
      throw failed(new Error(`${program} exited with ${code}: ${Buffer.concat(stderr).toString('utf8').trim()}`));
    }
    return { bytes: written };
  } finally {
    await input.close();
  }
}
