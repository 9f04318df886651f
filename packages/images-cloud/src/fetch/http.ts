import http, { type IncomingMessage, type OutgoingHttpHeaders } from 'node:http';
import https from 'node:https';
import { ErrorCode, isQuantixError, isRetryableError, QuantixError } from '@quantix/core';
import { ImagesCloudErrorCode } from '../errors.js';
import type { SourceGuard } from './policy.js';

/** Error codes of the network that mean "try again", as Node and its HTTP client report them. */
const RETRYABLE_ERRNOS = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'ECONNABORTED',
  'ETIMEDOUT',
  'EPIPE',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENETDOWN',
  'EAI_AGAIN',
  'ENOTFOUND',
  'ERR_STREAM_PREMATURE_CLOSE',
  'HPE_INVALID_CHUNK_SIZE',
  'HPE_UNEXPECTED_CONTENT_LENGTH',
]);

/** Whether trying again can help, as a person or a service would read the error (core's rule for QuantixErrors). */
export function isRetryable(error: unknown): boolean {
  if (isQuantixError(error)) return isRetryableError(error);
  return isTransient(error);
}

/**
 * Whether the fetcher should try again by itself: a network error or a busy/failing server.
 * Narrower than isRetryable: a checksum mismatch may be retried by a person, not in a loop.
 */
export function isTransient(error: unknown): boolean {
  if (isQuantixError(error)) {
    return error.code === ErrorCode.DOWNLOAD_FAILED && error.details.retryable === true;
  }
  const code = (error as NodeJS.ErrnoException | null)?.code;
  return typeof code === 'string' && RETRYABLE_ERRNOS.has(code);
}

/** A network error from the HTTP client as DOWNLOAD_FAILED, retryable when the errno says so. */
export function networkError(url: string, error: unknown, what = 'Download'): QuantixError {
  if (isQuantixError(error)) return error;
  const code = (error as NodeJS.ErrnoException).code ?? null;
  return new QuantixError(ErrorCode.DOWNLOAD_FAILED, `${what} from ${url} failed: ${(error as Error).message}`, {
    details: { url, errno: code, retryable: isTransient(error) },
    cause: error,
  });
}

/** HTTP statuses worth trying again: the server is busy or failing, not refusing. */
function statusRetryable(status: number): boolean {
  return status >= 500 || status === 408 || status === 425 || status === 429;
}

/** DOWNLOAD_FAILED for an HTTP status, with Retry-After when the server sent one. */
export function statusError(url: string, response: IncomingMessage, what = 'Download'): QuantixError {
  const status = response.statusCode ?? 0;
  const retryAfter = Number(response.headers['retry-after']);
  return new QuantixError(
    ErrorCode.DOWNLOAD_FAILED,
    `${what} from ${url} failed: the server answered ${status} ${response.statusMessage ?? ''}`.trim(),
    {
      details: {
        url,
        status,
        retryable: statusRetryable(status),
        retryAfterMs: Number.isFinite(retryAfter) && retryAfter >= 0 ? retryAfter * 1000 : null,
      },
    },
  );
}

export interface OpenResponseOptions {
  url: string;
  headers?: OutgoingHttpHeaders;
  guard: SourceGuard;
  signal?: AbortSignal;
  /** A socket idle this long fails the request (ETIMEDOUT, retryable). */
  idleTimeoutMs: number;
  /** For private mirrors with their own CA. */
  ca?: string | Buffer | readonly (string | Buffer)[];
}

export interface OpenedResponse {
  response: IncomingMessage;
  /** The URL that answered, after redirects. */
  url: string;
}

const REDIRECTS = new Set([301, 302, 303, 307, 308]);

function request(options: OpenResponseOptions & { url: string }): Promise<IncomingMessage> {
  const url = new URL(options.url);
  const client = url.protocol === 'https:' ? https : http;
  return new Promise((resolve, reject) => {
    const req = client.request(url, {
      method: 'GET',
      headers: options.headers,
      signal: options.signal,
      lookup: options.guard.connectLookup(url.href) as never,
      // A connection per request: no idle pooled socket that the server may close just as it is
      // reused (a spurious ECONNRESET), and every connection goes through the policy's lookup.
      agent: false,
      ...(url.protocol === 'https:' && options.ca ? { ca: options.ca as string[] } : {}),
    });
    req.setTimeout(options.idleTimeoutMs, () => {
      req.destroy(Object.assign(new Error(`no data for ${options.idleTimeoutMs} ms`), { code: 'ETIMEDOUT' }));
    });
    req.once('response', (response) => {
      // The idle timer keeps watching the body: a server that stops sending fails the read.
      resolve(response);
    });
    req.once('error', reject);
    req.end();
  });
}

/**
 * Sends a GET and follows redirects by hand, checking every hop against the source policy
 * before connecting to it (a redirect to 169.254.169.254 is refused, not followed). The body
 * of the returned response is for the caller to read or discard.
 */
export async function openResponse(options: OpenResponseOptions): Promise<OpenedResponse> {
  let current = options.url;
  for (let hop = 0; ; hop++) {
    await options.guard.checkSource(current);
    let response: IncomingMessage;
    try {
      response = await request({ ...options, url: current });
    } catch (error) {
      if (options.signal?.aborted) throw error;
      throw networkError(current, error);
    }
    const status = response.statusCode ?? 0;
    const location = response.headers.location;
    if (!REDIRECTS.has(status) || !location) return { response, url: current };
    response.resume();
    if (hop >= options.guard.maxRedirects) {
      throw new QuantixError(
        ErrorCode.DOWNLOAD_FAILED,
        `Download from ${options.url} failed: more than ${options.guard.maxRedirects} redirects`,
        { details: { url: options.url, lastUrl: current, retryable: false } },
      );
    }
    current = new URL(location, current).href;
  }
}

/** Reads a small body (a checksum file) into a string, refusing more than `maxBytes`. */
export async function readSmallBody(response: IncomingMessage, url: string, maxBytes: number): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of response) {
      size += (chunk as Buffer).length;
      if (size > maxBytes) {
        response.destroy();
        throw new QuantixError(
          ImagesCloudErrorCode.CHECKSUM_UNAVAILABLE,
          `${url} is larger than ${maxBytes} bytes; not a checksum file`,
          {
            details: { url, retryable: false },
          },
        );
      }
      chunks.push(chunk as Buffer);
    }
  } catch (error) {
    throw networkError(url, error, 'Reading');
  }
  return Buffer.concat(chunks).toString('utf8');
}
