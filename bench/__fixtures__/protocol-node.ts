// What the storm benches' protocol-level nodes say, as the node daemon (protocol 4) says it: a
// hello with the pools held from the last push, and every pushed pool reported active.
// The function of @quantix/core, from its own module: the whole package (knex, pg, PGlite) is not
// loaded into a process of 2,000 clients for it.
import { desiredPoolsFingerprint } from '../../packages/core/src/protocol/fingerprint.js';

type Report = { poolId: string; status: 'active'; mountPath: string; capacityBytes: null; availableBytes: null; reason: null };

/** The pools of one node: what its last push was, and what it reported of it. */
export class HeldPools {
  private held: { generation: number; fingerprint: string; reports: Report[] } | undefined;

  /** The hello to send on (re)connect. */
  hello(nodeId: string): string {
    return JSON.stringify({
      v: 4,
      type: 'hello',
      nodeId,
      hostname: nodeId,
      agentVersion: 'bench',
      capabilities: {},
      protocol: { min: 1, max: 4 },
      ...(this.held ? { pools: this.held } : {}),
    });
  }

  /** Takes a pools.desired push; returns the pools.state to answer it with. */
  apply(push: { generation: number; pools: { id: string }[] }): string {
    const reports: Report[] = push.pools.map((p) => ({
      poolId: p.id,
      status: 'active',
      mountPath: `/mnt/${p.id}`,
      capacityBytes: null,
      availableBytes: null,
      reason: null,
    }));
    this.held = { generation: push.generation, fingerprint: desiredPoolsFingerprint(push.pools), reports };
    return JSON.stringify({ v: 4, type: 'pools.state', generation: push.generation, pools: reports });
  }
}

/** When the storm benches' pool files were written: the rows a bench seeds and its nodes' scans agree. */
const SEEDED_AT = '2026-01-01T00:00:00.000Z';

/** A file as a node's scan reports it. */
export interface ScanFile {
  relPath: string;
  kind: 'cloud';
  format: 'qcow2';
  sizeBytes: number;
  modifiedAt: string;
}

/** The storm benches' shared pool: the one pool whose scans find disk images (poolImageFiles). */
export const SHARED_POOL_ID = 'shared';

/**
 * The disk images the storm benches' shared pool holds: the rows a bench seeds (`fileModifiedAt`
 * is `new Date(modifiedAt)`) and what its nodes find when asked to scan it, so that a scan after a
 * reconnect finds every row's file unchanged, as a real node's scan of that export would.
 */
export function poolImageFiles(count: number): ScanFile[] {
  return Array.from({ length: count }, (_, i) => ({
    relPath: `cloud/${i}.qcow2`,
    kind: 'cloud' as const,
    format: 'qcow2' as const,
    sizeBytes: 1e9 + i,
    modifiedAt: SEEDED_AT,
  }));
}

/** The rows a storm bench seeds for its shared pool `poolId`: poolImageFiles as the database records them. */
export function poolImageRows(poolId: string, count: number) {
  return poolImageFiles(count).map((file) => ({
    poolId,
    relPath: file.relPath,
    kind: file.kind,
    format: file.format,
    sizeBytes: file.sizeBytes,
    fileModifiedAt: new Date(file.modifiedAt),
  }));
}

/** Files per scan.result part: 2,000 of these are ~220 KB, well within a node frame's 1 MiB. */
const SCAN_PART_FILES = 2_000;

/**
 * The frames a node answers a request with, in order: a scan of the shared pool (SHARED_POOL_ID)
 * finds `images` when it scans for disk images (in parts, as the node daemon sends a large scan);
 * any other pool, or a scan for ISOs, finds nothing (a pool made during a bench is new and empty)
 * — its scan.result frames, then the response. As the node daemon does, a scan says the
 * fingerprint of what it found, and a scan asked `since` that fingerprint (the files never change
 * here) is answered with an empty scan.delta. Anything else gets an empty result.
 */
export function answersTo(
  requestId: string,
  request: { op: string; poolId?: string; content?: string; since?: string },
  images: readonly ScanFile[] = [],
): string[] {
  if (request.op !== 'pool.scan') return [JSON.stringify({ v: 4, type: 'response', requestId, result: {} })];
  const { poolId, content } = request;
  const files = content === 'images' && poolId === SHARED_POOL_ID ? images : [];
  const fingerprint = `${files.length}-b0`;
  const result = { poolId, content, files: files.length, skipped: [] };
  if (request.since === fingerprint) {
    const unchanged = { v: 4, type: 'scan.delta', poolId, content, base: fingerprint, fingerprint, files: [], removed: [] };
    return [
      JSON.stringify(unchanged),
      JSON.stringify({ v: 4, type: 'response', requestId, result: { ...result, delta: true } }),
    ];
  }
  const frames: string[] = [];
  const parts = Math.max(1, Math.ceil(files.length / SCAN_PART_FILES));
  for (let part = 0; part < parts; part++) {
    const chunk = files.slice(part * SCAN_PART_FILES, (part + 1) * SCAN_PART_FILES);
    const last = part === parts - 1;
    const numbered = parts > 1 ? { scanId: requestId, part, final: last } : {};
    const closing = last ? { fingerprint } : {};
    frames.push(JSON.stringify({ v: 4, type: 'scan.result', poolId, content, files: chunk, ...numbered, ...closing }));
  }
  frames.push(JSON.stringify({ v: 4, type: 'response', requestId, result }));
  return frames;
}
