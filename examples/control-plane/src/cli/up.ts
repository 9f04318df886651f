import { existsSync, readFileSync } from 'node:fs';
import { hostname as osHostname } from 'node:os';
import { join, resolve } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { newToken } from '@quantix/control-plane';
import {
  createLogger,
  createPoolRootPolicy,
  createQuantix,
  type DatabaseConfig,
  DEFAULT_POOL_ROOTS,
  defaultLogFormat,
  describeDatabase,
  ErrorCode,
  type LogFormat,
  logDestination,
  QuantixError,
  type QuantixPlugin,
  writeFileAtomic,
} from '@quantix/core';
import { poolRootsOption, startNodeDaemon } from '@quantix/example-node-daemon';
import type { VirtType } from '@quantix/example-node-daemon/options';
import { type CatalogEntryInput, createImagesCloudPlugin } from '@quantix/images-cloud';
import { imagesIsoPlugin } from '@quantix/images-iso';
import { createStorageLocalPlugin } from '@quantix/storage-local';
import { createStorageNfsPlugin } from '@quantix/storage-nfs';
import { startControlPlane } from '../control-plane.js';
import { lockDataDir, restrictModes, securePrivateDir } from './data-dir.js';

export const LOCAL_NODE_ID = 'local';
export const LOCAL_POOL_ID = 'local';

/**
 * The plugins a control plane runs with: catalogs, and the pool types (config schemas and roots)
 * of the storage plugins without their backends — downloads, mounts and scans run on nodes.
 */
export function controlPlanePlugins(
  options: { entries?: readonly CatalogEntryInput[]; allowSourceAddresses?: readonly string[] | undefined } = {},
): QuantixPlugin[] {
  return [
    createImagesCloudPlugin({
      ...(options.entries ? { entries: options.entries } : {}),
      // The control plane reads golden images' checksum files itself: the mirrors nodes may use.
      ...(options.allowSourceAddresses
        ? { fetcher: { policy: { allowAddresses: [...options.allowSourceAddresses] } } }
        : {}),
    }),
    imagesIsoPlugin,
    createStorageLocalPlugin({ backend: false }),
    createStorageNfsPlugin({ backend: false }),
  ];
}

function readSavedToken(file: string): string | null {
  if (!existsSync(file)) return null;
  try {
    return (JSON.parse(readFileSync(file, 'utf8')) as { token?: string }).token ?? null;
  } catch {
    return null;
  }
}

/** Where `up` and `serve` keep the API token they made: `<dataDir>/credentials.json`. */
const credentialsFileIn = (dataDir: string) => join(dataDir, 'credentials.json');

/** Whole or not at all: a half-written file would read as no token, and the next start would make a new one. */
async function saveCredentials(file: string, url: string, token: string): Promise<void> {
  await writeFileAtomic(file, `${JSON.stringify({ url, token }, null, 2)}\n`, { mode: 0o600 });
}

export interface AllInOneOptions {
  dataDir: string;
  /** Where state is kept; default embedded PGlite in `<dataDir>/db`. */
  database?: DatabaseConfig;
  host: string;
  port: number;
  /** libvirt URI for the local node; null for none. */
  libvirtUri: string | null;
  /** How the local node's VMs run (default 'auto': KVM when libvirt offers it). */
  virtType?: VirtType;
  /** Extra catalog entries (tests point these at a local HTTP server). */
  entries?: readonly CatalogEntryInput[];
  /** Loopback/private addresses downloads may come from. */
  allowSourceAddresses?: readonly string[];
  /**
   * Directories pools may be in besides `<dataDir>/pools` (`--pool-root`, QUANTIX_POOL_ROOTS).
   * Default /var/lib/quantix and /srv. The data dir itself stays closed to pools.
   */
  poolRoots?: readonly string[];
  log?: (line: string) => void;
  /** Log lines for people (`pretty`) or machines (`json`); default pretty on a terminal. */
  logFormat?: LogFormat;
  /** How often ISO pools are scanned again (default DEFAULT_RESCAN_SECONDS; 0: only on sync and `images rescan`). */
  rescanSeconds?: number;
  /** How often VMs' records are checked against the hypervisor (default DEFAULT_VM_STATE_SECONDS; 0: never). */
  vmStateSeconds?: number;
  /** How long a VM stop waits for its guest by default (default DEFAULT_VM_STOP_TIMEOUT_SECONDS). */
  vmStopSeconds?: number;
}

