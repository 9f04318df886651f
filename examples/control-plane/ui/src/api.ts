/** The control plane's HTTP API as the page uses it: @quantix/client, bearer token from the session. */
import { ApiError, QuantixClient, type ResponseBody, tusRetriable } from '@quantix/client';
import { DetailedError, Upload as TusUpload } from 'tus-js-client';
import { uploadKindOf } from './format.js';

export { ApiError };

const TOKEN_KEY = 'quantix.apiToken';

export const tokenStore = {
  get(): string | null {
    try {
      return sessionStorage.getItem(TOKEN_KEY);
    } catch {
      return null;
    }
  },
  set(token: string): void {
    sessionStorage.setItem(TOKEN_KEY, token);
  },
  clear(): void {
    sessionStorage.removeItem(TOKEN_KEY);
  },
};

/**
 * Takes `#token=…` (the address `quantix up` prints) into the session and removes it from the
 * address bar, so it does not stay in the history or get copied along with a link.
 */
export function adoptTokenFromHash(): void {
  const params = new URLSearchParams(window.location.hash.slice(1));
  const token = params.get('token');
  if (!token) return;
  tokenStore.set(token);
  params.delete('token');
  const rest = params.toString();
  window.history.replaceState(
    window.history.state,
    '',
    `${window.location.pathname}${window.location.search}${rest ? `#${rest}` : ''}`,
  );
}

let unauthorizedHandler: (() => void) | null = null;

/** Called on every 401, so the page can ask for a token instead of failing piece by piece. */
export function onUnauthorized(handler: (() => void) | null): void {
  unauthorizedHandler = handler;
}

/**
 * The page's client of the API it is served by: the session's token at each call, every 401
 * of it reported to the handler above (a call with a token of its own, checking one, is not).
 */
export const client = new QuantixClient({
  baseUrl: '',
  token: () => tokenStore.get(),
  onUnauthorized: () => unauthorizedHandler?.(),
});

/** A query string for a page's own address (`?created=web-1`); empty values left out. */
export function query(params: Record<string, string | number | null | undefined>): string {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== null && value !== undefined && value !== '') search.set(key, String(value));
  }
  const text = search.toString();
  return text ? `?${text}` : '';
}

export interface Upload<T> {
  done: Promise<T>;
  abort(): void;
}

/**
 * Uploads a file resumably with tus (tus-js-client, to /api/v1/uploads/tus): progress as bytes
 * reach the server; a dropped connection is retried from the server's offset, and a page
 * reloaded during an upload finds it again (the upload URL is kept in localStorage, keyed by
 * the file). Resolves with the image the upload became.
 */
export function uploadFile(options: {
  poolId: string;
  name: string;
  file: File;
  onProgress: (loaded: number, total: number) => void;
}): Upload<ResponseBody<'getImage'>> {
  let upload: TusUpload | null = null;
  let cancel: (error: ApiError) => void = () => {};
  const done = new Promise<ResponseBody<'getImage'>>((resolve, reject) => {
    cancel = reject;
    upload = new TusUpload(options.file, {
      endpoint: '/api/v1/uploads/tus',
      metadata: {
        poolId: options.poolId,
        name: options.name,
        kind: uploadKindOf(options.name),
      },
      // Requests of 8 MiB: a cut costs at most that, and proxies that limit bodies pass them.
      chunkSize: 8 * 1024 * 1024,
      // Retried for about a minute, offline or not (tus-js-client alone gives up while the browser
      // says it is offline): a network that comes back in that time loses nothing.
      retryDelays: [0, 1000, 2000, 4000, 8000, 15000, 30000],
      onShouldRetry: retriable,
      removeFingerprintOnSuccess: true,
      onBeforeRequest: (request) => {
        const token = tokenStore.get();
        if (token) request.setHeader('authorization', `Bearer ${token}`);
      },
      onProgress: options.onProgress,
      onSuccess: ({ lastResponse }) => {
        const id = lastResponse.getHeader('Quantix-Image-Id');
        if (!id) {
          reject(new ApiError(0, 'UPLOAD_FAILED', 'The control plane took the upload but named no image'));
          return;
        }
        client.request('getImage', { params: { id } }).then(resolve, reject);
      },
      onError: (error) => {
        const response = error instanceof DetailedError ? error.originalResponse : null;
        if (!response) {
          reject(new ApiError(0, 'UNREACHABLE', 'The upload was cut off: the control plane cannot be reached'));
          return;
        }
        if (response.getStatus() === 401) unauthorizedHandler?.();
        let json: unknown = null;
        try {
          json = JSON.parse(response.getBody());
        } catch {
          // @tus/server's own plain-text answer
        }
        reject(ApiError.fromAnswer(response.getStatus(), response.getBody(), json));
      },
    });
    const started = upload;
    void started.findPreviousUploads().then((previous) => {
      const [last] = previous;
      if (last) started.resumeFromPreviousUpload(last);
      started.start();
    }, reject);
  });
  return {
    done,
    abort: () => {
      void (upload as TusUpload | null)?.abort(true);
      cancel(new ApiError(0, 'CANCELLED', 'Upload cancelled'));
    },
  };
}

/** tus-js-client's retry question, answered by the client package's one rule. */
function retriable(error: Error | DetailedError): boolean {
  const response = error instanceof DetailedError ? error.originalResponse : null;
  return tusRetriable(response ? response.getStatus() : null, response?.getBody() ?? '');
}
