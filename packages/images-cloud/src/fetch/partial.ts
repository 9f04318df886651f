import type { Hash } from 'node:crypto';
import { type FileHandle, open, readFile, rm, stat, truncate } from 'node:fs/promises';
import { dirname } from 'node:path';
import { Writable } from 'node:stream';
import { WriteBehind, writeFileAtomic } from '@quantix/core';

/**
 * What is known about a partial file's source, kept beside it (`<dest>.partial.meta`) so that a
 * resume — in this process or the next — can ask for the rest with If-Range and notice when the
 * source changed.
 */
export interface PartialMeta {
  version: 1;
  /** The URL the download was started from (before redirects). */
  url: string;
  etag: string | null;
  lastModified: string | null;
  totalBytes: number | null;
}

/** Query parameters that carry a credential, not a part of what a URL names. */
const CREDENTIAL_PARAMS = ['ticket', 'token'];

/**
 * What a partial file records of its source: the URL without credentials in its query (a
 * copy's ticket is minted again at every resume, so the same bytes come under another ticket;
 * and no credential is written to disk beside the file).
 */
export function sourceIdentity(url: string): string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return url;
  }
  if (!CREDENTIAL_PARAMS.some((name) => parsed.searchParams.has(name))) return url;
  for (const name of CREDENTIAL_PARAMS) parsed.searchParams.delete(name);
  return parsed.href;
}

export function partialPathOf(destinationPath: string): string {
  return `${destinationPath}.partial`;
}

export function metaPathOf(destinationPath: string): string {
  return `${destinationPath}.partial.meta`;
}

export async function readMeta(path: string): Promise<PartialMeta | null> {
  try {
    const meta = JSON.parse(await readFile(path, 'utf8')) as PartialMeta;
    if (meta?.version !== 1 || typeof meta.url !== 'string') return null;
    return meta;
  } catch {
    // Missing or torn (a crash while writing it): the partial file cannot be trusted.
    return null;
  }
}

export async function writeMeta(path: string, meta: PartialMeta): Promise<void> {
  await writeFileAtomic(path, JSON.stringify(meta));
}

export async function sizeOf(path: string): Promise<number | null> {
  try {
    return (await stat(path)).size;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw error;
  }
}

export async function removeQuietly(...paths: string[]): Promise<void> {
  await Promise.all(paths.map((path) => rm(path, { force: true })));
}

export async function truncateTo(path: string, length: number): Promise<void> {
  try {
    await truncate(path, length);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
}

/** fsync of a file, then of its directory, so that both its bytes and its name survive a crash. */
export async function syncFile(path: string): Promise<void> {
  const handle = await open(path, 'r+');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

export async function syncDirectory(path: string): Promise<void> {
  const handle = await open(dirname(path), 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** What is left of `buffers` after their first `count` bytes (a short write). */
function dropBytes(buffers: Buffer[], count: number): Buffer[] {
  let skip = count;
  const rest: Buffer[] = [];
  for (const buffer of buffers) {
    if (skip >= buffer.length) {
      skip -= buffer.length;
      continue;
    }
    rest.push(skip > 0 ? buffer.subarray(skip) : buffer);
    skip = 0;
  }
  return rest;
}

/**
 * Appends to a partial file at a given offset and hashes what it writes. The hash is updated on
 * the main thread while the write runs on libuv's pool, so hashing and writing overlap; a
 * failed write marks the hash as untrusted (`hashTrusted`), because bytes may have been hashed
 * that never reached the file. `position` is always the count of bytes safely written.
 * The file is flushed to disk in the background as it is written (`WriteBehind`); a flush that
 * fails fails the next write, or the end.
 */
export class PartialFileWriter extends Writable {
  private handle: FileHandle | null = null;
  private inFlight: Promise<void> | null = null;
  private writeBehind: WriteBehind | null = null;
  private readonly writeBehindBytes: number | undefined;
  position: number;
  hashTrusted = true;

  constructor(
    private readonly path: string,
    start: number,
    private readonly hash: Hash,
    private readonly onWritten: (bytes: number) => void,
    options: { writeBehindBytes?: number } = {},
  ) {
    super({ highWaterMark: 4 * 1024 * 1024 });
    this.position = start;
    this.writeBehindBytes = options.writeBehindBytes;
  }

  /** Bytes from the start of the file that a background flush has put on disk. */
  get flushedBytes(): number {
    return this.writeBehind?.flushedBytes ?? 0;
  }

  override _construct(callback: (error?: Error | null) => void): void {
    // 'r+' keeps what is there; 'w' for a fresh file. The caller has truncated to `position`.
    open(this.path, this.position > 0 ? 'r+' : 'w').then(
      (handle) => {
        this.handle = handle;
        this.writeBehind = new WriteBehind(handle, this.writeBehindBytes);
        callback();
      },
      (error: Error) => callback(error),
    );
  }

  override _writev(chunks: { chunk: Buffer }[], callback: (error?: Error | null) => void): void {
    this.writeBuffers(chunks.map((c) => c.chunk)).then(() => callback(), callback);
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.writeBuffers([chunk]).then(() => callback(), callback);
  }

  private async writeBuffers(buffers: Buffer[]): Promise<void> {
    const writeBehind = this.writeBehind as WriteBehind;
    writeBehind.check();
    const handle = this.handle as FileHandle;
    const total = buffers.reduce((sum, b) => sum + b.length, 0);
    const write = (async () => {
      let pending = buffers;
      let position = this.position;
      while (pending.length > 0) {
        const { bytesWritten } = await handle.writev(pending, position);
        position += bytesWritten;
        pending = dropBytes(pending, bytesWritten);
      }
    })();
    this.inFlight = write.then(
      () => undefined,
      () => undefined,
    );
    for (const buffer of buffers) this.hash.update(buffer);
    try {
      await write;
    } catch (error) {
      this.hashTrusted = false;
      throw error;
    }
    this.position += total;
    this.onWritten(total);
    writeBehind.wrote(total, this.position);
  }

  override _final(callback: (error?: Error | null) => void): void {
    (this.writeBehind as WriteBehind).settle().then(() => callback(), callback);
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    // A write still running must end before the file is closed, or its bytes land after close.
    // So must a flush (it is on the same descriptor).
    Promise.all([this.inFlight, this.writeBehind?.idle()])
      .then(() => this.handle?.close())
      .then(
        () => callback(error),
        (closeError: Error) => callback(error ?? closeError),
      );
  }
}