/**
 * All-in-one: the control plane on embedded PGlite in `<dataDir>/db`, a node agent in the same
 * process connected to it like any node daemon, and a local pool in `<dataDir>/pools/local`.
 * The API token is kept in `<dataDir>/credentials.json`, so a restart keeps it.
 */
export async function startAllInOne(options: AllInOneOptions) {
  const log = options.log ?? ((line: string) => process.stdout.write(`${line}\n`));
  const dataDir = resolve(options.dataDir);
  securePrivateDir(dataDir);
  const lock = lockDataDir(dataDir);
  const logger = createLogger(
    { name: 'quantix', level: process.env.QUANTIX_LOG_LEVEL ?? 'warn' },
    logDestination(options.logFormat ?? defaultLogFormat()),
  );
  const credentialsFile = credentialsFileIn(dataDir);
  const savedToken = readSavedToken(credentialsFile);
  const apiToken = savedToken ?? newToken();
  const database: DatabaseConfig = options.database ?? { client: 'pglite', dataDir: join(dataDir, 'db') };
  // Whatever was started is stopped again if a later step fails: a failed start leaves nothing running.
  const started: (() => Promise<void> | void)[] = [() => lock.release()];
  const stopAll = async () => {
    for (const stop of started.reverse()) await stop();
    started.length = 0;
  };
  try {
    // `up` keeps its own pool in <dataDir>/pools, so that directory is always allowed; the rest of
    // the data dir (database, credentials, uploads) never is.
    const allowedRoots = [join(dataDir, 'pools'), ...(options.poolRoots ?? DEFAULT_POOL_ROOTS)];
    const poolRoots = createPoolRootPolicy({ allowedRoots, protectedPaths: [dataDir] });
    const quantix = await createQuantix({ database, plugins: controlPlanePlugins(options), logger });
    started.push(() => quantix.close());
    const cp = await startControlPlane({
      quantix,
      apiToken,
      host: options.host,
      port: options.port,
      stagingDir: join(dataDir, 'uploads'),
      poolRoots,
      ...(options.rescanSeconds !== undefined ? { rescanSeconds: options.rescanSeconds } : {}),
      ...(options.vmStateSeconds !== undefined ? { vmStateSeconds: options.vmStateSeconds } : {}),
      ...(options.vmStopSeconds !== undefined ? { vmStopTimeoutSeconds: options.vmStopSeconds } : {}),
    });
    started.push(() => cp.close());
    await saveCredentials(credentialsFile, cp.url, apiToken);

    const { repositories } = quantix;
    if (!(await repositories.nodes.get(LOCAL_NODE_ID))) {
      await repositories.nodes.create({
        id: LOCAL_NODE_ID,
        hostname: osHostname().replace(/[^A-Za-z0-9.-]/g, '-') || 'localhost',
      });
    }
    // The in-process node gets a fresh token on every start; nothing else ever sees it, and the
    // API refuses to replace it (or to remove the node) while this runs.
    const nodeToken = await cp.nodes.issueInProcessToken(LOCAL_NODE_ID);
    if (!(await repositories.pools.get(LOCAL_POOL_ID))) {
      await repositories.pools.create({
        id: LOCAL_POOL_ID,
        name: 'local',
        description: 'Images and ISOs on this machine',
        type: 'local',
        config: { path: join(dataDir, 'pools', 'local'), create: true },
        contentTypes: ['iso', 'images'],
        nodeIds: [LOCAL_NODE_ID],
      });
    }
    const node = await startNodeDaemon({
      urls: [cp.url],
      nodeId: LOCAL_NODE_ID,
      token: nodeToken,
      libvirtUri: options.libvirtUri,
      ...(options.virtType ? { virtType: options.virtType } : {}),
      ...(options.allowSourceAddresses ? { allowSourceAddresses: options.allowSourceAddresses } : {}),
      poolRoots: poolRoots.allowedRoots,
      protectedPaths: poolRoots.protectedPaths,
      logger,
      initialBackoffMs: 100,
    });
    started.push(() => node.close());
    await node.connection.ready;
    // PGlite made its files 0666 while starting; the directory is 0700 already.
    restrictModes(dataDir);

    log(`Quantix is up (all-in-one, ${describeDatabase(database)})`);
    log(`  API:    ${cp.url}/api/v1   (OpenAPI: ${cp.url}/api/v1/openapi.json)`);
    if (savedToken) {
      log(`  Web UI: ${cp.url}/   (its token, and the CLI's, is in ${credentialsFile})`);
    } else {
      // Shown once, when made; afterwards only where it is kept.
      log(`  Web UI: ${cp.url}/#token=${apiToken}`);
      log(`  Token:  ${apiToken}   (kept in ${credentialsFile}, readable by you only)`);
    }
    log(`  Pool:   ${LOCAL_POOL_ID} at ${join(dataDir, 'pools', 'local')}`);
    log(`  Pools may be in: ${poolRoots.allowedRoots.join(', ')} (--pool-root to choose)`);
    log(
      node.hypervisorProblem === null
        ? `  VMs:    libvirt at ${options.libvirtUri}`
        : options.libvirtUri === null
          ? '  VMs:    off (--libvirt none)'
          : `  VMs:    unavailable — ${node.hypervisorProblem}. Start libvirtd (see scripts/services.sh libvirt) and restart to create VMs.`,
    );
    log('The quantix CLI in this directory uses these credentials; press Ctrl-C to stop.');

    return {
      url: cp.url,
      apiToken,
      quantix,
      controlPlane: cp,
      node,
      dataDir,
      async close() {
        await stopAll();
        restrictModes(dataDir);
      },
    };
  } catch (error) {
    await stopAll().catch(() => undefined);
    throw error;
  }
}

