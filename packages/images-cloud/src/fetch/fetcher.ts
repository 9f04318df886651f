import { createHash, type Hash } from 'node:crypto';
import { mkdir, rename, stat } from 'node:fs/promises';
import type { IncomingMessage, OutgoingHttpHeaders } from 'node:http';
import { dirname, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  type Checksum,
  type ChecksumAlgorithm,
  type ChecksumRequest,
  ConcurrencyLimiter,
  ErrorCode,
  type FetchProgress,
  type FetchRequest,
  type FetchResult,
  fileNameOfUrl,
  hashFile,
  type ImageFetcher,
  type ImageFormat,
  isQuantixError,
  QuantixError,
  requireRoom,
} from '@quantix/core';
import { type Logger, pino } from 'pino';
import { ImagesCloudErrorCode } from '../errors.js';
import { assertChecksum, checksumForFile } from './checksum.js';
import { isTransient, networkError, openResponse, readSmallBody, statusError } from './http.js';
import { type ImageInspection, type ImageInspector, QemuImgInspector } from './inspect.js';
import {
  metaPathOf,
  PartialFileWriter,
  type PartialMeta,
  partialPathOf,
  readMeta,
  removeQuietly,
  sizeOf,
  sourceIdentity,
  syncDirectory,
  syncFile,
  truncateTo,
  writeMeta,
} from './partial.js';
import { type ResolveHost, SourceGuard, type SourcePolicy } from './policy.js';
import { ProgressMeter } from './progress.js';

/** Where a fetch is: waiting for a slot, moving bytes, or checking them. */
export type FetchStage = 'queued' | 'downloading' | 'verifying';

export interface CloudFetchRequest extends FetchRequest {
  /** Which line of the checksum file to use when it lists several algorithms; default: the strongest. */
  checksumAlgorithm?: ChecksumAlgorithm | null;
  /** Called when the fetch changes stage (a queued fetch starts; the bytes are in and are being verified). */
  onStage?: (stage: FetchStage) => void;
}

export interface CloudFetchResult extends FetchResult {
  /** As qemu-img reports it; null when the format has no Quantix name or no inspector is set. */
  format: ImageFormat | null;
  detectedFormat: string | null;
  virtualSizeBytes: number | null;
  /** The URL that served the bytes, after redirects. */
  finalUrl: string;
  etag: string | null;
  lastModified: string | null;
  /** HTTP requests made for the image itself (retries included). */
  attempts: number;
  /** Times the download started over from byte 0 because the source changed or ignored Range. */
  restarts: number;
  /** The destination already held the verified file; nothing was downloaded. */
  alreadyPresent: boolean;
}

export interface RetryOptions {
  /** Attempts in a row that make no progress before giving up. Default 5. */
  attempts?: number;
  /** First back-off delay; doubled each time, with jitter. Default 500 ms. */
  baseDelayMs?: number;
  maxDelayMs?: number;
}

export interface HttpImageFetcherOptions {
  /** Which URLs may be fetched. Default DEFAULT_SOURCE_POLICY: http(s) to public addresses only. */
  policy?: SourcePolicy;
  /** Downloads running at once; more wait in line. Default 2. */
  concurrency?: number;
  retry?: RetryOptions;
  /** A connection idle this long is dropped and retried. Default 30 s. */
  idleTimeoutMs?: number;
  /** Least time between two progress reports (a whole percent also reports). Default 250 ms. */
  progressIntervalMs?: number;
  /** Reads format and virtual size; default qemu-img. null skips it (format and size stay null). */
  inspector?: ImageInspector | null;
  /** Refuse a request with neither checksum nor checksumUrl. Default true. */
  requireChecksum?: boolean;
  /** Largest checksum file read. Default 4 MiB. */
  checksumFileMaxBytes?: number;
  userAgent?: string;
  /** CA certificates for HTTPS mirrors with a private CA. */
  ca?: string | Buffer | readonly (string | Buffer)[];
  logger?: Logger;
  /** Host name resolution, for policy checks and connections; default dns.lookup. */
  resolveHost?: ResolveHost;
}

const MAX_RESTARTS = 3;

/** Thrown inside a download when the partial file must be dropped and the source read from byte 0. */
class StartOver extends Error {}

interface Caller {
  onProgress?: (progress: FetchProgress) => void;
  onStage?: (stage: FetchStage) => void;
}

