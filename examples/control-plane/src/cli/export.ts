import { createHash, type Hash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { rename, rm, stat } from 'node:fs/promises';
import { Readable, Transform, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import { ApiError, type QuantixClient } from '@quantix/client';

export interface ExportedFile {
  sizeBytes: number;
  /** Where this run started: the bytes of a partial file it kept (0: from the start). */
  resumedFrom: number;
  /** The file's SHA-256, checked against the image's when the image has one. */
  sha256: string;
  verified: boolean;
  /** The file was there already, and was the image: nothing was fetched. */
  alreadyThere: boolean;
}

/** The partial download of `file`: it becomes `file` only once whole (and verified, when the image has a SHA-256). */
const partialExportOf = (file: string): string => `${file}.part`;

const sizeOf = (path: string): Promise<number | null> =>
  stat(path).then(
    (info) => info.size,
    (error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT') return null;
      throw error;
    },
  );

/** Hashes the first `bytes` of `path` into `hash`. */
async function hashHead(path: string, bytes: number, hash: Hash): Promise<void> {
  if (bytes === 0) return;
  await pipeline(
    createReadStream(path, { end: bytes - 1 }),
    new Writable({
      write(chunk: Buffer, _encoding, next) {
        hash.update(chunk);
        next();
      },
    }),
  );
}

/**
 * Downloads an image's content into `file`, through `<file>.part`: a partial download (one that
 * broke) is resumed with Range from its size, and the part becomes `file` only once whole and,
 * when the image has a SHA-256, verified — a file at `file` is never half an image. The hash is
 * taken as the bytes arrive (a resumed part's bytes are read once, before). A resumed part that
 * proves not to be this image's beginning is thrown away and fetched once more from the start.
 * An existing `file` is left alone: when it is the image, nothing is fetched; when not, the export
 * is refused (ALREADY_EXISTS) unless `replace`, and then replaced only once the new one is whole.
 */
export async function exportImageContent(
  api: QuantixClient,
  options: {
    imageId: string;
    file: string;
    replace?: boolean;
    onProgress?: (bytesDone: number, bytesTotal: number) => void;
  },
): Promise<ExportedFile> {
  const { file, imageId } = options;
  const image = await api.request('getImage', { params: { id: imageId } });
  const total = image.sizeBytes ?? 0;
  const expected = image.checksum?.algorithm === 'sha256' ? image.checksum.value.toLowerCase() : null;
  const part = partialExportOf(file);

  const existing = await sizeOf(file);
  if (existing !== null && !options.replace) {
    if (expected && existing === total) {
      const hash = createHash('sha256');
      await hashHead(file, existing, hash);
      const sha256 = hash.digest('hex');
      if (sha256 === expected)
        return { sizeBytes: existing, resumedFrom: 0, sha256, verified: true, alreadyThere: true };
    }
    throw new ApiError(
      0,
      'ALREADY_EXISTS',
      `${file} exists and is not ${expected ? 'this image' : 'known to be this image (it has no SHA-256 to compare)'}: remove it, write elsewhere (-o), or give --force to replace it once the export is whole`,
      { file },
    );
  }

  for (let attempt = 0; ; attempt++) {
    let have = (await sizeOf(part)) ?? 0;
    // Larger than the image: not a partial download of it.
    if (have > total) have = 0;
    const hash = createHash('sha256');
    let resumedFrom = 0;
    if (have < total || total === 0) {
      const response = await api.request('getImageContent', {
        params: { id: imageId },
        ...(have > 0 ? { headers: { range: `bytes=${have}-` } } : {}),
      });
      if (!response.body) throw new ApiError(0, 'DOWNLOAD_FAILED', 'The control plane sent no content', {});
      // 200 to a Range: the whole file comes, and the part starts over.
      resumedFrom = response.status === 206 ? have : 0;
      await hashHead(part, resumedFrom, hash);
      let done = resumedFrom;
      const counter = new Transform({
        transform(chunk: Buffer, _encoding, next) {
          done += chunk.length;
          hash.update(chunk);
          options.onProgress?.(done, total);
          next(null, chunk);
        },
      });
      await pipeline(
        Readable.fromWeb(response.body as WebReadableStream<Uint8Array>),
        counter,
        createWriteStream(part, { flags: resumedFrom > 0 ? 'a' : 'w' }),
      );
    } else {
      // Whole already (the run before broke after the last byte): checked as it is.
      await hashHead(part, have, hash);
      resumedFrom = have;
    }
    const sha256 = hash.digest('hex');
    if (expected && sha256 !== expected) {
      await rm(part, { force: true });
      // A part kept from before may have been the beginning of something else: once more, whole.
      if (resumedFrom > 0 && attempt === 0) continue;
      throw new ApiError(
        0,
        'CHECKSUM_MISMATCH',
        `What arrived for ${file} has SHA-256 ${sha256}, not the image's ${expected}; nothing was written to ${file}: export again`,
        { file, expected, actual: sha256 },
      );
    }
    await rename(part, file);
    const sizeBytes = (await stat(file)).size;
    return { sizeBytes, resumedFrom, sha256, verified: expected !== null, alreadyThere: false };
  }
}
