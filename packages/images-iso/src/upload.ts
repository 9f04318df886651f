import { createHash, randomUUID } from 'node:crypto';
import { constants } from 'node:fs';
import { link, lstat, open, readdir, rename, rmdir, unlink } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import {
  assertRelPath,
  type Checksum,
  callBackend,
  ErrorCode,
  type EventBus,
  hasUnsafeNameCharacter,
  type Image,
  type ImageRepository,
  imageIdForLocation,
  isQuantixError,
  QuantixError,
  type StorageBackend,
  type StoragePool,
} from '@quantix/core';
import type { LoadOsinfoOptions } from './osinfo.js';
import { type InspectedIso, type IsoLogger, inspectIso, loadOsinfo } from './scanner.js';

/** Default upload size limit: 16 GiB, above any single-layer installation DVD. */
export const DEFAULT_MAX_UPLOAD_BYTES = 16 * 1024 ** 3;
/** Longest file name accepted, in UTF-8 bytes (the usual NAME_MAX). */
const MAX_NAME_BYTES = 255;
/** Temporary files are dotfiles with this prefix and a `.partial` suffix, which pool listings skip. */
export const UPLOAD_TEMP_PREFIX = '.upload-';
export const UPLOAD_TEMP_SUFFIX = '.iso.partial';

function invalidName(name: unknown, why: string): QuantixError {
  return new QuantixError(ErrorCode.INVALID_INPUT, `Invalid ISO file name ${JSON.stringify(name)}: ${why}`, {
    details: { fileName: name, issues: [{ path: 'fileName', message: why }] },
  });
}

/**
 * Checks an uploaded file's name and returns it as it will be stored: Unicode-normalised (NFC)
 * with surrounding white space trimmed, otherwise kept as given so it stays readable. Refused
 * (INVALID_INPUT): empty names; path separators (`/`, `\`); `..` anywhere; control characters;
 * a leading dot (hidden files are skipped by scans, so the ISO would never be seen); names over
 * 255 bytes; and names that do not end in `.iso` (pool listings find ISOs by that extension).
 * Control and bidirectional formatting characters (U+202E shows `gpj.iso` backwards) are refused
 * as in every other name.
 */
export function sanitizeIsoFileName(fileName: unknown): string {
  if (typeof fileName !== 'string') throw invalidName(fileName, 'must be a string');
  const name = fileName.normalize('NFC').trim();
  if (name === '') throw invalidName(fileName, 'is empty');
  if (name.includes('/') || name.includes('\\')) throw invalidName(fileName, 'contains a path separator');
  if (name.includes('..')) throw invalidName(fileName, "contains '..'");
  if (hasUnsafeNameCharacter(name)) {
    throw invalidName(
      fileName,
      'contains a control character or a bidirectional formatting character (such as U+202E)',
    );
  }
  if (name.startsWith('.')) throw invalidName(fileName, 'starts with a dot (hidden files are not scanned)');
  if (Buffer.byteLength(name, 'utf8') > MAX_NAME_BYTES)
    throw invalidName(fileName, `is longer than ${MAX_NAME_BYTES} bytes`);
  if (!/\.iso$/i.test(name) || name.length === 4) throw invalidName(fileName, 'must end in .iso');
  return name;
}

export interface CheckUploadedIsoOptions {
  /** Where the uploaded bytes are (a temporary or staged file). */
  path: string;
  /** The name the uploader gave, used to identify the OS by name as a last resort. */
  fileName: string;
  /** Where osinfo-db is, or false for the built-in table only. */
  osinfo?: LoadOsinfoOptions | false;
  signal?: AbortSignal;
  logger?: IsoLogger;
}

/**
 * The one check every ISO upload passes before it is kept, wherever the bytes landed: they must
 * read as an ISO 9660 image (with or without a UDF bridge), or the upload is refused with the
 * reader's ISO_* code (ISO_EMPTY, ISO_TRUNCATED, ISO_NOT_ISO9660, ISO_MALFORMED — 422 over HTTP):
 * a text file named `.iso` is not an ISO. What it finds identifies the OS at once, as a scan
 * would, so an upload is never left "unknown" until the next rescan.
 */
export async function checkUploadedIso(
  options: CheckUploadedIsoOptions,
): Promise<Omit<InspectedIso, 'relPath' | 'modifiedAt'>> {
  const osinfo = options.osinfo === false ? null : await loadOsinfo(options.osinfo ?? {}, options.logger);
  return inspectIso({ path: options.path, fileName: options.fileName, osinfo, signal: options.signal });
}

