import type { ImageRow } from './types.js';

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];

export function formatBytes(bytes: number | null | undefined): string {
  if (bytes === null || bytes === undefined) return '—';
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${unit === 0 ? value : value.toFixed(value >= 100 ? 0 : 1)} ${UNITS[unit]}`;
}

export function formatAgo(iso: string | null | undefined, now: number): string {
  if (!iso) return 'never';
  const seconds = Math.round((now - new Date(iso).getTime()) / 1000);
  if (seconds < 5) return 'just now';
  if (seconds < 60) return `${seconds} s ago`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`;
  if (seconds < 86_400) return `${Math.floor(seconds / 3600)} h ago`;
  return `${Math.floor(seconds / 86_400)} d ago`;
}

export function formatDate(iso: string | null | undefined): string {
  return iso ? new Date(iso).toLocaleString() : '';
}

export function osLabel(os: ImageRow['os'] | null | undefined): string {
  if (!os) return '—';
  const name = [os.distribution, os.version].filter(Boolean).join(' ');
  const label = name || (os.family === 'unknown' ? '' : os.family);
  if (!label) return '—';
  return os.arch ? `${label} (${os.arch})` : label;
}

const CONFIDENCE: Record<string, string> = {
  exact: 'matched in osinfo-db',
  label: 'read from the label',
  extrapolated: 'a release newer than osinfo-db, read from the label',
  filename: 'guessed from the file name',
};

/** How an OS was identified and with which osinfo-db, for the line under it; '' when unknown. */
export function osProvenance(os: ImageRow['os'] | null | undefined): string {
  if (!os?.confidence) return '';
  const how = CONFIDENCE[os.confidence] ?? os.confidence;
  const id = os.shortId ? `${os.shortId}: ` : '';
  return `${id}${how}${os.osinfoVersion ? ` (osinfo-db ${os.osinfoVersion})` : ''}`;
}

export const KIND_LABEL: Record<string, string> = { cloud: 'Cloud image', iso: 'ISO' };

/** What an uploaded file is by its name, as the CLI and the Images page upload it: `.iso` an ISO, else a disk image. */
export function uploadKindOf(name: string): 'iso' | 'disk' {
  return name.toLowerCase().endsWith('.iso') ? 'iso' : 'disk';
}

/**
 * Where a pool's files are, shortly (the Pools page, `quantix pools show`): a local pool's path,
 * an NFS pool's `server:export` and where it is mounted; another backend's settings as `key=value`.
 */
export function describePoolSource(config: Record<string, unknown>): string {
  if (typeof config.server === 'string') {
    const mountPoint = typeof config.mountPoint === 'string' ? ` (mounted at ${config.mountPoint})` : '';
    return `${config.server}:${String(config.export ?? '')}${mountPoint}`;
  }
  if (typeof config.path === 'string') return config.path;
  const entries = Object.entries(config);
  return entries.length ? entries.map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(', ') : '—';
}

/**
 * A pool's config with `changes` laid over it, as PATCH /pools/{id} takes it (the whole config):
 * what is not changed stays; `create` is kept only while true (false and absent mean the same).
 * The Pools page's Edit and `quantix pools update` / `create` build it alike.
 */
export function poolConfigWith(
  current: Record<string, unknown>,
  changes: Record<string, unknown>,
): Record<string, unknown> {
  const { create, ...rest } = { ...current, ...changes };
  return { ...rest, ...(create === true ? { create: true } : {}) };
}

/** What a node said of its host in its hello (the Nodes page, `quantix nodes show`): CPUs and memory. */
export function describeHost(capabilities: Record<string, unknown>): string {
  const host = capabilities.host as { cpus?: unknown; memoryMiB?: unknown } | null | undefined;
  return typeof host?.cpus === 'number' && typeof host.memoryMiB === 'number'
    ? `${host.cpus} CPU(s), ${formatBytes(host.memoryMiB * 1024 * 1024)} memory`
    : 'not reported';
}

/** Whether a node runs VMs (and why not, as its hello said), with how many of its VMs there are and run. */
export function describeNodeVms(capabilities: Record<string, unknown>, vms: readonly { state: string }[]): string {
  if (capabilities.vms === true) {
    return `runs VMs (${vms.length} here: ${vms.filter((vm) => vm.state === 'running').length} running)`;
  }
  const why = typeof capabilities.hypervisorProblem === 'string' ? `: ${capabilities.hypervisorProblem}` : '';
  return `runs no VMs${why}${vms.length > 0 ? ` (${vms.length} recorded here)` : ''}`;
}
