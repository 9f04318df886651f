import { mkdir, rmdir } from 'node:fs/promises';
import { performance } from 'node:perf_hooks';
import {
  type CommandRunner,
  type ConnectionCheck,
  type DiscoveredPool,
  ErrorCode,
  isQuantixError,
  LocalCommandRunner,
  type PoolStatus,
  QuantixError,
  type StoragePool,
} from '@quantix/core';
import {
  assertWritable,
  directoryStatus,
  LocalStorageBackend,
  type LocalStorageBackendOptions,
  type PoolDirectory,
  unavailableStatus,
} from '@quantix/storage-local';
import {
  buildConnectionCheckArgv,
  buildMountArgv,
  buildUnmountArgv,
  isExported,
  parseShowmountExports,
} from './commands.js';
import {
  DEFAULT_MOUNT_ROOT,
  formatNfsSource,
  type NfsPoolConfig,
  normalizeServer,
  parseNfsPoolConfig,
  poolMountPoint,
} from './config.js';
import { findPoolMount, MOUNTINFO_PATH, nfsMounts, type PoolMountMatch, readMountTable } from './mountinfo.js';

export interface NfsStorageBackendOptions extends LocalStorageBackendOptions {
  /**
   * Runs mount, umount, showmount and rpcinfo. It must run them on this machine: the mount
   * table and the mounted directory are read locally. Default: a LocalCommandRunner.
   */
  runner?: CommandRunner;
  /** Parent of default mount points (`<mountRoot>/<poolId>`). Default /var/lib/quantix/pools. */
  mountRoot?: string;
  /** The mount table to read. Default /proc/self/mountinfo; tests give a file in its format. */
  mountInfoPath?: string;
  /** Bound on one mount or umount. Default 60 s. */
  mountTimeoutMs?: number;
  /** Bound on checkConnection when the caller gives none. Default 10 s, as Proxmox. */
  connectionTimeoutMs?: number;
}

export const DEFAULT_MOUNT_TIMEOUT_MS = 60_000;
export const DEFAULT_CONNECTION_TIMEOUT_MS = 10_000;
/** Commands run with the C locale so that their messages (quoted in errors, parsed) are stable. */
const COMMAND_ENV = { LC_ALL: 'C', LANG: 'C' };

/**
 * NFS pools (type 'nfs'): a directory pool whose directory is an NFS mount. Only finding,
 * mounting, checking and reporting the mount are NFS-specific (as in Proxmox's NFSPlugin);
 * listing, resolving, allocating and removing are the directory operations of storage-local,
 * applied at wherever the export is mounted on this node — found in the mount table, at any path.
 */
export class NfsStorageBackend extends LocalStorageBackend {
  override readonly type: string = 'nfs';
  protected readonly runner: CommandRunner;
  protected readonly mountRoot: string;
  protected readonly mountInfoPath: string;
  protected readonly mountTimeoutMs: number;
  protected readonly connectionTimeoutMs: number;

  constructor(options: NfsStorageBackendOptions = {}) {
    super(options);
    this.runner = options.runner ?? new LocalCommandRunner();
    this.mountRoot = options.mountRoot ?? DEFAULT_MOUNT_ROOT;
    this.mountInfoPath = options.mountInfoPath ?? MOUNTINFO_PATH;
    this.mountTimeoutMs = options.mountTimeoutMs ?? DEFAULT_MOUNT_TIMEOUT_MS;
    this.connectionTimeoutMs = options.connectionTimeoutMs ?? DEFAULT_CONNECTION_TIMEOUT_MS;
  }

  /** Where this node mounts the pool itself (configured, or `<mountRoot>/<poolId>`). */
  ownMountPoint(pool: StoragePool, config = parseNfsPoolConfig(pool)): string {
    return poolMountPoint(pool.id, config, this.mountRoot);
  }

  /** Where the pool's export is mounted on this node right now, at any path; null when nowhere. */
  async findMount(pool: StoragePool, config = parseNfsPoolConfig(pool)): Promise<PoolMountMatch | null> {
    const mounts = nfsMounts(await readMountTable(this.mountInfoPath));
    return findPoolMount(mounts, config, this.ownMountPoint(pool, config));
  }

  protected override async poolDirectory(pool: StoragePool): Promise<PoolDirectory> {
    const config = parseNfsPoolConfig(pool);
    const found = await this.findMount(pool, config);
    if (!found) throw notMounted(pool, config);
    return { root: found.root, maxDepth: config.maxDepth, readOnly: config.readOnly };
  }

