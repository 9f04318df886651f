import { randomUUID } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

/** Where `quantix up` leaves the URL and token, so later CLI calls in that directory need no flags. */
export const CREDENTIALS_FILE = join('.quantix', 'credentials.json');

export interface ApiTarget {
  url: string;
  token: string;
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details: unknown,
  ) {
    super(message);
  }
}

/** Flags win, then QUANTIX_URL / QUANTIX_TOKEN, then ./.quantix/credentials.json. */
export function resolveTarget(flags: { url?: string; token?: string }): ApiTarget {
  let saved: Partial<ApiTarget> = {};
  if (existsSync(CREDENTIALS_FILE)) saved = JSON.parse(readFileSync(CREDENTIALS_FILE, 'utf8')) as Partial<ApiTarget>;
  const url = flags.url ?? process.env.QUANTIX_URL ?? saved.url;
  const token = flags.token ?? process.env.QUANTIX_TOKEN ?? saved.token;
  if (!url || !token) {
    throw new ApiError(
      0,
      'NO_TARGET',
      'No control plane given: pass --url and --token, set QUANTIX_URL and QUANTIX_TOKEN, or run `quantix up` here first',
      {},
    );
  }
  return { url: url.replace(/\/$/, ''), token };
}

/** Answers after which a write is sent once more (with the same Idempotency-Key). */
const RETRY_STATUSES = new Set([502, 503, 504]);
const RETRY_AFTER_MS = 1_000;

/** A thin client of the control plane's HTTP API. */
export class ApiClient {
  constructor(private readonly target: ApiTarget) {}

  /** The control plane's base URL. */
  get url(): string {
    return this.target.url;
  }

  /**
   * One API call. A write carries an Idempotency-Key and is sent once more, with the same key,
   * when the first attempt got no answer or a "try again" (502/503/504: a replica went away
   * mid-request, say): the control plane answers the retry with the first attempt's result if
   * it had one, so nothing is done twice.
   */
  async request<T = unknown>(method: string, path: string, body?: unknown): Promise<T> {
    const write = method !== 'GET' && method !== 'HEAD';
    const headers: Record<string, string> = {
      authorization: `Bearer ${this.target.token}`,
      ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
      ...(write ? { 'idempotency-key': randomUUID() } : {}),
    };
    const send = () =>
      fetch(`${this.target.url}/api/v1${path}`, {
        method,
        headers,
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      });
    let response: Response;
    try {
      response = await send().catch(async (error) => {
        if (!write) throw error;
        await new Promise((resolve) => setTimeout(resolve, RETRY_AFTER_MS));
        return send();
      });
      if (write && RETRY_STATUSES.has(response.status)) {
        await new Promise((resolve) => setTimeout(resolve, RETRY_AFTER_MS));
        response = await send();
      }
    } catch (error) {
      throw new ApiError(
        0,
        'UNREACHABLE',
        `Cannot reach the control plane at ${this.target.url}: ${(error as Error).message}`,
        {},
      );
    }
    const text = await response.text();
    const payload = text ? (JSON.parse(text) as { error?: { code: string; message: string; details: unknown } }) : null;
    if (!response.ok) {
      const error = payload?.error;
      throw new ApiError(
        response.status,
        error?.code ?? `HTTP_${response.status}`,
        error?.message ?? response.statusText,
        error?.details,
      );
    }
    return payload as T;
  }
}