/** Extra catalog entries from a JSON file (an array of entries); a bad file stops start-up with its reason. */
export function readCatalogFile(file: string | undefined): CatalogEntryInput[] | undefined {
  if (!file) return undefined;
  const entries = JSON.parse(readFileSync(file, 'utf8')) as unknown;
  if (!Array.isArray(entries)) throw new Error(`${file} must hold a JSON array of catalog entries`);
  return entries as CatalogEntryInput[];
}

export async function runAllInOne(options: {
  dataDir: string;
  host: string;
  port: number;
  libvirtUri: string;
  /** `--virt-type` of the local node. */
  virtType?: VirtType | undefined;
  catalogFile?: string | undefined;
  poolRoots?: readonly string[] | undefined;
  /** `--allow-source`: private/loopback addresses the local node downloads from, and the control plane reads checksum files from. */
  allowSourceAddresses?: readonly string[] | undefined;
  logFormat?: LogFormat | undefined;
  /** `--rescan-seconds` (or its variable), checked here first. */
  rescanSeconds?: FlagValue | undefined;
  /** `--vm-state-seconds` (or its variable), checked here first. */
  vmStateSeconds?: FlagValue | undefined;
  /** `--vm-stop-seconds` (or its variable), checked here first. */
  vmStopSeconds?: FlagValue | undefined;
}): Promise<void> {
  const rescanSeconds = options.rescanSeconds && secondsOption(options.rescanSeconds, RESCAN_SECONDS);
  const vmStateSeconds = options.vmStateSeconds && secondsOption(options.vmStateSeconds, VM_STATE_SECONDS);
  const vmStopSeconds = options.vmStopSeconds && secondsOption(options.vmStopSeconds, VM_STOP_SECONDS);
  // Everything this process creates is its user's alone (data, uploads, credentials).
  process.umask(0o077);
  const entries = readCatalogFile(options.catalogFile);
  const system = await startAllInOne({
    dataDir: options.dataDir,
    host: options.host,
    port: options.port,
    libvirtUri: options.libvirtUri === 'none' ? null : options.libvirtUri,
    ...(options.virtType ? { virtType: options.virtType } : {}),
    ...(entries ? { entries } : {}),
    ...poolRootsOption(options.poolRoots, process.env.QUANTIX_POOL_ROOTS),
    ...(options.allowSourceAddresses ? { allowSourceAddresses: options.allowSourceAddresses } : {}),
    ...(options.logFormat ? { logFormat: options.logFormat } : {}),
    ...(rescanSeconds !== undefined ? { rescanSeconds } : {}),
    ...(vmStateSeconds !== undefined ? { vmStateSeconds } : {}),
    ...(vmStopSeconds !== undefined ? { vmStopSeconds } : {}),
  });
  await waitForSignal();
  // A second Ctrl-C finds no handler left: Node's default ends the process at once.
  process.stdout.write('stopping… (Ctrl-C again: at once)\n');
  await system.close();
  process.stdout.write(
    options.libvirtUri === 'none'
      ? 'Quantix stopped\n'
      : 'Quantix stopped; its VMs run on under libvirt, and `quantix up` here again manages them\n',
  );
}