  /**
   * Unavailable, with the reason, when the export is not mounted here or its server does not
   * answer; otherwise capacity from statfs of the mounted directory. The server is asked first
   * and statfs is bounded too, because statfs on a hard mount of a dead server never returns.
   */
  override async status({ pool }: { pool: StoragePool }): Promise<PoolStatus> {
    const config = parseNfsPoolConfig(pool);
    const found = await this.findMount(pool, config);
    if (!found) return unavailableStatus(notMounted(pool, config).message);
    await this.checkRoot(found.root);
    let check: ConnectionCheck;
    try {
      check = await this.askServer(config, found.mount.version, this.connectionTimeoutMs);
    } catch (error) {
      return unavailableStatus(`Cannot check NFS server ${config.server}: ${(error as Error).message}`, found.root);
    }
    if (!check.reachable) {
      return unavailableStatus(`NFS server ${config.server} is unreachable: ${check.reason}`, found.root);
    }
    return directoryStatus(found.root, { timeoutMs: this.statfsTimeoutMs });
  }

  /**
   * Uses the export where it is already mounted, at whatever path; otherwise mounts it at the
   * pool's own mount point with `mount -t nfs`, bounded by a timeout. With a root policy, either
   * directory must be allowed by it (POOL_ROOT_NOT_ALLOWED) before it is created, mounted or probed. A failed mount is
   * POOL_MOUNT_FAILED carrying mount's own message, and leaves no mount point directory behind.
   */
  override async activate({ pool }: { pool: StoragePool }): Promise<PoolStatus> {
    const config = parseNfsPoolConfig(pool);
    let found = await this.findMount(pool, config);
    if (!found) {
      // The mount point is made and mounted on only where pools may be.
      await this.checkRoot(this.ownMountPoint(pool, config));
      await this.mount(pool, config);
      found = await this.findMount(pool, config);
      if (!found) {
        throw new QuantixError(
          ErrorCode.POOL_MOUNT_FAILED,
          `mount reported success for ${formatNfsSource(config.server, config.export)}, but the mount table does not show it`,
          { details: { poolId: pool.id, mountPoint: this.ownMountPoint(pool, config) } },
        );
      }
    }
    // Found mounted elsewhere: that directory must be allowed too before it is probed or listed.
    await this.checkRoot(found.root);
    // Ask the server before touching the directory: I/O on a hard mount of a dead server hangs.
    const status = await this.status({ pool });
    if (!status.available) {
      throw new QuantixError(ErrorCode.POOL_UNAVAILABLE, status.reason ?? `Pool '${pool.id}' is unavailable`, {
        details: { poolId: pool.id, rootPath: found.root },
      });
    }
    if (!config.readOnly) await assertWritable(found.root);
    return status;
  }

  /** Unmounts the pool from its own mount point. A mount made by someone else elsewhere is left alone. */
  override async deactivate({ pool }: { pool: StoragePool }): Promise<void> {
    const config = parseNfsPoolConfig(pool);
    const found = await this.findMount(pool, config);
    const own = this.ownMountPoint(pool, config);
    if (!found || found.mount.mountPoint !== own) return;
    await this.runMountCommand(buildUnmountArgv(own), pool, config, 'Unmounting');
  }

  /**
   * Whether the server answers, within `timeoutMs` (default 10 s): the export list from mountd,
   * or for NFSv4 (configured, or the version the pool is mounted with) a NULL call to the NFS
   * service. A dead or hung server is `reachable: false` with
   * the reason, never a hang; a missing client tool (showmount, rpcinfo) is an error.
   */
  async checkConnection({ pool, timeoutMs }: { pool: StoragePool; timeoutMs?: number }): Promise<ConnectionCheck> {
    const config = parseNfsPoolConfig(pool);
    const mounted = config.version ? null : await this.findMount(pool, config);
    return this.askServer(config, mounted?.mount.version ?? null, timeoutMs ?? this.connectionTimeoutMs);
  }

  /**
   * Without a configured version, the version the export is mounted with decides the probe: an
   * NFSv4-only server runs no mountd for showmount to ask.
   */
  private async askServer(
    config: NfsPoolConfig,
    mountedVersion: string | null,
    limit: number,
  ): Promise<ConnectionCheck> {
    const argv = buildConnectionCheckArgv({ server: config.server, version: config.version ?? mountedVersion });
    const started = performance.now();
    const latency = () => Math.round(performance.now() - started);
    try {
      const result = await this.runner.run({ argv, timeoutMs: limit, env: COMMAND_ENV, allowNonZeroExit: true });
      if (result.exitCode !== 0) {
        const said = (result.stderr || result.stdout).trim() || `${argv[0]} exited with status ${result.exitCode}`;
        return { reachable: false, reason: said, latencyMs: latency() };
      }
      if (argv[0] === 'showmount') {
        const exports = parseShowmountExports(result.stdout);
        if (!isExported(exports, config.export)) {
          const listed = exports.map((e) => e.path).join(', ') || 'nothing';
          return {
            reachable: false,
            reason: `server answers but does not export ${config.export} (it exports ${listed})`,
            latencyMs: latency(),
          };
        }
      }
      return { reachable: true, reason: null, latencyMs: latency() };
    } catch (error) {
      if (isQuantixError(error, ErrorCode.COMMAND_TIMEOUT)) {
        return { reachable: false, reason: `${argv[0]} got no answer within ${limit} ms`, latencyMs: latency() };
      }
      throw error;
    }
  }