interface Job {
  key: string;
  request: CloudFetchRequest;
  controller: AbortController;
  callers: Set<Caller>;
  stage: FetchStage;
  lastProgress: FetchProgress | null;
  promise: Promise<CloudFetchResult>;
}

interface TransferState {
  algorithm: ChecksumAlgorithm;
  offset: number;
  hash: Hash;
  hashTrusted: boolean;
  meta: PartialMeta | null;
  resumed: boolean;
  bytesTransferred: number;
  attempts: number;
  restarts: number;
  finalUrl: string;
}

function cancelled(request: Pick<FetchRequest, 'sourceUrl'>, reason: unknown): QuantixError {
  const why = reason instanceof Error ? reason.message : typeof reason === 'string' ? reason : 'aborted';
  return new QuantixError(
    ErrorCode.DOWNLOAD_CANCELLED,
    `Download of ${request.sourceUrl} was cancelled (${why}); the partial file is kept for a resume`,
    { details: { url: request.sourceUrl, reason: why, retryable: true } },
  );
}

function strongEtag(etag: string | null | undefined): string | null {
  return etag && !etag.startsWith('W/') ? etag : null;
}

function header(response: IncomingMessage, name: string): string | null {
  const value = response.headers[name];
  return typeof value === 'string' && value !== '' ? value : null;
}

/** Parses Content-Range: `bytes 100-199/1000` gives start 100 and total 1000; an unsatisfied range gives start null. */
export function parseContentRange(value: string | null): { start: number | null; total: number | null } | null {
  if (!value) return null;
  const match = /^bytes\s+(?:(\d+)-(\d+)|\*)\/(\d+|\*)$/i.exec(value.trim());
  if (!match) return null;
  return {
    start: match[1] === undefined ? null : Number(match[1]),
    total: match[3] === '*' || match[3] === undefined ? null : Number(match[3]),
  };
}

/**
 * Pipes a response into the partial file. Unlike stream.pipeline, a failure of the response (the
 * connection dropped, the download cancelled) ends the file gracefully: bytes that arrived and
 * wait in the writer's buffer (while it is still opening the file, say) are written, not thrown
 * away, so a resume asks only for what really is missing. Rejects with the response's error.
 */
function copyKeepingWhatArrived(
  response: IncomingMessage,
  writer: PartialFileWriter,
  signal: AbortSignal,
): Promise<void> {
  return new Promise<void>((resolvePromise, reject) => {
    let sourceError: unknown = null;
    const stopSource = (error: unknown) => {
      if (sourceError !== null) return;
      sourceError = error;
      response.unpipe(writer);
      response.destroy();
      writer.end();
    };
    const onAbort = () => stopSource(signal.reason ?? new Error('aborted'));
    signal.addEventListener('abort', onAbort, { once: true });
    response.once('error', stopSource);
    // A body cut short without an error event (no Content-Length check by Node) ends early; the
    // caller compares the length written with the length announced.
    response.once('aborted', () => stopSource(Object.assign(new Error('aborted'), { code: 'ECONNRESET' })));
    writer.once('finish', () => {
      signal.removeEventListener('abort', onAbort);
      if (sourceError !== null) reject(sourceError);
      else resolvePromise();
    });
    writer.once('error', (error) => {
      signal.removeEventListener('abort', onAbort);
      response.destroy();
      reject(error);
    });
    if (signal.aborted) onAbort();
    else response.pipe(writer);
  });
}

/** Exponential back-off with "equal jitter": half fixed, half random, so retries spread out. */
export function backoffDelay(attempt: number, options: Required<RetryOptions>): number {
  const exponential = Math.min(options.maxDelayMs, options.baseDelayMs * 2 ** Math.max(0, attempt - 1));
  return exponential / 2 + Math.random() * (exponential / 2);
}

/**
 * The ImageFetcher for HTTP and HTTPS. Streams into `<dest>.partial`, hashing as it writes;
 * resumes a partial file with Range + If-Range (ETag, or Last-Modified), and starts over when
 * the source changed or the server ignores ranges; verifies sha256/sha512 (given, or read from
 * a SHA256SUMS-style file); inspects the image with qemu-img; fsyncs and renames into place only
 * when all of that passed. Two requests for one destination share one download.
 */
