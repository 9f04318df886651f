import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ApiError, QuantixClient } from '@quantix/client';

export { ApiError };

/** Where `quantix up` leaves the URL and token, so later CLI calls in that directory need no flags. */
export const CREDENTIALS_FILE = join('.quantix', 'credentials.json');

export interface ApiTarget {
  url: string;
  token: string;
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

/** A client of the control plane at the target: a write that got no answer or a 502/503/504 is sent once more. */
export function clientFor(target: ApiTarget): QuantixClient {
  return new QuantixClient({ baseUrl: target.url, token: target.token });
}
