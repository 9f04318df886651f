import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { stat, truncate } from 'node:fs/promises';
import { Readable, Transform } from 'node:stream';
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
}

/**
 * Downloads an image's content into `file`. A partial `file` (a download that broke) is resumed
 * with Range from its size; the control plane answering 200 instead (it does not do that range)
 * starts it again. The whole file is then hashed and checked against the image's checksum, so a
 * partial file of some other download is found out rather than passed off as the image.
 */
export async function exportImageContent(
  api: QuantixClient,
  options: { imageId: string; file: string; onProgress?: (bytesDone: number, bytesTotal: number) => void },
): Promise<ExportedFile> {
  const { file, imageId } = options;
  const image = await api.request('getImage', { params: { id: imageId } });
  const total = image.sizeBytes ?? 0;
  let have = await stat(file).then(
    (info) => info.size,
    (error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT') return 0;
      throw error;
    },
  );
  // Larger than the image: not a partial download of it. Start again.
  if (have > total) {
    await truncate(file, 0);
    have = 0;
  }
  let resumedFrom = 0;
  if (have === 0 || have < total) {
    const response = await api.request('getImageContent', {
      params: { id: imageId },
      ...(have > 0 ? { headers: { range: `bytes=${have}-` } } : {}),
    });
    resumedFrom = response.status === 206 ? have : 0;
    let done = resumedFrom;
    const counter = new Transform({
      transform(chunk: Buffer, _encoding, next) {
        done += chunk.length;
        options.onProgress?.(done, total);
        next(null, chunk);
      },
    });
    if (!response.body) throw new ApiError(0, 'DOWNLOAD_FAILED', 'The control plane sent no content', {});
    await pipeline(
      Readable.fromWeb(response.body as WebReadableStream<Uint8Array>),
      counter,
      createWriteStream(file, { flags: resumedFrom > 0 ? 'a' : 'w' }),
    );
  }
  const hash = createHash('sha256');
  await pipeline(createReadStream(file), hash);
  const sha256 = hash.digest('hex');
  const expected = image.checksum?.algorithm === 'sha256' ? image.checksum.value.toLowerCase() : null;
  if (expected && sha256 !== expected) {
    throw new ApiError(
      0,
      'CHECKSUM_MISMATCH',
      `${file} has SHA-256 ${sha256}, not the image's ${expected}: remove it and export again`,
      { file, expected, actual: sha256 },
    );
  }
  const sizeBytes = (await stat(file)).size;
  return { sizeBytes, resumedFrom, sha256, verified: expected !== null };
}
