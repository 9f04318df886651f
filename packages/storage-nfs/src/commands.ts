import { isIPv6 } from 'node:net';
import { formatNfsSource, type NfsPoolConfig } from './config.js';

// The commands this backend runs, as pure functions from config to argv (no shell strings),
// tested against golden files in __fixtures__/argv; running them is tested against the real
// programs separately (libvirt's storagepoolxml2argv tests work the same way).

/** mount(8) options for a pool: `vers=` first when configured, then the configured options. */
export function mountOptions(config: Pick<NfsPoolConfig, 'version' | 'options'>): string[] {
  return [...(config.version ? [`vers=${config.version}`] : []), ...config.options];
}

/** `mount -t nfs [-o opts] server:/export mountPoint`. */
export function buildMountArgv(
  config: Pick<NfsPoolConfig, 'server' | 'export' | 'version' | 'options'>,
  mountPoint: string,
): string[] {
  const options = mountOptions(config);
  return [
    'mount',
    '-t',
    'nfs',
    ...(options.length > 0 ? ['-o', options.join(',')] : []),
    formatNfsSource(config.server, config.export),
    mountPoint,
  ];
}

/** `umount mountPoint`. */
export function buildUnmountArgv(mountPoint: string): string[] {
  return ['umount', mountPoint];
}

/**
 * How to ask a server whether it serves NFS, as Proxmox's NFSPlugin check_connection does: an
 * NFSv4 server need not run mountd or list exports, so for version 4 a NULL call to the NFS
 * program (`rpcinfo -T tcp|tcp6 host nfs 4`); otherwise the export list from mountd
 * (`showmount --no-headers --exports host`), which also tells whether the export is there.
 */
export function buildConnectionCheckArgv(config: { server: string; version?: string | null }): string[] {
  if (config.version?.startsWith('4')) {
    return ['rpcinfo', '-T', isIPv6(config.server) ? 'tcp6' : 'tcp', config.server, 'nfs', '4'];
  }
  return ['showmount', '--no-headers', '--exports', config.server];
}

export interface ShowmountExport {
  path: string;
  /** Who may mount it, as showmount prints it: `127.0.0.1/32,10.0.0.0/8` or `(everyone)`. */
  clients: string;
}

/**
 * Parses `showmount --no-headers --exports` output: one export a line, the path padded with
 * spaces, then the comma-separated client list (which has no spaces). Paths may contain spaces,
 * so the client list is taken from the end of the line.
 */
export function parseShowmountExports(stdout: string): ShowmountExport[] {
  const exports: ShowmountExport[] = [];
  for (const line of stdout.split('\n')) {
    const trimmed = line.trimEnd();
    if (!trimmed.startsWith('/')) continue;
    const match = /^(.*\S)\s+(\S+)$/.exec(trimmed);
    exports.push(match ? { path: match[1] as string, clients: match[2] as string } : { path: trimmed, clients: '' });
  }
  return exports;
}

/** Whether `exportPath` is exported, directly or as a directory inside an exported one. */
export function isExported(exports: readonly ShowmountExport[], exportPath: string): boolean {
  return exports.some(
    (e) => e.path === exportPath || e.path === '/' || exportPath.startsWith(`${e.path.replace(/\/+$/, '')}/`),
  );
}
