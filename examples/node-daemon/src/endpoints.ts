import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';

/** One place a node may dial: a control-plane URL, pinned to one of its host's addresses. */
export interface Endpoint {
  /** The URL as the operator gave it (its host name stays the TLS server name and Host header). */
  url: URL;
  /** The address dialled: one of those the host name resolves to, or the literal address. */
  address: string;
}

/**
 * Every endpoint the given control-plane URLs stand for, in the order given: a host name with
 * several addresses (one DNS name for all replicas) becomes one endpoint per address, so a dead
 * replica behind the name is skipped like a dead --url. A name that does not resolve is left
 * out and reported in `unresolved`; the caller retries it on the next round.
 */
export async function resolveEndpoints(
  urls: readonly URL[],
): Promise<{ endpoints: Endpoint[]; unresolved: { url: URL; reason: string }[] }> {
  const endpoints: Endpoint[] = [];
  const unresolved: { url: URL; reason: string }[] = [];
  for (const url of urls) {
    const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
    if (isIP(host)) {
      endpoints.push({ url, address: host });
      continue;
    }
    try {
      const addresses = await lookup(host, { all: true });
      for (const { address } of addresses) endpoints.push({ url, address });
    } catch (error) {
      unresolved.push({ url, reason: (error as Error).message });
    }
  }
  return { endpoints, unresolved };
}

/**
 * The control-plane URLs a node was given, checked: http(s) or ws(s), at least one. Throws with
 * the offending value named.
 */
export function parseControlPlaneUrls(values: readonly string[]): URL[] {
  if (values.length === 0) throw new Error('no control-plane URL: give --url at least once');
  return values.map((value) => {
    let url: URL;
    try {
      url = new URL(value);
    } catch {
      throw new Error(`--url ${JSON.stringify(value)} is not a URL (expected http(s)://host:port)`);
    }
    if (!['http:', 'https:', 'ws:', 'wss:'].includes(url.protocol)) {
      throw new Error(`--url ${JSON.stringify(value)}: the scheme must be http, https, ws or wss`);
    }
    return url;
  });
}

/**
 * The order a node dials its endpoints in, for one round: uniformly random (Fisher–Yates), new
 * each round, so nodes spread over the replicas at start and a dead replica's nodes spread over
 * those left. Returns a new array.
 */
export function dialOrder<T>(endpoints: readonly T[]): T[] {
  const order = [...endpoints];
  for (let i = order.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [order[i], order[j]] = [order[j] as T, order[i] as T];
  }
  return order;
}