/** The API token for `serve`: a file, or QUANTIX_API_TOKEN; else one is made and kept in the data dir. */
export function serveToken(options: { tokenFile?: string | undefined; dataDir: string }): {
  token: string;
  from: string;
} {
  if (options.tokenFile) {
    const token = readFileSync(options.tokenFile, 'utf8').trim();
    if (!token) throw new QuantixError(ErrorCode.INVALID_INPUT, `The token file ${options.tokenFile} is empty`);
    return { token, from: options.tokenFile };
  }
  if (process.env.QUANTIX_API_TOKEN) return { token: process.env.QUANTIX_API_TOKEN, from: 'QUANTIX_API_TOKEN' };
  const file = credentialsFileIn(options.dataDir);
  const saved = readSavedToken(file);
  if (saved) return { token: saved, from: file };
  return { token: newToken(), from: '' };
}

/** How a replica id may be spelled: it names the replica in /healthz, /replicas and the node leases. */
const REPLICA_ID_PATTERN = /^[A-Za-z0-9._-]{1,64}$/;

export const LEASE_SECONDS = { min: 3, max: 300, default: 15 } as const;
/** `--rescan-seconds`: 0 turns periodic rescans off; at most a day. */
export const RESCAN_SECONDS = { min: 0, max: 86_400 } as const;
/** What `--vm-state-seconds` accepts (0: never). */
export const VM_STATE_SECONDS = { min: 0, max: 86_400 } as const;
/** What `--vm-stop-seconds` accepts: as long as `POST /vms/{id}/stop` lets a request wait. */
export const VM_STOP_SECONDS = { min: 0, max: 3600 } as const;

/** A flag's value as given, with the flag or variable it came from (for error messages). */
export interface FlagValue {
  value: string;
  from: string;
}

/** What `serve` was given about itself as a replica, each value with the flag or variable it came from. */
export interface ReplicaFlags {
  id?: FlagValue | undefined;
  url?: FlagValue | undefined;
  leaseSeconds?: FlagValue | undefined;
}

const invalidFlag = (from: string, value: string, rule: string) =>
  new QuantixError(ErrorCode.INVALID_INPUT, `${from} ${JSON.stringify(value)} is not valid: ${rule}`);

/** A whole number of seconds within `bounds`, or INVALID_INPUT naming the flag (or variable). */
export function secondsOption({ value, from }: FlagValue, bounds: { min: number; max: number }): number {
  // Digits only: Number() would also take "1e1", "0x10" or "".
  const seconds = /^\d+$/.test(value) ? Number(value) : Number.NaN;
  if (!(seconds >= bounds.min && seconds <= bounds.max)) {
    throw invalidFlag(from, value, `a whole number of seconds from ${bounds.min} to ${bounds.max}`);
  }
  return seconds;
}