export class HttpImageFetcher implements ImageFetcher {
  readonly schemes: readonly string[];
  readonly guard: SourceGuard;
  private readonly limiter: ConcurrencyLimiter;
  private readonly retry: Required<RetryOptions>;
  private readonly idleTimeoutMs: number;
  private readonly progressIntervalMs: number;
  private readonly inspector: ImageInspector | null;
  private readonly requireChecksum: boolean;
  private readonly checksumFileMaxBytes: number;
  private readonly userAgent: string;
  private readonly ca: HttpImageFetcherOptions['ca'];
  private readonly logger: Logger;
  private readonly jobs = new Map<string, Job>();

  constructor(options: HttpImageFetcherOptions = {}) {
    this.guard = new SourceGuard(options.policy, options.resolveHost);
    this.schemes = ['http', 'https'].filter((scheme) =>
      (options.policy?.schemes ?? ['http', 'https']).includes(scheme),
    );
    this.limiter = new ConcurrencyLimiter(options.concurrency ?? 2);
    this.retry = {
      attempts: options.retry?.attempts ?? 5,
      baseDelayMs: options.retry?.baseDelayMs ?? 500,
      maxDelayMs: options.retry?.maxDelayMs ?? 30_000,
    };
    this.idleTimeoutMs = options.idleTimeoutMs ?? 30_000;
    this.progressIntervalMs = options.progressIntervalMs ?? 250;
    this.inspector = options.inspector === undefined ? new QemuImgInspector() : options.inspector;
    this.requireChecksum = options.requireChecksum ?? true;
    this.checksumFileMaxBytes = options.checksumFileMaxBytes ?? 4 * 1024 * 1024;
    this.userAgent = options.userAgent ?? 'quantix-images-cloud/0.1';
    this.ca = options.ca;
    this.logger = options.logger ?? pino({ level: 'silent' });
  }

  /** Downloads running or waiting, by destination path. */
  get activeDownloads(): { destinationPath: string; sourceUrl: string; stage: FetchStage }[] {
    return [...this.jobs.values()].map((job) => ({
      destinationPath: job.key,
      sourceUrl: job.request.sourceUrl,
      stage: job.stage,
    }));
  }

  /**
   * Checks a source against the policy (scheme, host, port, and the addresses its host resolves
   * to) without requesting anything: lets a caller refuse a download before recording it.
   */
  async checkSource(options: { sourceUrl: string; checksumUrl?: string | null }): Promise<void> {
    await this.guard.checkSource(options.sourceUrl);
    if (options.checksumUrl) await this.guard.checkSource(options.checksumUrl);
  }

  fetch(request: CloudFetchRequest): Promise<CloudFetchResult> {
    try {
      this.validate(request);
    } catch (error) {
      return Promise.reject(error);
    }
    if (request.signal?.aborted) return Promise.reject(cancelled(request, request.signal.reason));
    const key = resolve(request.destinationPath);
    let job = this.jobs.get(key);
    if (job) {
      const mine = job.request;
      const checksumsDiffer =
        request.checksum && mine.checksum && request.checksum.value.toLowerCase() !== mine.checksum.value.toLowerCase();
      if (mine.sourceUrl !== request.sourceUrl || checksumsDiffer) {
        return Promise.reject(
          new QuantixError(
            ErrorCode.ALREADY_EXISTS,
            `${key} is already being downloaded from ${mine.sourceUrl}; one destination takes one source at a time`,
            { details: { destinationPath: key, sourceUrl: mine.sourceUrl, retryable: true } },
          ),
        );
      }
    } else {
      job = this.startJob(key, request);
    }
    return this.attach(job, request);
  }

  private validate(request: CloudFetchRequest): void {
    if (typeof request.destinationPath !== 'string' || !request.destinationPath.startsWith('/')) {
      throw new QuantixError(ErrorCode.INVALID_INPUT, 'destinationPath must be an absolute path', {
        details: { destinationPath: request.destinationPath },
      });
    }
    // Scheme, host and port are refused here, before anything is queued or requested.
    this.guard.checkUrl(request.sourceUrl);
    if (request.checksumUrl) this.guard.checkUrl(request.checksumUrl);
    if (request.checksum) assertChecksum(request.checksum);
    if (!request.checksum && !request.checksumUrl && this.requireChecksum) {
      throw new QuantixError(
        ImagesCloudErrorCode.CHECKSUM_UNAVAILABLE,
        `No checksum or checksum file given for ${request.sourceUrl}; an unverified download is refused`,
        { details: { url: request.sourceUrl, retryable: false } },
      );
    }
  }

