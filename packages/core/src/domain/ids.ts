import { createHash, randomUUID } from 'node:crypto';

/** A fresh random id (UUID v4). */
export function newId(): string {
  return randomUUID();
}

// Fixed namespace for ids derived from pool locations; changing it would re-key every discovered image.
const LOCATION_NAMESPACE = Buffer.from('6f0f5b7e2c9a4d1b8e3a5c7d9f1b3e5a', 'hex');

/**
 * The deterministic id of the image found at (poolId, relPath): a UUID v5, so that a re-scan
 * of the same file upserts the same row instead of adding a duplicate.
 */
export function imageIdForLocation(poolId: string, relPath: string): string {
  const hash = createHash('sha1').update(LOCATION_NAMESPACE).update(`${poolId}\0${relPath}`).digest();
  const bytes = hash.subarray(0, 16);
  bytes[6] = ((bytes[6] ?? 0) & 0x0f) | 0x50; // version 5
  bytes[8] = ((bytes[8] ?? 0) & 0x3f) | 0x80; // RFC 4122 variant
  const hex = bytes.toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
