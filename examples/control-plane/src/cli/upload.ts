import { createHash } from 'node:crypto';
import { createReadStream, type ReadStream } from 'node:fs';
import { mkdir, readFile, realpath, rm, stat } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { tusRetriable } from '@quantix/client';
import { sha256OfFile, writeFileAtomic } from '@quantix/core/light';
import { DetailedError, Upload } from 'tus-js-client';
import { ApiError, type ApiTarget } from './client.js';

/** Where the CLI keeps the URL of each unfinished upload, so a second run continues it. */
export function uploadStateDir(): string {
  const cache = process.env.XDG_CACHE_HOME || join(homedir(), '.cache');
  return join(cache, 'quantix', 'uploads');
}

/** Bytes read from the file at a time for the upload's body. */
const READ_BYTES = 1024 * 1024;

/**
 * tus-js-client's source for the file at `path`: each slice a file stream of 1 MiB reads. Its own
 * reads 64 KiB at a time, and each read is a round trip to libuv's threads before the socket has
 * more: a 64 MiB upload over loopback took 165–170 MiB/s that way, 191–193 with 1 MiB reads
 * (bench/upload, two runs each).
 */
export function tusFileReader(path: string, size: number): TusFileReader {
  return {
    // The input is the file stream the Upload was given, never read (as tus-js-client's own reader does).
    openFile: async (input: ReadStream) => ({
      size,
      slice: async (start, end) => {
        const stop = Math.min(end, size);
        // createReadStream's end is inclusive; the body's length is what tus-js-client announces.
        const body = Object.assign(createReadStream(path, { start, end: stop - 1, highWaterMark: READ_BYTES }), {
          size: stop - start,
        });
        return { value: body, done: stop >= size };
      },
      close: () => input.destroy(),
    }),
  };
}

type TusFileReader = NonNullable<NonNullable<ConstructorParameters<typeof Upload>[1]>['fileReader']>;

export interface ResumableUploadResult {
  imageId: string;
  /** The offset the server had when this run started (0 for a new upload). */
  resumedFrom: number;
  sizeBytes: number;
}

/**
 * Uploads a file with tus (tus-js-client): its SHA-256 goes with it for the server to check, and
 * the upload URL is kept in a state file keyed by the file's path, size and mtime (and the
 * target), so running the same command again after an interruption continues from the server's
 * offset instead of starting over. The state file is removed once the server has the whole file.
 */
export async function resumableUpload(options: {
  target: ApiTarget;
  path: string;
  poolId: string;
  name: string;
  kind: 'iso' | 'disk';
  chunkSize?: number;
  stateDir?: string;
  onProgress?: (bytesSent: number, bytesTotal: number) => void;
}): Promise<ResumableUploadResult> {
  const path = await realpath(options.path);
  const info = await stat(path);
  if (!info.isFile()) throw new ApiError(0, 'INVALID_INPUT', `${options.path} is not a file`, {});
  const key = createHash('sha256')
    .update(
      JSON.stringify([path, info.size, info.mtimeMs, options.target.url, options.poolId, options.name, options.kind]),
    )
    .digest('hex');
  const stateDir = options.stateDir ?? uploadStateDir();
  const stateFile = join(stateDir, `${key}.json`);
  const saved = await readFile(stateFile, 'utf8')
    .then((text) => JSON.parse(text) as { uploadUrl?: string; sha256?: string })
    .catch(() => ({}) as { uploadUrl?: string; sha256?: string });
  // The hash is taken once per file version (the key has its size and mtime), not on every resume.
  const sha256 = saved.sha256 ?? (await sha256OfFile(path));
  await mkdir(stateDir, { recursive: true, mode: 0o700 });

  // The state file's last write, which forgetting it waits for (else a late rename would bring it back).
  let stateSaved: Promise<unknown> = Promise.resolve();
  const forgetState = () => stateSaved.then(() => rm(stateFile, { force: true })).catch(() => undefined);
  let resumedFrom = 0;
  let sawOffset = false;
  const endpoint = `${options.target.url}/api/v1/uploads/tus`;
  return new Promise<ResumableUploadResult>((resolve, reject) => {
    const upload = new Upload(createReadStream(path), {
      endpoint,
      fileReader: tusFileReader(path, info.size),
      ...(saved.uploadUrl ? { uploadUrl: saved.uploadUrl } : {}),
      uploadSize: info.size,
      metadata: { poolId: options.poolId, name: options.name, kind: options.kind, sha256 },
      headers: { authorization: `Bearer ${options.target.token}` },
      ...(options.chunkSize ? { chunkSize: options.chunkSize } : {}),
      retryDelays: [0, 1000, 3000, 5000],
      onShouldRetry: retriable,
      onUploadUrlAvailable: () => {
        // A CLI killed mid-write leaves the last whole state, never half of one.
        stateSaved = writeFileAtomic(stateFile, JSON.stringify({ uploadUrl: upload.url, sha256 }), {
          mode: 0o600,
        }).catch(() => undefined);
      },
      onAfterResponse: (request, response) => {
        // The first HEAD of a resumed upload says where the server is.
        if (!sawOffset && request.getMethod() === 'HEAD' && response.getStatus() === 200) {
          sawOffset = true;
          resumedFrom = Number(response.getHeader('Upload-Offset') ?? 0);
        }
      },
      onProgress: (sent, total) => options.onProgress?.(sent, total),
      onSuccess: ({ lastResponse }) => {
        const imageId = lastResponse.getHeader('Quantix-Image-Id');
        void forgetState().then(() =>
          imageId
            ? resolve({ imageId, resumedFrom, sizeBytes: info.size })
            : reject(new ApiError(0, 'UPLOAD_FAILED', 'The server took the upload but named no image', {})),
        );
      },
      onError: (error) => {
        const { apiError, refused } = toApiError(error);
        // A refused upload is gone on the server: the next run starts afresh.
        if (refused) void forgetState().then(() => reject(apiError));
        else reject(apiError);
      },
    });
    upload.start();
  });
}

/**
 * The server's `{ error: { code, message } }` when it answered with one (it `refused` the upload);
 * else the transport's error.
 */
function toApiError(error: Error | DetailedError): { apiError: ApiError; refused: boolean } {
  const response = error instanceof DetailedError ? error.originalResponse : null;
  if (response) {
    const status = response.getStatus();
    try {
      const body = JSON.parse(response.getBody()) as {
        error?: { code: string; message: string; details?: Record<string, unknown> };
      };
      if (body.error) {
        return {
          apiError: new ApiError(status, body.error.code, body.error.message, body.error.details ?? {}),
          refused: true,
        };
      }
    } catch {
      // not JSON: @tus/server's own plain-text answer, reported below
    }
    return {
      apiError: new ApiError(status, 'UPLOAD_FAILED', `${status}: ${response.getBody().trim()}`, {}),
      refused: false,
    };
  }
  return {
    apiError: new ApiError(
      0,
      'UPLOAD_INCOMPLETE',
      `The upload was interrupted (${error.message}); run the same command again to continue`,
      {},
    ),
    refused: false,
  };
}

/** tus-js-client's retry question, answered by the client package's one rule. */
function retriable(error: Error | DetailedError): boolean {
  const response = error instanceof DetailedError ? error.originalResponse : null;
  return tusRetriable(response ? response.getStatus() : null, response?.getBody() ?? '');
}