export interface UploadIsoOptions {
  pool: StoragePool;
  backend: StorageBackend;
  /** When given, the uploaded ISO is recorded as a `ready` image row. */
  images?: ImageRepository;
  /** The name the uploader gave; checked with sanitizeIsoFileName. */
  fileName: string;
  /** Directory inside the pool to put the file in (a relPath); default the pool root. */
  directory?: string;
  /** The bytes: a Node stream (an HTTP request), a web ReadableStream, or any async iterable of chunks. */
  body: AsyncIterable<Uint8Array> | ReadableStream<Uint8Array>;
  /** Largest upload accepted, in bytes. Default DEFAULT_MAX_UPLOAD_BYTES. */
  maxBytes?: number;
  /** The size the uploader announced (Content-Length); a different byte count is UPLOAD_INCOMPLETE. */
  expectedSize?: number;
  /** A checksum the uploader announced; a different one is CHECKSUM_MISMATCH and nothing is kept. */
  expectedChecksum?: Checksum;
  nodeId?: string | null;
  osinfo?: LoadOsinfoOptions | false;
  signal?: AbortSignal;
  logger?: IsoLogger;
  events?: EventBus;
}

export interface UploadIsoResult {
  relPath: string;
  sizeBytes: number;
  /** SHA-256 of the bytes, computed while they were written. */
  checksum: Checksum;
  inspected: InspectedIso;
  /** The image row, when a repository was given. */
  image: Image | null;
}

function toAsyncIterable(body: UploadIsoOptions['body']): AsyncIterable<Uint8Array> {
  if (Symbol.asyncIterator in body) return body as AsyncIterable<Uint8Array>;
  const stream = body as ReadableStream<Uint8Array>;
  return {
    async *[Symbol.asyncIterator]() {
      const reader = stream.getReader();
      try {
        for (;;) {
          const { done, value } = await reader.read();
          if (done) return;
          yield value;
        }
      } finally {
        reader.releaseLock();
      }
    },
  };
}

/**
 * Streams an ISO into a pool. The bytes go to a hidden temporary file beside the destination
 * (`.upload-<uuid>.iso.partial`, which scans never list), hashed with SHA-256 on the way; only a
 * complete upload, within the size limit, matching any announced size and checksum, that reads as
 * an ISO, is flushed to disk (fsync) and linked into place under its name — never over an existing
 * file (ALREADY_EXISTS). Then, when a repository is given, it is recorded as a `ready` image.
 *
 * Whatever goes wrong — the stream fails or is aborted (UPLOAD_INCOMPLETE), too many bytes
 * (UPLOAD_TOO_LARGE), a checksum mismatch (CHECKSUM_MISMATCH), not an ISO (ISO_*) — the
 * temporary file is removed: no visible file and no row are left. A process killed mid-upload
 * leaves only the hidden temporary file, which removeStaleUploads clears.
 */
