import { createHash } from 'node:crypto';

/** Hashes are 48-bit: a sum of two stays an exact double, and a chance mismatch is 1 in 2^48. */
const MODULUS = 2 ** 48;

/**
 * The hash of one scanned file's facts (relPath, size, mtime in ms), as a delta scan adds it into
 * the fingerprint of a pool's whole state. Computed once per file version and kept by the node.
 */
export function scanEntryHash(file: { relPath: string; sizeBytes: number; modifiedMs: number }): number {
  const digest = createHash('md5').update(`${file.relPath}\n${file.sizeBytes}\n${file.modifiedMs}`).digest();
  return digest.readUIntBE(0, 6);
}

/**
 * The fingerprint of a scan's whole state: the count of files and the sum of their entry hashes.
 * A sum, not a hash of the sorted list, so that it is independent of order and a node updates it
 * without hashing 20,000 entries again. Two states with the same fingerprint are taken as equal.
 */
export function scanFingerprint(hashes: Iterable<number>): string {
  let count = 0;
  let sum = 0;
  for (const hash of hashes) {
    count += 1;
    sum = (sum + hash) % MODULUS;
  }
  return `${count}-${sum.toString(16)}`;
}

/**
 * JSON with object keys in code-unit order (not the locale's) and undefined members left out, as
 * JSON.stringify leaves them: the same value gives the same text on every machine, whatever the
 * order its keys were built or parsed in.
 */
export function stableJson(value: unknown): string {
  if (Array.isArray(value))
    return `[${value.map((item) => (item === undefined ? 'null' : stableJson(item))).join(',')}]`;
  if (value && typeof value === 'object' && !(value instanceof Date)) {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, item]) => item !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([key, item]) => `${JSON.stringify(key)}:${stableJson(item)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

/**
 * The fingerprint of a node's desired pool set: every definition as pushed (`pools.desired`), in
 * pool-id order. A node says the fingerprint of the set it applied in its hello; the control plane
 * compares it with the set it would push, and when they are the same it pushes nothing.
 */
export function desiredPoolsFingerprint(pools: readonly { id: string }[]): string {
  const sorted = [...pools].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  return createHash('sha256').update(stableJson(sorted)).digest('base64url');
}