/**
 * The `replica` option of startControlPlane from `serve`'s flags, or INVALID_INPUT naming the
 * flag (or variable) and what it must be: a bad value stops start-up before anything is opened.
 */
export function replicaOption(flags: ReplicaFlags): { id?: string; url?: string; leaseSeconds: number } {
  const replica: { id?: string; url?: string; leaseSeconds: number } = { leaseSeconds: LEASE_SECONDS.default };
  if (flags.id !== undefined) {
    if (!REPLICA_ID_PATTERN.test(flags.id.value)) {
      throw invalidFlag(flags.id.from, flags.id.value, 'a replica id is 1 to 64 letters, digits, ".", "_" and "-"');
    }
    replica.id = flags.id.value;
  }
  if (flags.url !== undefined) {
    let url: URL | null = null;
    try {
      url = new URL(flags.url.value);
    } catch {
      url = null;
    }
    if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:') || url.hostname === '') {
      throw invalidFlag(flags.url.from, flags.url.value, 'give the http:// or https:// URL this replica is reached at');
    }
    // Kept as given, without a trailing slash: other replicas and nodes append paths to it.
    replica.url = flags.url.value.replace(/\/+$/, '');
  }
  if (flags.leaseSeconds !== undefined) replica.leaseSeconds = secondsOption(flags.leaseSeconds, LEASE_SECONDS);
  return replica;
}

/**
 * A control plane holding thousands of node connections: after a full collection V8 lets the
 * heap grow to up to 4× what was live before collecting again, and a reconnect storm of 2,000
 * nodes leaves short-lived garbage enough to fill that (measured: 220 MB of heap over a 50 MB
 * live set, 310 MB resident). Growing by at most half of it keeps the process near what it
 * holds (bench/pool-sync: under 250 MB resident), at the cost of more frequent, incremental
 * full collections of a small live set. QUANTIX_HEAP_GROWING_PERCENT overrides it (0: V8's own).
 */
function boundHeapGrowth(): void {
  const percent = Number(process.env.QUANTIX_HEAP_GROWING_PERCENT ?? 50);
  if (Number.isInteger(percent) && percent > 0) setFlagsFromString(`--heap-growing-percent=${percent}`);
}

