import { ApiError } from './errors.js';
import { operationRoutes, type operations } from './generated.js';

/** The operationId of every operation of the API, as its OpenAPI description names it. */
export type OperationId = keyof operations & keyof typeof operationRoutes;

type Operation<Id extends OperationId> = operations[Id];
type Defined<T> = Exclude<T, undefined>;
type IsNever<T> = [T] extends [never] ? true : false;

/** An operation's path parameters (`{ id }`); never for one without. */
export type PathParams<Id extends OperationId> = Defined<Operation<Id>['parameters']['path']>;
/** An operation's query parameters; never for one without. */
export type QueryParams<Id extends OperationId> = Defined<Operation<Id>['parameters']['query']>;

type BodyContent<Id extends OperationId> =
  Operation<Id> extends { requestBody?: infer Body }
    ? IsNever<Defined<Body>> extends true
      ? never
      : Defined<Body> extends { content: infer Content }
        ? Content
        : never
    : never;

/** Raw bytes, for an operation that takes `application/octet-stream` (an ISO upload). */
export type RawBody = Blob | ArrayBuffer | Uint8Array | ReadableStream<Uint8Array>;

/** An operation's request body: its JSON, or raw bytes; never for one without. */
export type RequestBody<Id extends OperationId> =
  BodyContent<Id> extends { 'application/json': infer Json }
    ? Json
    : BodyContent<Id> extends { 'application/octet-stream': unknown }
      ? RawBody
      : never;

type SuccessStatus = 200 | 201 | 202 | 204 | 206;
type AnswerOf<Answer> = Answer extends { content: infer Content }
  ? Content extends { 'application/json': infer Json }
    ? Json
    : // Bytes (a staged upload): the Response itself, its body not yet read.
      Response
  : undefined;
type Responses<Id extends OperationId> = Operation<Id>['responses'];

/** What an operation answers on success: its JSON (dates as ISO strings); undefined for a 204. */
export type ResponseBody<Id extends OperationId> = {
  [Status in keyof Responses<Id> & SuccessStatus]: AnswerOf<Responses<Id>[Status]>;
}[keyof Responses<Id> & SuccessStatus];

/** Options of one call, whatever the operation. */
export interface CallOptions {
  signal?: AbortSignal;
  /** This call's token instead of the client's (e.g. to check a token before keeping it). */
  token?: string;
  /** A write's Idempotency-Key (default: a new one per call, kept for its retry). */
  idempotencyKey?: string;
  /** More request headers, e.g. Range and If-Range to resume an image's content. */
  headers?: Record<string, string>;
}

// Every property optional: an empty object is one.
type Optional<T> = Record<never, never> extends T ? true : false;
type ParamsInput<Id extends OperationId> =
  IsNever<PathParams<Id>> extends true ? { params?: undefined } : { params: PathParams<Id> };
type QueryInput<Id extends OperationId> =
  IsNever<QueryParams<Id>> extends true
    ? { query?: undefined }
    : Optional<QueryParams<Id>> extends true
      ? { query?: QueryParams<Id> }
      : { query: QueryParams<Id> };
type BodyInput<Id extends OperationId> =
  IsNever<RequestBody<Id>> extends true
    ? { body?: undefined }
    : Optional<RequestBody<Id>> extends true
      ? { body?: RequestBody<Id> }
      : { body: RequestBody<Id> };

/** What one call of an operation takes: `params`, `query` and `body` as the operation declares them. */
export type RequestInput<Id extends OperationId> = ParamsInput<Id> & QueryInput<Id> & BodyInput<Id> & CallOptions;

type InputArgs<Id extends OperationId> =
  Optional<RequestInput<Id>> extends true ? [input?: RequestInput<Id>] : [input: RequestInput<Id>];

export interface QuantixClientOptions {
  /** The control plane, `http://host:port`; '' for the origin of the page the client runs in. */
  baseUrl: string;
  /** The API token, or a function that reads it at each call (null: send none). */
  token?: string | (() => string | null | undefined);
  /** Called on each 401 of a call that used the client's token: ask for a token, say. */
  onUnauthorized?: () => void;
  /**
   * Send a write once more, with the same Idempotency-Key, when it got no answer or a "try
   * again" (502/503/504: a replica went away mid-request): the control plane answers the retry
   * with the first attempt's result if it had one, so nothing is done twice. Default true.
   */
  retryWrites?: boolean;
  /** The wait before that retry (default 1000 ms). */
  retryDelayMs?: number;
  /** A fetch to use instead of the global one. */
  fetch?: typeof fetch;
}

const RETRY_STATUSES = new Set([502, 503, 504]);
const WRITE_METHODS = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

function isRawBody(body: unknown): body is RawBody {
  return (
    (typeof Blob !== 'undefined' && body instanceof Blob) ||
    body instanceof ArrayBuffer ||
    body instanceof Uint8Array ||
    (typeof ReadableStream !== 'undefined' && body instanceof ReadableStream)
  );
}

