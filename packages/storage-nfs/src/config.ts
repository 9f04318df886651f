import { isIPv6 } from 'node:net';
import { posix } from 'node:path';
import {
  checkPoolRootShape,
  ErrorCode,
  type PoolTypeDefinition,
  parseOrThrow,
  QuantixError,
  type StoragePool,
} from '@quantix/core';
import { directoryPathSchema, directorySettingsSchema } from '@quantix/storage-local';
import { z } from 'zod';

/** Where a pool is mounted when its config names no mount point: `<root>/<poolId>`. */
export const DEFAULT_MOUNT_ROOT = '/var/lib/quantix/pools';

export const NFS_VERSIONS = ['3', '4', '4.0', '4.1', '4.2'] as const;
export type NfsVersion = (typeof NFS_VERSIONS)[number];

/** One mount option as mount(8) takes it: no separators, no spaces. */
const mountOptionSchema = z
  .string()
  .trim()
  .min(1)
  .regex(/^[A-Za-z0-9_.:/@+=-]+$/, 'must be a single mount option such as hard or timeo=600 (no commas or spaces)');

const serverSchema = z
  .string()
  .trim()
  .min(1, 'must not be empty')
  .transform((s) => (s.startsWith('[') && s.endsWith(']') ? s.slice(1, -1) : s))
  .refine(
    (s) => isIPv6(s) || /^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$/.test(s),
    'must be a host name, an IPv4 address or an IPv6 address',
  );

export const nfsPoolConfigSchema = directorySettingsSchema
  .extend({
    /** Host name or address of the NFS server; an IPv6 address with or without brackets. */
    server: serverSchema,
    /** Path exported by the server, e.g. /export/isos. */
    export: z
      .string()
      .min(1)
      .refine((p) => p.startsWith('/'), 'must be an absolute path on the server')
      .transform(normalizeExportPath),
    /** NFS protocol version (vers=); mount negotiates one when absent. */
    version: z
      .union([z.string(), z.number()])
      .transform((v) => String(v))
      .pipe(z.enum(NFS_VERSIONS))
      .optional(),
    /** Extra mount options, as a list or one comma-separated string. */
    options: z
      .union([z.array(mountOptionSchema), z.string()])
      .transform((v) => (typeof v === 'string' ? v.split(',').filter((o) => o.trim() !== '') : v))
      .pipe(z.array(mountOptionSchema))
      .default([]),
    /** Where this node mounts the export; default `/var/lib/quantix/pools/<poolId>`. */
    mountPoint: directoryPathSchema.optional(),
  })
  // A misspelled key (`mountpoint`, `exprt`) is refused, never silently ignored.
  .strict()
  .superRefine((config, ctx) => {
    if (config.version && config.options.some((o) => /^(vers|nfsvers)=/.test(o))) {
      ctx.addIssue({
        code: 'custom',
        path: ['options'],
        message: 'gives the NFS version again; set it once, in version',
      });
    }
  });

export type NfsPoolConfig = z.output<typeof nfsPoolConfigSchema>;
export type NfsPoolConfigInput = z.input<typeof nfsPoolConfigSchema>;

export function parseNfsPoolConfig(pool: Pick<StoragePool, 'id' | 'config'>): NfsPoolConfig {
  const config = parseOrThrow(nfsPoolConfigSchema, pool.config, `config of NFS pool '${pool.id}'`);
  if (config.mountPoint !== undefined) checkPoolRootShape(config.mountPoint, 'config.mountPoint');
  return config;
}

/**
 * The 'nfs' pool type: its config schema, and its root — the mount point this node mounts it at
 * (configured, or `<mountRoot>/<poolId>`). Wherever else a node finds the export mounted, that
 * directory is checked too, by the backend, before it is used.
 */
export function createNfsPoolType(options: { mountRoot?: string } = {}): PoolTypeDefinition<NfsPoolConfig> {
  const mountRoot = options.mountRoot ?? DEFAULT_MOUNT_ROOT;
  return Object.freeze({
    type: 'nfs',
    configSchema: nfsPoolConfigSchema,
    roots: (config: NfsPoolConfig, poolId: string) => [poolMountPoint(poolId, config, mountRoot)],
  });
}

/** The 'nfs' pool type with mount points under DEFAULT_MOUNT_ROOT. */
export const nfsPoolType: PoolTypeDefinition<NfsPoolConfig> = createNfsPoolType();

/** One spelling per export path: `//` collapsed, no trailing slash (but `/` stays `/`). */
export function normalizeExportPath(path: string): string {
  const normalized = posix.normalize(path);
  return normalized.length > 1 && normalized.endsWith('/') ? normalized.slice(0, -1) : normalized;
}

/**
 * One spelling per server: lower case, no brackets, and IPv6 addresses in their canonical
 * form (`FD00:0::1` → `fd00::1`), so that a mount made with either spelling is recognised.
 */
export function normalizeServer(server: string): string {
  let host = server.trim().toLowerCase();
  if (host.startsWith('[') && host.endsWith(']')) host = host.slice(1, -1);
  if (isIPv6(host)) {
    try {
      return new URL(`http://[${host}]/`).hostname.slice(1, -1);
    } catch {
      return host; // zone ids (fe80::1%eth0) are not URL hosts; keep them as written
    }
  }
  return host.endsWith('.') ? host.slice(0, -1) : host;
}

/** `server:/export` as mount(8) takes it, IPv6 addresses in brackets. */
export function formatNfsSource(server: string, exportPath: string): string {
  const host = server.startsWith('[') ? server : isIPv6(server) ? `[${server}]` : server;
  return `${host}:${exportPath}`;
}

/** The mount point this node uses for a pool: its configured one, or `<mountRoot>/<poolId>`. */
export function poolMountPoint(poolId: string, config: NfsPoolConfig, mountRoot = DEFAULT_MOUNT_ROOT): string {
  if (config.mountPoint) return config.mountPoint;
  // Pool ids are validated slugs; refuse anything that would not be one directory name.
  if (poolId === '' || poolId === '.' || poolId === '..' || poolId.includes('/') || poolId.includes('\0')) {
    throw new QuantixError(ErrorCode.INVALID_INPUT, `Pool id ${JSON.stringify(poolId)} cannot name a mount point`, {
      details: { poolId },
    });
  }
  return posix.join(mountRoot, poolId);
}
