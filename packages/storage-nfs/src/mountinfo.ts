import { readFile } from 'node:fs/promises';
import { posix } from 'node:path';
import { normalizeExportPath, normalizeServer } from './config.js';

/** The mount table of this process's mount namespace. */
export const MOUNTINFO_PATH = '/proc/self/mountinfo';

/** One line of /proc/PID/mountinfo (proc(5)), with the octal escapes in paths decoded. */
export interface MountInfoEntry {
  mountId: number;
  parentId: number;
  /** `major:minor` of the device. */
  device: string;
  /** The directory of the filesystem that forms the root of this mount. */
  root: string;
  mountPoint: string;
  mountOptions: string[];
  /** Optional fields such as `shared:1`, `master:2`. */
  optionalFields: string[];
  fsType: string;
  source: string;
  superOptions: string[];
}

/**
 * Decodes the kernel's escapes in mountinfo fields: it writes space, tab, newline and backslash
 * as `\040`, `\011`, `\012`, `\134`. Other bytes are written as they are, so only ASCII escapes
 * occur and decoding them one character each is exact.
 */
export function unescapeMountField(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(Number.parseInt(octal, 8)));
}

/**
 * Parses mountinfo text: `36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue`.
 * Lines that do not have that shape are left out rather than failing the whole table.
 */
export function parseMountInfo(text: string): MountInfoEntry[] {
  const entries: MountInfoEntry[] = [];
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    const fields = line.split(' ');
    const separator = fields.indexOf('-', 6);
    if (fields.length < 10 || separator < 0 || fields.length < separator + 4) continue;
    const [mountId, parentId, device, root, mountPoint, mountOptions] = fields as [
      string,
      string,
      string,
      string,
      string,
      string,
    ];
    if (!/^\d+$/.test(mountId) || !/^\d+$/.test(parentId)) continue;
    entries.push({
      mountId: Number(mountId),
      parentId: Number(parentId),
      device,
      root: unescapeMountField(root),
      mountPoint: unescapeMountField(mountPoint),
      mountOptions: mountOptions.split(','),
      optionalFields: fields.slice(6, separator),
      fsType: fields[separator + 1] as string,
      source: unescapeMountField(fields[separator + 2] as string),
      superOptions: (fields[separator + 3] as string).split(','),
    });
  }
  return entries;
}

export async function readMountTable(path = MOUNTINFO_PATH): Promise<MountInfoEntry[]> {
  return parseMountInfo(await readFile(path, 'utf8'));
}

/** An NFS mount found in the mount table. */
export interface NfsMount {
  /** Server as written in the mount source, without IPv6 brackets. */
  server: string;
  /** Exported path, normalised (no trailing slash). */
  export: string;
  mountPoint: string;
  fsType: 'nfs' | 'nfs4';
  /** `vers=` from the superblock options, e.g. '4.2', when the kernel shows it. */
  version: string | null;
  /** `addr=`: the address the kernel actually talks to, which matches a pool given by address. */
  address: string | null;
  entry: MountInfoEntry;
}

/** Splits a mount source `server:/path` or `[v6addr]:/path`; null when it is not that shape. */
export function parseNfsSource(source: string): { server: string; export: string } | null {
  let server: string;
  let path: string;
  if (source.startsWith('[')) {
    const close = source.indexOf(']:');
    if (close < 0) return null;
    server = source.slice(1, close);
    path = source.slice(close + 2);
  } else {
    const colon = source.indexOf(':');
    if (colon <= 0) return null;
    server = source.slice(0, colon);
    path = source.slice(colon + 1);
  }
  if (server === '' || !path.startsWith('/')) return null;
  return { server, export: normalizeExportPath(path) };
}

const option = (options: readonly string[], name: string): string | null => {
  const found = options.find((o) => o.startsWith(`${name}=`));
  return found === undefined ? null : found.slice(name.length + 1);
};

/**
 * Every NFS mount (types nfs and nfs4 only: nfsd, rpc_pipefs, fuse.sshfs and the like are not
 * NFS mounts even when their source looks like `host:/path`) that is visible — a mount hidden
 * by another mounted on top of the same directory is left out.
 */
export function nfsMounts(entries: readonly MountInfoEntry[]): NfsMount[] {
  const byId = new Map(entries.map((e) => [e.mountId, e]));
  const covered = new Set<number>();
  for (const entry of entries) {
    const parent = byId.get(entry.parentId);
    if (parent && parent !== entry && parent.mountPoint === entry.mountPoint) covered.add(parent.mountId);
  }
  const mounts: NfsMount[] = [];
  for (const entry of entries) {
    if (entry.fsType !== 'nfs' && entry.fsType !== 'nfs4') continue;
    if (covered.has(entry.mountId)) continue;
    const source = parseNfsSource(entry.source);
    if (!source) continue;
    mounts.push({
      ...source,
      mountPoint: entry.mountPoint,
      fsType: entry.fsType,
      version: option(entry.superOptions, 'vers'),
      address: option(entry.superOptions, 'addr'),
      entry,
    });
  }
  return mounts;
}

/** Where a pool's export is reachable on this node. */
export interface PoolMountMatch {
  mount: NfsMount;
  /** The pool's root: the mount point, or below it when a parent directory of the export is mounted. */
  root: string;
}

/**
 * Finds where `server:export` is mounted, at whatever path. The server matches by name or by
 * the address the kernel uses (addr=), in canonical form; the export matches exactly, or the
 * mount is of a directory above it (a pool at /export/isos inside a mount of /export). An exact
 * match wins over a parent one, and among equals the mount at `preferMountPoint` (the pool's
 * own) wins, then the first in the table.
 */
export function findPoolMount(
  mounts: readonly NfsMount[],
  pool: { server: string; export: string },
  preferMountPoint?: string,
): PoolMountMatch | null {
  const server = normalizeServer(pool.server);
  const exportPath = normalizeExportPath(pool.export);
  let best: { match: PoolMountMatch; rank: number[] } | null = null;
  for (const mount of mounts) {
    const sameServer =
      normalizeServer(mount.server) === server || (mount.address !== null && normalizeServer(mount.address) === server);
    if (!sameServer) continue;
    const exact = mount.export === exportPath;
    if (!exact && mount.export !== '/' && !exportPath.startsWith(`${mount.export}/`)) continue;
    const root = exact ? mount.mountPoint : posix.join(mount.mountPoint, posix.relative(mount.export, exportPath));
    // Exact before parent, the pool's own mount point before others, a closer parent before a farther one.
    const rank = [exact ? 1 : 0, mount.mountPoint === preferMountPoint ? 1 : 0, mount.export.length];
    if (best === null || isGreater(rank, best.rank)) best = { match: { mount, root }, rank };
  }
  return best?.match ?? null;
}

function isGreater(a: readonly number[], b: readonly number[]): boolean {
  for (let i = 0; i < a.length; i++) {
    if ((a[i] as number) !== (b[i] as number)) return (a[i] as number) > (b[i] as number);
  }
  return false;
}