export async function uploadIso(options: UploadIsoOptions): Promise<UploadIsoResult> {
  const { pool, backend, signal } = options;
  const name = sanitizeIsoFileName(options.fileName);
  const directory = options.directory ? assertRelPath(options.directory) : '';
  const relPath = directory ? `${directory}/${name}` : name;
  const maxBytes = options.maxBytes ?? DEFAULT_MAX_UPLOAD_BYTES;
  if (options.expectedSize !== undefined && options.expectedSize > maxBytes) {
    throw new QuantixError(
      ErrorCode.UPLOAD_TOO_LARGE,
      `${name} is ${options.expectedSize} bytes; uploads to pool ${pool.id} may be at most ${maxBytes} bytes`,
      { details: { relPath, sizeBytes: options.expectedSize, maxBytes } },
    );
  }
  signal?.throwIfAborted();

  // Both paths come from the backend, so they are confined to the pool like any other.
  const tempRelPath = `${directory ? `${directory}/` : ''}${UPLOAD_TEMP_PREFIX}${randomUUID()}${UPLOAD_TEMP_SUFFIX}`;
  const finalPath = await callBackend(backend, 'resolve', { pool, relPath });
  const tempPath = await callBackend(backend, 'resolve', { pool, relPath: tempRelPath });
  if (dirname(tempPath) !== dirname(finalPath)) {
    throw new QuantixError(ErrorCode.PATH_ESCAPES_POOL, `Upload paths for ${relPath} do not share a directory`, {
      details: { relPath },
    });
  }
  await assertAbsent(finalPath, relPath);

  const hash = createHash('sha256');
  let sizeBytes = 0;
  let handle: Awaited<ReturnType<typeof open>> | undefined;
  let placed = false;
  /** Directories this upload creates, deepest first, removed again if it fails. */
  let createdDirectories: string[] = [];
  try {
    let flags = constants.O_WRONLY | constants.O_NOFOLLOW;
    createdDirectories = await missingDirectories(pool, backend, directory);
    if (backend.allocate) {
      // The backend creates the file, and any missing directories, inside the pool (never over anything).
      await backend.allocate({ pool, relPath: tempRelPath });
    } else {
      flags |= constants.O_CREAT | constants.O_EXCL;
    }
    try {
      handle = await open(tempPath, flags, 0o644);
    } catch (error) {
      throw new QuantixError(
        (error as NodeJS.ErrnoException).code === 'ENOENT' ? ErrorCode.NOT_FOUND : ErrorCode.POOL_UNAVAILABLE,
        `Cannot write into pool ${pool.id} at ${directory || '/'}: ${(error as Error).message}`,
        { details: { poolId: pool.id, directory, errno: (error as NodeJS.ErrnoException).code }, cause: error },
      );
    }
    try {
      for await (const piece of toAsyncIterable(options.body)) {
        signal?.throwIfAborted();
        // A stream in string mode yields strings; everything else yields bytes.
        const chunk = typeof piece === 'string' ? Buffer.from(piece) : piece;
        sizeBytes += chunk.byteLength;
        if (sizeBytes > maxBytes) {
          throw new QuantixError(
            ErrorCode.UPLOAD_TOO_LARGE,
            `${name} is larger than the ${maxBytes}-byte limit for uploads to pool ${pool.id}`,
            { details: { relPath, maxBytes } },
          );
        }
        hash.update(chunk);
        for (let written = 0; written < chunk.byteLength; ) {
          written += (await handle.write(chunk, written, chunk.byteLength - written)).bytesWritten;
        }
      }
      signal?.throwIfAborted();
    } catch (error) {
      if (isQuantixError(error)) throw error;
      throw new QuantixError(
        ErrorCode.UPLOAD_INCOMPLETE,
        `Upload of ${name} stopped after ${sizeBytes} bytes: ${(error as Error)?.message ?? String(error)}`,
        { details: { relPath, bytesReceived: sizeBytes }, cause: error },
      );
    }
    if (options.expectedSize !== undefined && sizeBytes !== options.expectedSize) {
      throw new QuantixError(
        ErrorCode.UPLOAD_INCOMPLETE,
        `Upload of ${name} ended after ${sizeBytes} of ${options.expectedSize} bytes`,
        { details: { relPath, bytesReceived: sizeBytes, expectedSize: options.expectedSize } },
      );
    }
    const checksum: Checksum = { algorithm: 'sha256', value: hash.digest('hex') };
    const expected = options.expectedChecksum;
    if (expected) {
      if (expected.algorithm !== 'sha256') {
        throw new QuantixError(ErrorCode.INVALID_INPUT, `Uploads are verified with sha256, not ${expected.algorithm}`, {
          details: { algorithm: expected.algorithm },
        });
      }
      if (expected.value.toLowerCase() !== checksum.value) {
        throw new QuantixError(
          ErrorCode.CHECKSUM_MISMATCH,
          `${name} has sha256 ${checksum.value}, not ${expected.value}`,
          {
            details: { relPath, expected: expected.value.toLowerCase(), actual: checksum.value },
          },
        );
      }
    }
    await handle.sync();
    await handle.close();
    handle = undefined;

    const found = await checkUploadedIso({
      path: tempPath,
      fileName: name,
      osinfo: options.osinfo,
      signal,
      logger: options.logger,
    });

    signal?.throwIfAborted();
    await placeWithoutOverwrite(tempPath, finalPath, relPath);
    placed = true;
    await syncDirectory(dirname(finalPath));
    const modifiedAt = (await lstat(finalPath)).mtime;
    const inspected: InspectedIso = { ...found, relPath, modifiedAt };

    let image: Image | null = null;
    if (options.images) {
      const nodeId = pool.shared ? null : (options.nodeId ?? null);
      await options.images.upsertByLocation([
        {
          poolId: pool.id,
          relPath,
          kind: 'iso',
          format: 'iso',
          name,
          sizeBytes,
          fileModifiedAt: modifiedAt,
          nodeId,
          os: found.identification.os,
          labels: found.labels,
        },
      ]);
      const id = imageIdForLocation(pool.id, relPath);
      image = await options.images.require(id);
      const patch = {
        checksum,
        ...(found.firmware === 'any' ? {} : { requirements: { ...image.requirements, firmware: found.firmware } }),
      };
      image = await options.images.update(id, patch, { expectedVersion: image.version });
      options.events?.emit('image.phase', { imageId: id, from: null, to: 'ready', error: null });
    }
    options.logger?.debug({ poolId: pool.id, relPath, sizeBytes }, 'ISO uploaded');
    return { relPath, sizeBytes, checksum, inspected, image };
  } catch (error) {
    // Nothing half-written stays: the temporary file goes, the final name was never taken.
    await handle?.close().catch(() => undefined);
    if (!placed) {
      await unlink(tempPath).catch(() => undefined);
      for (const path of createdDirectories) await rmdir(path).catch(() => undefined);
    }
    options.logger?.warn({ poolId: pool.id, relPath, code: (error as QuantixError).code }, 'ISO upload refused');
    throw error;
  }
}

