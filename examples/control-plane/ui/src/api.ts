/** The control plane's HTTP API as the page uses it: @quantix/client, bearer token from the session. */
import { ApiError, QuantixClient, type ResponseBody } from '@quantix/client';

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
 * Uploads an ISO (the uploadImage operation) as the raw request body. XMLHttpRequest rather
 * than the client's fetch: only it reports upload progress in browsers.
 */
export function uploadFile(options: {
  poolId: string;
  name: string;
  file: Blob;
  onProgress: (loaded: number, total: number) => void;
}): Upload<ResponseBody<'uploadImage'>> {
  const xhr = new XMLHttpRequest();
  const done = new Promise<ResponseBody<'uploadImage'>>((resolve, reject) => {
    xhr.open('POST', client.url('uploadImage', { query: { poolId: options.poolId, name: options.name } }));
    xhr.responseType = 'json'; // null when the answer is not JSON
    const token = tokenStore.get();
    if (token) xhr.setRequestHeader('authorization', `Bearer ${token}`);
    xhr.setRequestHeader('content-type', 'application/octet-stream');
    xhr.upload.onprogress = (event) => options.onProgress(event.loaded, event.lengthComputable ? event.total : 0);
    xhr.onload = () => {
      const json: unknown = xhr.response;
      if (xhr.status === 401) unauthorizedHandler?.();
      if (xhr.status >= 200 && xhr.status < 300) resolve(json as ResponseBody<'uploadImage'>);
      else reject(ApiError.fromAnswer(xhr.status, xhr.statusText, json));
    };
    xhr.onerror = () =>
      reject(new ApiError(0, 'UNREACHABLE', 'The upload was cut off: the control plane cannot be reached'));
    xhr.onabort = () => reject(new ApiError(0, 'CANCELLED', 'Upload cancelled'));
    xhr.send(options.file);
  });
  return { done, abort: () => xhr.abort() };
}