  /**
   * The NFS mounts in this node's mount table, each matched to the defined pool it serves (by
   * server and export, wherever it is mounted) or given as unmatched (poolId null).
   */
  async discover({ pools }: { pools: readonly StoragePool[] }): Promise<DiscoveredPool[]> {
    const mounts = nfsMounts(await readMountTable(this.mountInfoPath));
    const discovered: DiscoveredPool[] = [];
    const matched = new Set<string>();
    for (const pool of pools) {
      if (pool.type !== this.type) continue;
      let config: NfsPoolConfig;
      try {
        config = parseNfsPoolConfig(pool);
      } catch {
        continue; // a pool with a broken config matches nothing; activate reports it
      }
      const found = findPoolMount(mounts, config, this.ownMountPoint(pool, config));
      if (!found) continue;
      matched.add(found.mount.mountPoint);
      discovered.push({
        poolId: pool.id,
        type: this.type,
        rootPath: found.root,
        config: describeMount(found.mount, config.export),
      });
    }
    for (const mount of mounts) {
      if (matched.has(mount.mountPoint)) continue;
      discovered.push({ poolId: null, type: this.type, rootPath: mount.mountPoint, config: describeMount(mount) });
    }
    return discovered;
  }

  private async mount(pool: StoragePool, config: NfsPoolConfig): Promise<void> {
    const mountPoint = this.ownMountPoint(pool, config);
    const table = await readMountTable(this.mountInfoPath);
    const occupant = table.findLast((entry) => entry.mountPoint === mountPoint);
    if (occupant) {
      throw new QuantixError(
        ErrorCode.POOL_MOUNT_FAILED,
        `Cannot mount ${formatNfsSource(config.server, config.export)} at ${mountPoint}: ${occupant.source} (${occupant.fsType}) is already mounted there`,
        { details: { poolId: pool.id, mountPoint, occupant: { source: occupant.source, fsType: occupant.fsType } } },
      );
    }
    const created = await mkdir(mountPoint, { recursive: true, mode: 0o755 }).catch((error: Error) => {
      throw new QuantixError(ErrorCode.POOL_MOUNT_FAILED, `Cannot create mount point ${mountPoint}: ${error.message}`, {
        details: { poolId: pool.id, mountPoint },
        cause: error,
      });
    });
    try {
      await this.runMountCommand(buildMountArgv(config, mountPoint), pool, config, 'Mounting');
    } catch (error) {
      // Only the directory made just now goes; parents made with it are harmless and may be shared.
      if (created !== undefined) await rmdir(mountPoint).catch(() => undefined);
      throw error;
    }
  }

  private async runMountCommand(argv: string[], pool: StoragePool, config: NfsPoolConfig, what: string) {
    const source = formatNfsSource(config.server, config.export);
    const mountPoint = argv[argv.length - 1] as string;
    try {
      await this.runner.run({ argv, timeoutMs: this.mountTimeoutMs, env: COMMAND_ENV });
    } catch (error) {
      const details: Record<string, unknown> = { poolId: pool.id, source, mountPoint, argv };
      let said: string;
      if (isQuantixError(error, ErrorCode.COMMAND_TIMEOUT)) {
        said = `${argv[0]} did not finish within ${this.mountTimeoutMs} ms`;
        details.timedOut = true;
      } else if (isQuantixError(error)) {
        const stderr = typeof error.details.stderr === 'string' ? error.details.stderr.trim() : '';
        said = stderr || error.message;
        details.exitCode = error.details.exitCode ?? null;
        details.stderr = error.details.stderr ?? null;
      } else {
        said = (error as Error).message;
      }
      const where = what === 'Mounting' ? `${source} at ${mountPoint}` : `${source} from ${mountPoint}`;
      throw new QuantixError(ErrorCode.POOL_MOUNT_FAILED, `${what} NFS export ${where} failed: ${said}`, {
        details,
        cause: error,
      });
    }
  }
}

function notMounted(pool: StoragePool, config: NfsPoolConfig): QuantixError {
  return new QuantixError(
    ErrorCode.POOL_UNAVAILABLE,
    `NFS export ${formatNfsSource(config.server, config.export)} of pool '${pool.id}' is not mounted on this node; activate the pool to mount it`,
    { details: { poolId: pool.id, server: config.server, export: config.export } },
  );
}

function describeMount(mount: PoolMountMatch['mount'], exportPath = mount.export): Record<string, unknown> {
  return {
    server: normalizeServer(mount.server),
    export: exportPath,
    version: mount.version,
    mountPoint: mount.mountPoint,
    fsType: mount.fsType,
  };
}