/** Absolute paths of the directories of `directory` (a relPath) that do not exist yet, deepest first. */
async function missingDirectories(pool: StoragePool, backend: StorageBackend, directory: string): Promise<string[]> {
  const missing: string[] = [];
  const segments = directory ? directory.split('/') : [];
  for (let depth = segments.length; depth > 0; depth--) {
    const path = await callBackend(backend, 'resolve', { pool, relPath: segments.slice(0, depth).join('/') });
    const exists = await lstat(path).then(
      () => true,
      () => false,
    );
    if (exists) break;
    missing.push(path);
  }
  return missing;
}

async function assertAbsent(path: string, relPath: string): Promise<void> {
  try {
    await lstat(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw error;
  }
  throw new QuantixError(ErrorCode.ALREADY_EXISTS, `${relPath} already exists in the pool`, { details: { relPath } });
}

/**
 * Gives the complete file its name atomically and without replacing anything: link(2) fails with
 * EEXIST when the name is taken (rename(2) would overwrite). Filesystems without hard links fall
 * back to a check and a rename, which only a racing writer of the same name can defeat.
 */
async function placeWithoutOverwrite(tempPath: string, finalPath: string, relPath: string): Promise<void> {
  try {
    await link(tempPath, finalPath);
    await unlink(tempPath);
    return;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') {
      throw new QuantixError(ErrorCode.ALREADY_EXISTS, `${relPath} already exists in the pool`, {
        details: { relPath },
        cause: error,
      });
    }
    if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP' && code !== 'EXDEV') throw error;
  }
  await assertAbsent(finalPath, relPath);
  await rename(tempPath, finalPath);
}

/** Makes the new directory entry durable, as the file's own fsync does not. */
async function syncDirectory(path: string): Promise<void> {
  const directory = await open(path, constants.O_RDONLY | constants.O_DIRECTORY).catch(() => undefined);
  if (!directory) return;
  try {
    await directory.sync();
  } catch {
    // Some filesystems (and NFS) refuse fsync on directories; the data itself is already synced.
  } finally {
    await directory.close();
  }
}

export interface RemoveStaleUploadsOptions {
  pool: StoragePool;
  backend: StorageBackend;
  /** Directory inside the pool (a relPath); default the root. */
  directory?: string;
  /** Temporary files older than this are removed. Default one day. */
  olderThanMs?: number;
}

/**
 * Removes temporary files of uploads that never finished (the process was killed mid-way), which
 * no scan lists. Only names this module creates are touched. Returns the names removed.
 */
export async function removeStaleUploads(options: RemoveStaleUploadsOptions): Promise<string[]> {
  const directory = options.directory ? assertRelPath(options.directory) : '';
  // Resolve a name inside the directory (the backend resolves files, not the root itself).
  const probe = await callBackend(options.backend, 'resolve', {
    pool: options.pool,
    relPath: `${directory ? `${directory}/` : ''}${UPLOAD_TEMP_PREFIX}probe${UPLOAD_TEMP_SUFFIX}`,
  });
  const dir = dirname(probe);
  const cutoff = Date.now() - (options.olderThanMs ?? 24 * 3600 * 1000);
  const removed: string[] = [];
  const pattern = /^\.upload-[0-9a-f-]{36}\.iso\.partial$/;
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    if (!entry.isFile() || !pattern.test(entry.name)) continue;
    const path = join(dir, entry.name);
    const info = await lstat(path).catch(() => undefined);
    if (info && info.mtimeMs < cutoff) {
      await unlink(path).catch(() => undefined);
      removed.push(entry.name);
    }
  }
  return removed;
}