function parseJson(text: string): unknown {
  if (!text) return null;
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}

/**
 * A typed client of the control plane's HTTP API: one `request` per operation, named by its
 * operationId, its parameters, body and answer typed from the API's OpenAPI description.
 * Works with the fetch of Node >= 20 and of browsers. Every failure is an {@link ApiError}.
 *
 * @example
 * const client = new QuantixClient({ baseUrl: 'http://127.0.0.1:8080', token });
 * const { pools } = await client.request('listPools');
 * const vm = await client.request('createVm', { body: { name: 'web-1', nodeId, imageId } });
 */
export class QuantixClient {
  private readonly fetch: typeof fetch;

  constructor(private readonly options: QuantixClientOptions) {
    this.fetch = options.fetch ?? ((...args) => globalThis.fetch(...args));
  }

  /** The control plane's base URL, as given. */
  get baseUrl(): string {
    return this.options.baseUrl;
  }

  /** The method and URL (path and query, after the base URL) a call of an operation goes to. */
  url<Id extends OperationId>(operationId: Id, input: { params?: unknown; query?: unknown } = {}): string {
    const route = operationRoutes[operationId] as (typeof operationRoutes)[OperationId] | undefined;
    // Only untyped callers (plain JavaScript) can name an operation the API does not have.
    if (!route) throw new ApiError(0, 'INVALID_INPUT', `The API has no operation ${String(operationId)}`);
    const params = (input.params ?? {}) as Record<string, unknown>;
    const path = route.path.replace(/\{([^}]+)\}/g, (_, name: string) => {
      const value = params[name];
      if (value === undefined || value === null || value === '') {
        throw new ApiError(0, 'INVALID_INPUT', `${operationId} needs the path parameter ${name}`);
      }
      return encodeURIComponent(String(value));
    });
    const search = new URLSearchParams();
    for (const [key, value] of Object.entries((input.query ?? {}) as Record<string, unknown>)) {
      if (value !== undefined && value !== null && value !== '') search.set(key, String(value));
    }
    const query = search.toString();
    return `${this.options.baseUrl.replace(/\/$/, '')}${path}${query ? `?${query}` : ''}`;
  }

  /** Calls one operation; resolves with its answer, or rejects with an ApiError. */
  async request<Id extends OperationId>(operationId: Id, ...[input]: InputArgs<Id>): Promise<ResponseBody<Id>> {
    const call = (input ?? {}) as RequestInput<Id> & { body?: unknown };
    const url = this.url(operationId, call);
    const { method } = operationRoutes[operationId];
    const write = WRITE_METHODS.has(method);
    const token = call.token ?? (typeof this.options.token === 'function' ? this.options.token() : this.options.token);
    const raw = isRawBody(call.body);
    const headers: Record<string, string> = {
      accept: 'application/json',
      ...(token ? { authorization: `Bearer ${token}` } : {}),
      ...(call.body !== undefined ? { 'content-type': raw ? 'application/octet-stream' : 'application/json' } : {}),
      ...(write ? { 'idempotency-key': call.idempotencyKey ?? globalThis.crypto.randomUUID() } : {}),
      ...call.headers,
    };
    const init: RequestInit & { duplex?: 'half' } = {
      method,
      headers,
      ...(call.body !== undefined ? { body: raw ? (call.body as BodyInit) : JSON.stringify(call.body) } : {}),
      // A streamed body is sent as it is read (fetch needs to be told so); it cannot be sent twice.
      ...(typeof ReadableStream !== 'undefined' && call.body instanceof ReadableStream ? { duplex: 'half' } : {}),
      ...(call.signal ? { signal: call.signal } : {}),
    };
    const retry = write && (this.options.retryWrites ?? true) && !(init.duplex === 'half');
    const pause = () => new Promise((resolve) => setTimeout(resolve, this.options.retryDelayMs ?? 1_000));

    let response: Response;
    try {
      response = await this.fetch(url, init).catch(async (error: unknown) => {
        if (!retry || (error as Error)?.name === 'AbortError') throw error;
        await pause();
        return this.fetch(url, init);
      });
      if (retry && RETRY_STATUSES.has(response.status)) {
        await pause();
        response = await this.fetch(url, init);
      }
    } catch (error) {
      if ((error as Error)?.name === 'AbortError') throw error;
      throw new ApiError(
        0,
        'UNREACHABLE',
        `Cannot reach the control plane at ${this.options.baseUrl || 'this page’s origin'}: ${(error as Error)?.message ?? String(error)}`,
      );
    }
    if (response.status === 401 && call.token === undefined) this.options.onUnauthorized?.();
    const json = (response.headers.get('content-type') ?? '').includes('json');
    if (response.ok && !json && response.status !== 204) return response as ResponseBody<Id>;
    const body = parseJson(await response.text());
    if (!response.ok) throw ApiError.fromAnswer(response.status, response.statusText, body);
    return (response.status === 204 ? undefined : body) as ResponseBody<Id>;
  }
}