/** Control plane only, for node daemons on other hosts. */
export async function runServe(options: {
  host: string;
  port: number;
  databaseUrl: string | undefined;
  catalogFile?: string | undefined;
  tokenFile?: string | undefined;
  dataDir: string;
  /** Bound on each database statement; connecting and waiting for a connection get at most this too. */
  databaseTimeoutMs?: number | undefined;
  /** `--pool-root` flags; else QUANTIX_POOL_ROOTS; else /var/lib/quantix and /srv. */
  poolRoots?: readonly string[] | undefined;
  /** `--replica-id`, `--replica-url`, `--lease-seconds` (or their variables), checked here first. */
  replica?: ReplicaFlags | undefined;
  logFormat?: LogFormat | undefined;
  /** `--allow-source`: private/loopback addresses checksum files (golden images) may be read from. */
  allowSourceAddresses?: readonly string[] | undefined;
  /** `--rescan-seconds` (or its variable), checked here first. */
  rescanSeconds?: FlagValue | undefined;
  /** `--vm-state-seconds` (or its variable), checked here first. */
  vmStateSeconds?: FlagValue | undefined;
  /** `--vm-stop-seconds` (or its variable), checked here first. */
  vmStopSeconds?: FlagValue | undefined;
}): Promise<void> {
  const replica = replicaOption(options.replica ?? {});
  const rescanSeconds = options.rescanSeconds && secondsOption(options.rescanSeconds, RESCAN_SECONDS);
  const vmStateSeconds = options.vmStateSeconds && secondsOption(options.vmStateSeconds, VM_STATE_SECONDS);
  const vmStopSeconds = options.vmStopSeconds && secondsOption(options.vmStopSeconds, VM_STOP_SECONDS);
  process.umask(0o077);
  boundHeapGrowth();
  const logger = createLogger(
    { name: 'quantix', level: process.env.QUANTIX_LOG_LEVEL ?? 'info' },
    logDestination(options.logFormat ?? defaultLogFormat()),
  );
  const dataDir = resolve(options.dataDir);
  securePrivateDir(dataDir);
  const lock = lockDataDir(dataDir);
  const timeout = options.databaseTimeoutMs;
  const database: DatabaseConfig = options.databaseUrl
    ? {
        client: 'pg',
        connectionString: options.databaseUrl,
        ...(timeout
          ? {
              timeouts: {
                statementMs: timeout,
                connectMs: Math.min(5_000, timeout),
                acquireMs: Math.min(10_000, timeout),
              },
            }
          : {}),
      }
    : { client: 'pglite', dataDir: join(dataDir, 'db') };
  const { token: apiToken, from } = serveToken({ tokenFile: options.tokenFile, dataDir });
  const entries = readCatalogFile(options.catalogFile);
  const { poolRoots: allowedRoots } = poolRootsOption(options.poolRoots, process.env.QUANTIX_POOL_ROOTS);
  let quantix: Awaited<ReturnType<typeof createQuantix>> | undefined;
  let cp: Awaited<ReturnType<typeof startControlPlane>> | undefined;
  try {
    // A bad --pool-root stops start-up here, naming it; the data dir is never a pool.
    const poolRoots = createPoolRootPolicy({ ...(allowedRoots ? { allowedRoots } : {}), protectedPaths: [dataDir] });
    quantix = await createQuantix({
      database,
      plugins: controlPlanePlugins({
        ...(entries ? { entries } : {}),
        allowSourceAddresses: options.allowSourceAddresses,
      }),
      logger,
    });
    cp = await startControlPlane({
      quantix,
      apiToken,
      host: options.host,
      port: options.port,
      stagingDir: join(dataDir, 'uploads'),
      poolRoots,
      replica,
      ...(rescanSeconds !== undefined ? { rescanSeconds } : {}),
      ...(vmStateSeconds !== undefined ? { vmStateSeconds } : {}),
      ...(vmStopSeconds !== undefined ? { vmStopTimeoutSeconds: vmStopSeconds } : {}),
      // Nodes fetch staged uploads from the replica that staged them: its own URL, not a balancer's.
      ...(process.env.QUANTIX_PUBLIC_URL || replica.url
        ? { publicUrl: process.env.QUANTIX_PUBLIC_URL || replica.url }
        : {}),
    });
  } catch (error) {
    await quantix?.close().catch(() => undefined);
    lock.release();
    throw error;
  }
  // The token is kept before `listening` is announced: whoever waits on that line may read it at once.
  let tokenNote = `API token from ${from}`;
  if (from === '') {
    const file = credentialsFileIn(dataDir);
    await saveCredentials(file, cp.url, apiToken);
    tokenNote = `A new API token was made and kept in ${file} (give one with --api-token-file or QUANTIX_API_TOKEN)`;
  }
  process.stdout.write(
    `Quantix control plane at ${cp.url} on ${describeDatabase(database)}, replica ${cp.replicas.replicaId}\n`,
  );
  process.stdout.write(`${tokenNote}\n`);
  process.stdout.write(`${JSON.stringify({ event: 'listening', url: cp.url })}\n`);
  await waitForSignal();
  process.stdout.write('stopping… (Ctrl-C again: at once)\n');
  await cp.close();
  await quantix.close();
  lock.release();
  process.stdout.write('Quantix control plane stopped\n');
}

function waitForSignal(): Promise<void> {
  return new Promise((resolve) => {
    process.once('SIGINT', () => resolve());
    process.once('SIGTERM', () => resolve());
  });
}