  private startJob(key: string, request: CloudFetchRequest): Job {
    const job: Job = {
      key,
      request,
      controller: new AbortController(),
      callers: new Set(),
      stage: 'queued',
      lastProgress: null,
      promise: Promise.resolve() as unknown as Promise<CloudFetchResult>,
    };
    job.promise = this.run(job).finally(() => this.jobs.delete(key));
    // Callers observe the promise through attach(); this keeps an unobserved failure quiet.
    job.promise.catch(() => undefined);
    this.jobs.set(key, job);
    return job;
  }

  /** Joins a caller to a job: its progress and stage callbacks, and its own cancellation. */
  private attach(job: Job, request: CloudFetchRequest): Promise<CloudFetchResult> {
    const caller: Caller = { onProgress: request.onProgress, onStage: request.onStage };
    job.callers.add(caller);
    if (job.stage !== 'queued') caller.onStage?.(job.stage);
    if (job.lastProgress) caller.onProgress?.(job.lastProgress);
    return new Promise<CloudFetchResult>((resolvePromise, reject) => {
      const signal = request.signal;
      const onAbort = () => {
        job.callers.delete(caller);
        reject(cancelled(request, signal?.reason));
        // The download stops only when nobody is waiting for it any more.
        if (job.callers.size === 0) job.controller.abort(signal?.reason);
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      job.promise.then(
        (result) => {
          signal?.removeEventListener('abort', onAbort);
          job.callers.delete(caller);
          resolvePromise(result);
        },
        (error: unknown) => {
          signal?.removeEventListener('abort', onAbort);
          job.callers.delete(caller);
          reject(error);
        },
      );
    });
  }

  private setStage(job: Job, stage: FetchStage): void {
    job.stage = stage;
    for (const caller of job.callers) this.safely(() => caller.onStage?.(stage));
  }

  private publish(job: Job, progress: FetchProgress): void {
    job.lastProgress = progress;
    for (const caller of job.callers) this.safely(() => caller.onProgress?.(progress));
  }

  private safely(call: () => void): void {
    try {
      call();
    } catch (error) {
      // A listener's bug must not break a download.
      this.logger.warn({ err: error }, 'a fetch progress listener threw');
    }
  }

  private async run(job: Job): Promise<CloudFetchResult> {
    const signal = job.controller.signal;
    let release: () => void;
    try {
      release = await this.limiter.acquire(signal);
    } catch {
      throw cancelled(job.request, signal.reason);
    }
    try {
      this.setStage(job, 'downloading');
      return await this.download(job, signal);
    } catch (error) {
      if (signal.aborted && !isQuantixError(error, ErrorCode.CHECKSUM_MISMATCH))
        throw cancelled(job.request, signal.reason);
      throw error;
    } finally {
      release();
    }
  }

  private async download(job: Job, signal: AbortSignal): Promise<CloudFetchResult> {
    const { request } = job;
    const destination = job.key;
    const partialPath = partialPathOf(destination);
    const metaPath = metaPathOf(destination);
    const meter = new ProgressMeter((progress) => this.publish(job, progress), {
      intervalMs: this.progressIntervalMs,
    });
    await this.mkdirFor(destination);

    // The image URL is checked (with its DNS answer) before even the checksum file is fetched.
    await this.guard.checkSource(request.sourceUrl);
    const expected = await this.expectedChecksum(request, signal);
    const algorithm: ChecksumAlgorithm = expected?.algorithm ?? request.checksumAlgorithm ?? 'sha256';

    const present = await this.alreadyPresent({ job, destination, partialPath, expected, signal });
    if (present) return present;

    const state = await this.openPartial({ request, partialPath, metaPath, algorithm, signal });
    meter.reset(state.offset, state.meta?.totalBytes ?? null);
    meter.flush();

    let failuresWithoutProgress = 0;
    let restartedForChecksum = false;
    for (;;) {
      const before = state.offset;
      try {
        await this.transfer({ request, state, partialPath, metaPath, meter, signal, verified: expected !== null });
      } catch (error) {
        if (error instanceof StartOver) {
          state.restarts += 1;
          if (state.restarts > MAX_RESTARTS) {
            throw new QuantixError(
              ErrorCode.DOWNLOAD_FAILED,
              `${request.sourceUrl} changed ${state.restarts} times during the download; giving up`,
              { details: { url: request.sourceUrl, retryable: true } },
            );
          }
          this.logger.info({ url: request.sourceUrl, reason: error.message }, 'starting the download over');
          await this.startOver(state, partialPath, metaPath, meter);
          continue;
        }
        if (signal.aborted) throw cancelled(request, signal.reason);
        if (!isTransient(error)) throw error;
        failuresWithoutProgress = state.offset > before ? 1 : failuresWithoutProgress + 1;
        if (failuresWithoutProgress >= this.retry.attempts) throw networkError(request.sourceUrl, error);
        const retryAfter = isQuantixError(error) ? Number(error.details.retryAfterMs ?? 0) : 0;
        const delay = Math.min(
          this.retry.maxDelayMs,
          Math.max(backoffDelay(failuresWithoutProgress, this.retry), retryAfter),
        );
        this.logger.info(
          { url: request.sourceUrl, err: error, delayMs: Math.round(delay), offset: state.offset },
          'download attempt failed; retrying',
        );
        try {
          await sleep(delay, undefined, { signal });
        } catch {
          throw cancelled(request, signal.reason);
        }
        if (!state.hashTrusted) {
          // A failed write may have hashed bytes that are not in the file: read back what is.
          await truncateTo(partialPath, state.offset);
          state.hash = await hashFile({ path: partialPath, algorithm, length: state.offset, signal });
          state.hashTrusted = true;
        }
        continue;
      }

      this.setStage(job, 'verifying');
      meter.flush();
      const actual = state.hash.digest('hex');
      if (expected && actual !== expected.value) {
        // A resumed file may have been stitched from two versions of a source that changed
        // without changing its validators: one clean try from byte 0 before giving up.
        if (state.resumed && !restartedForChecksum) {
          restartedForChecksum = true;
          this.logger.warn(
            { url: request.sourceUrl },
            'checksum mismatch after a resume; downloading again from byte 0',
          );
          await this.startOver(state, partialPath, metaPath, meter);
          this.setStage(job, 'downloading');
          continue;
        }
        await removeQuietly(partialPath, metaPath);
        throw new QuantixError(
          ErrorCode.CHECKSUM_MISMATCH,
          `${request.sourceUrl}: ${algorithm} of the downloaded bytes is ${actual}, expected ${expected.value}; the file was deleted`,
          { details: { url: request.sourceUrl, expected, actual: { algorithm, value: actual }, retryable: true } },
        );
      }
      const checksum: Checksum = { algorithm, value: actual };
      const inspection =
        request.inspect === false
          ? null
          : await this.inspectOrDelete({ path: partialPath, destination, signal, remove: [partialPath, metaPath] });
      await syncFile(partialPath);
      await rename(partialPath, destination);
      await syncDirectory(destination);
      await removeQuietly(metaPath);
      meter.flush();
      return {
        path: destination,
        sizeBytes: state.offset,
        checksum,
        bytesTransferred: state.bytesTransferred,
        resumed: state.resumed,
        format: inspection?.format ?? null,
        detectedFormat: inspection?.detectedFormat ?? null,
        virtualSizeBytes: inspection?.virtualSizeBytes ?? null,
        finalUrl: state.finalUrl,
        etag: state.meta?.etag ?? null,
        lastModified: state.meta?.lastModified ?? null,
        attempts: state.attempts,
        restarts: state.restarts,
        alreadyPresent: false,
      };
    }
  }

  private async mkdirFor(destination: string): Promise<void> {
    try {
      await mkdir(dirname(destination), { recursive: true });
    } catch (error) {
      throw new QuantixError(
        ErrorCode.DOWNLOAD_FAILED,
        `Cannot create the directory of ${destination}: ${(error as Error).message}`,
        { details: { destinationPath: destination, errno: (error as NodeJS.ErrnoException).code, retryable: false } },
      );
    }
  }

  /** The checksum to verify against: given by the caller, or read from the checksum file. */
  private async expectedChecksum(request: CloudFetchRequest, signal: AbortSignal): Promise<Checksum | null> {
    if (request.checksum) return assertChecksum(request.checksum);
    if (!request.checksumUrl) return null;
    return this.checksumFromFile({ ...request, checksumUrl: request.checksumUrl }, signal);
  }

  /**
   * What the checksum file lists for the source's file now (a golden image's upstream check),
   * read as a download reads it: the source policy, the size limit, retries of transient errors.
   * CHECKSUM_UNAVAILABLE when the file cannot be read or no longer lists the source's file.
   */
  async discard(destinationPath: string): Promise<void> {
    await removeQuietly(partialPathOf(destinationPath), metaPathOf(destinationPath));
  }

  async readChecksum(request: ChecksumRequest): Promise<Checksum> {
    this.guard.checkUrl(request.sourceUrl);
    this.guard.checkUrl(request.checksumUrl);
    return this.checksumFromFile(request, request.signal ?? new AbortController().signal);
  }

  private async checksumFromFile(request: ChecksumRequest, signal: AbortSignal): Promise<Checksum> {
    const checksumUrl = request.checksumUrl;
    for (let attempt = 1; ; attempt++) {
      try {
        const { response, url } = await openResponse({
          url: checksumUrl,
          headers: { 'user-agent': this.userAgent, 'accept-encoding': 'identity' },
          guard: this.guard,
          signal,
          idleTimeoutMs: this.idleTimeoutMs,
          ca: this.ca,
        });
        if (response.statusCode !== 200) {
          response.resume();
          const failure = statusError(url, response, 'Reading the checksum file');
          throw new QuantixError(ImagesCloudErrorCode.CHECKSUM_UNAVAILABLE, failure.message, {
            details: failure.details,
          });
        }
        const text = await readSmallBody(response, url, this.checksumFileMaxBytes);
        return checksumForFile({
          text,
          fileName: fileNameOfUrl(request.sourceUrl),
          algorithm: request.checksumAlgorithm ?? null,
          source: checksumUrl,
        });
      } catch (error) {
        if (signal.aborted) throw cancelled(request, signal.reason);
        if (!isTransient(error) || attempt >= this.retry.attempts) {
          if (
            isQuantixError(error, ImagesCloudErrorCode.SOURCE_NOT_ALLOWED) ||
            isQuantixError(error, ImagesCloudErrorCode.CHECKSUM_UNAVAILABLE)
          ) {
            throw error;
          }
          throw new QuantixError(
            ImagesCloudErrorCode.CHECKSUM_UNAVAILABLE,
            `Cannot read the checksum file ${checksumUrl}: ${(error as Error).message}`,
            { details: { url: checksumUrl, retryable: isTransient(error) }, cause: error },
          );
        }
        await sleep(backoffDelay(attempt, this.retry), undefined, { signal }).catch(() => {
          throw cancelled(request, signal.reason);
        });
      }
    }
  }

  /** When the destination already holds the verified file (a crash after the rename), nothing is downloaded. */
  private async alreadyPresent(options: {
    job: Job;
    destination: string;
    partialPath: string;
    expected: Checksum | null;
    signal: AbortSignal;
  }): Promise<CloudFetchResult | null> {
    const { job, destination, partialPath, expected, signal } = options;
    if (!expected || (await sizeOf(partialPath)) !== null) return null;
    const size = await sizeOf(destination);
    if (size === null) return null;
    this.setStage(job, 'verifying');
    const hash = await hashFile({ path: destination, algorithm: expected.algorithm, signal });
    if (hash.digest('hex') !== expected.value) {
      this.setStage(job, 'downloading');
      return null;
    }
    const inspection =
      job.request.inspect === false
        ? null
        : await this.inspectOrDelete({ path: destination, destination, signal, remove: [] });
    return {
      path: destination,
      sizeBytes: size,
      checksum: expected,
      bytesTransferred: 0,
      resumed: false,
      format: inspection?.format ?? null,
      detectedFormat: inspection?.detectedFormat ?? null,
      virtualSizeBytes: inspection?.virtualSizeBytes ?? null,
      finalUrl: job.request.sourceUrl,
      etag: null,
      lastModified: null,
      attempts: 0,
      restarts: 0,
      alreadyPresent: true,
    };
  }

  /** Picks up a partial file left by an earlier run when its meta says it came from this URL. */
  private async openPartial(options: {
    request: CloudFetchRequest;
    partialPath: string;
    metaPath: string;
    algorithm: ChecksumAlgorithm;
    signal: AbortSignal;
  }): Promise<TransferState> {
    const { request, partialPath, metaPath, algorithm, signal } = options;
    const state: TransferState = {
      algorithm,
      offset: 0,
      hash: createHash(algorithm),
      hashTrusted: true,
      meta: null,
      resumed: false,
      bytesTransferred: 0,
      attempts: 0,
      restarts: 0,
      finalUrl: request.sourceUrl,
    };
    const size = await sizeOf(partialPath);
    const meta = await readMeta(metaPath);
    const usable =
      size !== null &&
      size > 0 &&
      meta !== null &&
      meta.url === sourceIdentity(request.sourceUrl) &&
      (meta.totalBytes === null || size <= meta.totalBytes);
    if (!usable) {
      if (size !== null) await truncateTo(partialPath, 0);
      await removeQuietly(metaPath);
      return state;
    }
    // Resume: the bytes already there are hashed first, then the rest continues the same hash.
    state.offset = size;
    state.meta = meta;
    state.hash = await hashFile({ path: partialPath, algorithm, length: size, signal });
    return state;
  }

  private async startOver(state: TransferState, partialPath: string, metaPath: string, meter: ProgressMeter) {
    state.offset = 0;
    state.hash = createHash(state.algorithm);
    state.hashTrusted = true;
    state.meta = null;
    state.resumed = false;
    await removeQuietly(metaPath);
    await truncateTo(partialPath, 0);
    meter.reset(0, null);
  }

  /** One HTTP request for the image: the whole file, or the rest of it. */
  private async transfer(options: {
    request: CloudFetchRequest;
    state: TransferState;
    partialPath: string;
    metaPath: string;
    meter: ProgressMeter;
    signal: AbortSignal;
    /** The whole file will be checked against a known checksum. */
    verified: boolean;
  }): Promise<void> {
    const { request, state, partialPath, metaPath, meter, signal, verified } = options;
    if (state.offset > 0 && state.meta?.totalBytes === state.offset) return; // complete already
    const headers: OutgoingHttpHeaders = { 'user-agent': this.userAgent, 'accept-encoding': 'identity' };
    if (state.offset > 0) {
      const validator = strongEtag(state.meta?.etag) ?? state.meta?.lastModified ?? null;
      // Without a validator a changed source cannot be told from the same one; with a known
      // checksum a file stitched from two versions is caught anyway (and fetched once more whole).
      if (!validator && !verified) {
        throw new StartOver('the partial file has no ETag or Last-Modified to resume against');
      }
      headers.range = `bytes=${state.offset}-`;
      if (validator) headers['if-range'] = validator;
    }
    state.attempts += 1;
    const { response, url } = await openResponse({
      url: request.sourceUrl,
      headers,
      guard: this.guard,
      signal,
      idleTimeoutMs: this.idleTimeoutMs,
      ca: this.ca,
    });
    state.finalUrl = url;
    const status = response.statusCode ?? 0;
    const etag = header(response, 'etag');
    const lastModified = header(response, 'last-modified');
    let total: number | null;

    if (status === 416 && state.offset > 0) {
      response.resume();
      const range = parseContentRange(header(response, 'content-range'));
      if (range?.total === state.offset && state.meta) {
        state.meta = { ...state.meta, totalBytes: state.offset };
        return;
      }
      throw new StartOver('the server refused the range of the partial file');
    }
    if (status === 206) {
      const range = parseContentRange(header(response, 'content-range'));
      const meta = state.meta;
      const changed =
        !meta ||
        range?.start !== state.offset ||
        (meta.etag !== null && etag !== null && etag !== meta.etag) ||
        (meta.etag === null &&
          meta.lastModified !== null &&
          lastModified !== null &&
          lastModified !== meta.lastModified) ||
        (meta.totalBytes !== null && range.total !== null && range.total !== meta.totalBytes);
      if (changed) {
        response.destroy();
        throw new StartOver('the server answered the range for a different version of the file');
      }
      total = range.total;
      state.resumed = true;
    } else if (status === 200) {
      if (state.offset > 0) {
        // A full answer to a Range request: the server ignores ranges, or If-Range found the
        // source changed. Either way these bytes start the file again.
        this.logger.info({ url, offset: state.offset }, 'server sent the whole file; starting over');
        state.restarts += 1;
        state.offset = 0;
        state.hash = createHash(state.algorithm);
        state.resumed = false;
        await truncateTo(partialPath, 0);
      }
      // No Content-Length (a chunked answer) is no size at all, not a size of 0.
      const length = Number(header(response, 'content-length') ?? Number.NaN);
      total = Number.isFinite(length) && length >= 0 ? length : null;
      state.meta = { version: 1, url: sourceIdentity(request.sourceUrl), etag, lastModified, totalBytes: total };
      await writeMeta(metaPath, state.meta);
      meter.reset(0, total);
    } else {
      response.resume();
      throw statusError(url, response);
    }
    meter.setTotal(total);
    if (total !== null) await requireRoom(dirname(partialPath), total - state.offset, partialPath);

    const writer = new PartialFileWriter(partialPath, state.offset, state.hash, (bytes) => {
      state.bytesTransferred += bytes;
      meter.add(bytes);
    });
    try {
      await copyKeepingWhatArrived(response, writer, signal);
      await this.settled(writer);
    } catch (error) {
      await this.settled(writer);
      state.offset = writer.position;
      state.hashTrusted = writer.hashTrusted;
      if (signal.aborted) throw error;
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'ENOSPC' || code === 'EDQUOT') {
        const written = writer.position;
        // Its announced size had room when it started: something else took it since, and what
        // arrived is kept for a retry once there is room again.
        if (total !== null) {
          throw new QuantixError(
            ErrorCode.POOL_NO_SPACE,
            `No room in the pool for ${url}: the file system filled after ${written} of ${total} bytes (the room was taken meanwhile); a retry once there is room goes on from there`,
            { details: { url, errno: code, writtenBytes: written, totalBytes: total, retryable: true }, cause: error },
          );
        }
        // A source that announced no size filled the pool itself: what arrived goes, so that the
        // pool's VMs (whose disks grow there) are not left without room by a download that cannot finish.
        await removeQuietly(partialPath, metaPath);
        throw new QuantixError(
          ErrorCode.POOL_NO_SPACE,
          `No room in the pool for ${url}: the file system was full after ${written} bytes (the server announced no size); the partial file was removed`,
          { details: { url, errno: code, writtenBytes: written, retryable: true }, cause: error },
        );
      }
      if (code === 'EROFS' || code === 'EACCES') {
        throw new QuantixError(ErrorCode.DOWNLOAD_FAILED, `Cannot write ${partialPath}: ${(error as Error).message}`, {
          details: { url, errno: code, retryable: false },
          cause: error,
        });
      }
      throw networkError(url, error);
    }
    state.offset = writer.position;
    if (total !== null && state.offset < total) {
      throw new QuantixError(
        ErrorCode.DOWNLOAD_FAILED,
        `Download from ${url} ended after ${state.offset} of ${total} bytes`,
        { details: { url, retryable: true } },
      );
    }
    if (total === null && state.meta) {
      state.meta = { ...state.meta, totalBytes: state.offset };
      await writeMeta(metaPath, state.meta);
    }
  }

