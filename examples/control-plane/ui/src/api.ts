/** The control plane's HTTP API as the page uses it: bearer token from the session, errors as ApiError. */

const TOKEN_KEY = 'quantix.apiToken';
export const API_BASE = '/api/v1';

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

export interface FieldIssue {
  path: string;
  message: string;
}

/** An answer other than 2xx, or no answer: `{ error: { code, message, details } }` from the API. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details: Record<string, unknown> = {},
  ) {
    super(message);
    this.name = 'ApiError';
  }

  get issues(): FieldIssue[] {
    const issues = this.details.issues;
    return Array.isArray(issues) ? (issues as FieldIssue[]) : [];
  }

  /**
   * Validation issues by the top-level field they concern: `body.name` → `name`,
   * `body.sshAuthorizedKeys.2` → `sshAuthorizedKeys`. Several issues on one field are joined.
   */
  fieldErrors(): Record<string, string> {
    const out: Record<string, string> = {};
    for (const issue of this.issues) {
      const parts = String(issue.path ?? '').split('.');
      if (['body', 'querystring', 'params'].includes(parts[0] ?? '')) parts.shift();
      const field = parts[0] || '';
      out[field] = out[field] ? `${out[field]}; ${issue.message}` : issue.message;
    }
    return out;
  }
}

let unauthorizedHandler: (() => void) | null = null;

/** Called on every 401, so the page can ask for a token instead of failing piece by piece. */
export function onUnauthorized(handler: (() => void) | null): void {
  unauthorizedHandler = handler;
}

function errorFrom(status: number, statusText: string, json: unknown): ApiError {
  const error = (json as { error?: { code?: string; message?: string; details?: Record<string, unknown> } } | null)
    ?.error;
  return new ApiError(
    status,
    error?.code ?? `HTTP_${status}`,
    error?.message ?? `The control plane answered ${status} ${statusText}`.trim(),
    error?.details ?? {},
  );
}

function parse(text: string): unknown {
  if (!text) return null;
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}

export async function api<T>(
  method: string,
  path: string,
  options: { body?: unknown; signal?: AbortSignal; token?: string } = {},
): Promise<T> {
  const token = options.token ?? tokenStore.get();
  let response: Response;
  try {
    response = await fetch(`${API_BASE}${path}`, {
      method,
      headers: {
        accept: 'application/json',
        ...(token ? { authorization: `Bearer ${token}` } : {}),
        ...(options.body !== undefined ? { 'content-type': 'application/json' } : {}),
      },
      ...(options.body !== undefined ? { body: JSON.stringify(options.body) } : {}),
      ...(options.signal ? { signal: options.signal } : {}),
    });
  } catch (error) {
    if ((error as Error).name === 'AbortError') throw error;
    throw new ApiError(0, 'UNREACHABLE', `The control plane cannot be reached (${(error as Error).message})`);
  }
  const json = parse(await response.text());
  if (response.status === 401 && !options.token) unauthorizedHandler?.();
  if (!response.ok) throw errorFrom(response.status, response.statusText, json);
  return json as T;
}

export const get = <T>(path: string, signal?: AbortSignal) => api<T>('GET', path, signal ? { signal } : {});
export const post = <T>(path: string, body?: unknown) => api<T>('POST', path, body === undefined ? {} : { body });
export const del = (path: string) => api<null>('DELETE', path);

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
 * Sends a file as the raw request body. XMLHttpRequest rather than fetch: only it reports
 * upload progress in browsers.
 */
export function uploadFile<T>(options: {
  path: string;
  file: Blob;
  onProgress: (loaded: number, total: number) => void;
}): Upload<T> {
  const xhr = new XMLHttpRequest();
  const done = new Promise<T>((resolve, reject) => {
    xhr.open('POST', `${API_BASE}${options.path}`);
    const token = tokenStore.get();
    if (token) xhr.setRequestHeader('authorization', `Bearer ${token}`);
    xhr.setRequestHeader('content-type', 'application/octet-stream');
    xhr.upload.onprogress = (event) => options.onProgress(event.loaded, event.lengthComputable ? event.total : 0);
    xhr.onload = () => {
      const json = parse(xhr.responseText);
      if (xhr.status === 401) unauthorizedHandler?.();
      if (xhr.status >= 200 && xhr.status < 300) resolve(json as T);
      else reject(errorFrom(xhr.status, xhr.statusText, json));
    };
    xhr.onerror = () =>
      reject(new ApiError(0, 'UNREACHABLE', 'The upload was cut off: the control plane cannot be reached'));
    xhr.onabort = () => reject(new ApiError(0, 'CANCELLED', 'Upload cancelled'));
    xhr.send(options.file);
  });
  return { done, abort: () => xhr.abort() };
}
