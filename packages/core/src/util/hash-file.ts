import { createHash, type Hash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import type { ChecksumAlgorithm } from '../domain/image.js';

/**
 * Hashes a file, or its first `length` bytes (the part of a partial file already there), read in
 * 1 MiB chunks: the one way files are hashed (downloads, conversions, uploads, copies).
 * `hashFile(...).then((hash) => hash.digest('hex'))` for the hex digest.
 */
export async function hashFile(options: {
  path: string;
  algorithm: ChecksumAlgorithm;
  length?: number;
  signal?: AbortSignal;
  onBytes?: (bytes: number) => void;
}): Promise<Hash> {
  const hash = createHash(options.algorithm);
  if (options.length === 0) return hash;
  const stream = createReadStream(options.path, {
    start: 0,
    end: options.length === undefined ? undefined : options.length - 1,
    highWaterMark: 1024 * 1024,
    signal: options.signal,
  });
  for await (const chunk of stream) {
    hash.update(chunk as Buffer);
    options.onBytes?.((chunk as Buffer).length);
  }
  return hash;
}

/** SHA-256 (hex) of a whole file. */
export async function sha256OfFile(path: string): Promise<string> {
  return (await hashFile({ path, algorithm: 'sha256' })).digest('hex');
}