  private async settled(writer: PartialFileWriter): Promise<void> {
    if (writer.closed) return;
    await new Promise<void>((resolvePromise) => writer.once('close', () => resolvePromise()));
  }

  private async inspectOrDelete(options: {
    path: string;
    /** Where the file ends up: its name says whether it is an ISO. */
    destination: string;
    signal: AbortSignal;
    remove: string[];
  }): Promise<ImageInspection | null> {
    // qemu-img reads an ISO as `raw`; an ISO's one size is its virtual size.
    if (/\.iso$/i.test(options.destination)) {
      const { size } = await stat(options.path);
      return { format: 'iso', detectedFormat: 'iso', virtualSizeBytes: size, actualSizeBytes: size };
    }
    if (!this.inspector) return null;
    try {
      return await this.inspector.inspect({ path: options.path, signal: options.signal });
    } catch (error) {
      // Verified bytes that are no usable (or no safe) image are the publisher's mistake; none of it is kept.
      const refused =
        isQuantixError(error, ImagesCloudErrorCode.IMAGE_INVALID) ||
        isQuantixError(error, ImagesCloudErrorCode.IMAGE_UNSAFE);
      if (refused && error.details.retryable !== true) {
        await removeQuietly(...options.remove);
      }
      throw error;
    }
  }
}
