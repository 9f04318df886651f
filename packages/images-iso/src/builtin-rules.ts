import type { OsFamily } from '@quantix/core';
import { normalizeArch } from './arch.js';

export { normalizeArch } from './arch.js';

/**
 * The built-in identification table. Operating systems are read by the family rules
 * (family-rules.ts), which name releases newer than the osinfo-db a machine carries; this file
 * holds the types they share, the media that are not an OS release (driver discs, cloud-init
 * seeds, appliance installers) and, last resort, the download names distributions give their
 * files.
 */

export type MediaPurpose = 'installer' | 'live' | 'cloud-init-seed' | 'drivers';

export interface IdentifiedOs {
  family: OsFamily;
  distribution: string | null;
  version: string | null;
  arch: string | null;
  /** A human-readable name: "Ubuntu 24.04 LTS", "Windows Server 2025". */
  name: string | null;
  purpose: MediaPurpose | null;
  /** A language tag the media names (Windows labels carry one: EN-US → en-US). */
  language: string | null;
  /** osinfo-db's short id of the release ("fedora41", "win10", "rhel9.6"); null when no release is named. */
  shortId: string | null;
}

/** Media that are not an OS release, recognised by their volume id. */
export interface BuiltinRule {
  /** Stable id, reported as `builtin:<id>`. */
  id: string;
  /** Matched against the primary volume id (or, when it is empty, the UDF volume id). */
  volumeId: RegExp;
  identify(match: RegExpExecArray): IdentifiedOs;
}

const linux = (
  distribution: string,
  version: string | null,
  arch: string | null | undefined,
  name: string,
  purpose: MediaPurpose | null,
  shortId: string | null,
): IdentifiedOs => ({
  family: 'linux',
  distribution,
  version,
  arch: normalizeArch(arch),
  name,
  purpose,
  language: null,
  shortId,
});

/** en-US from EN-US (BCP 47 casing). */
export function languageTag(code: string | undefined): string | null {
  if (!code) return null;
  const [language, region] = code.split('-');
  return region ? `${language?.toLowerCase()}-${region.toUpperCase()}` : (language?.toLowerCase() ?? null);
}

export const BUILTIN_RULES: readonly BuiltinRule[] = [
  {
    // PVE (Proxmox VE installer), PMG, PBS: appliances osinfo-db does not list
    id: 'proxmox',
    volumeId: /^(PVE|PBS|PMG)$/,
    identify: (m) =>
      linux(
        'proxmox',
        null,
        'x86_64',
        { PVE: 'Proxmox VE', PBS: 'Proxmox Backup Server', PMG: 'Proxmox Mail Gateway' }[m[1] as 'PVE'],
        'installer',
        null,
      ),
  },
  {
    // virtio-win-0.1.262: the KVM paravirtual drivers for Windows guests
    id: 'virtio-win',
    volumeId: /^virtio-win-(\d+\.\d+\.\d+)$/,
    identify: (m) => ({
      family: 'windows',
      distribution: 'virtio-win',
      version: m[1] ?? null,
      arch: null,
      name: `virtio-win drivers ${m[1]}`,
      purpose: 'drivers',
      language: null,
      shortId: null,
    }),
  },
  {
    // cloud-init NoCloud seed (cloud-localds, genisoimage -V cidata) and OpenStack config drives
    id: 'cloud-init-seed',
    volumeId: /^(cidata|CIDATA|config-2|CONFIG-2)$/,
    identify: (m) => ({
      family: 'other',
      distribution: m[1]?.toLowerCase() === 'config-2' ? 'openstack-config-drive' : 'cloud-init-nocloud',
      version: null,
      arch: null,
      name: m[1]?.toLowerCase() === 'config-2' ? 'OpenStack config drive' : 'cloud-init NoCloud seed',
      purpose: 'cloud-init-seed',
      language: null,
      shortId: null,
    }),
  },
];

export interface FilenameRule {
  id: string;
  pattern: RegExp;
  identify(match: RegExpExecArray): IdentifiedOs;
}

/** Windows build numbers of each release, as evaluation ISOs name them (26100.1742.240906-0331…). */
const WINDOWS_SERVER_BUILDS: readonly [build: number, version: string][] = [
  [26100, '2025'],
  [20348, '2022'],
  [17763, '2019'],
  [14393, '2016'],
];

/**
 * Last resort, for ISOs whose descriptors name nothing known: the download names distributions
 * give their files. Matched against the file name only (not its directory).
 */
export const FILENAME_RULES: readonly FilenameRule[] = [
  {
    id: 'ubuntu',
    pattern:
      /^(ubuntu|kubuntu|xubuntu|lubuntu)-(\d\d\.\d\d)(?:\.\d+)?-(live-server|desktop|server|netboot)-(amd64|arm64|ppc64el|s390x|riscv64)\.iso$/i,
    identify: (m) =>
      linux(
        'ubuntu',
        m[2] ?? null,
        m[4],
        `Ubuntu ${m[2]}`,
        m[3]?.toLowerCase() === 'desktop' ? 'live' : 'installer',
        `ubuntu${m[2]}`,
      ),
  },
  {
    id: 'debian',
    pattern:
      /^debian-(\d+)\.\d+(?:\.\d+)?-(amd64|arm64|i386|ppc64el|s390x|armhf)-(netinst|DVD-\d+|BD-\d+|xfce-CD-\d+)\.iso$/i,
    identify: (m) => linux('debian', m[1] ?? null, m[2], `Debian ${m[1]}`, 'installer', `debian${m[1]}`),
  },
  {
    id: 'rocky',
    pattern: /^Rocky-(\d+)\.(\d+)-(x86_64|aarch64|ppc64le|s390x)-(?:dvd\d*|boot|minimal)\.iso$/i,
    identify: (m) =>
      linux('rocky', `${m[1]}.${m[2]}`, m[3], `Rocky Linux ${m[1]}.${m[2]}`, 'installer', `rocky${m[1]}`),
  },
  {
    id: 'almalinux',
    pattern: /^AlmaLinux-(\d+)\.(\d+)-(x86_64|aarch64|ppc64le|s390x)-(?:dvd|boot|minimal)\.iso$/i,
    identify: (m) =>
      linux('almalinux', `${m[1]}.${m[2]}`, m[3], `AlmaLinux ${m[1]}.${m[2]}`, 'installer', `almalinux${m[1]}`),
  },
  {
    id: 'fedora',
    pattern: /^Fedora-([A-Za-z]+)-(?:dvd|netinst|Live|ostree)-(x86_64|aarch64|ppc64le|s390x)-(\d+)-[\d.]+\.iso$/i,
    identify: (m) => linux('fedora', m[3] ?? null, m[2], `Fedora ${m[3]}`, 'installer', `fedora${m[3]}`),
  },
  {
    id: 'centos-stream',
    pattern: /^CentOS-Stream-(\d+)-\w+-(x86_64|aarch64|ppc64le|s390x)-(?:dvd1|boot)\.iso$/i,
    identify: (m) =>
      linux('centos-stream', m[1] ?? null, m[2], `CentOS Stream ${m[1]}`, 'installer', `centos-stream${m[1]}`),
  },
  {
    id: 'windows-server',
    pattern: /^(\d{5})\.\d+\.\d+-\d+\.\w+_SERVER(?:_EVAL)?_(x64)FREE?_([a-z]{2}-[a-z]{2})\.iso$/i,
    identify: (m) => {
      const build = Number(m[1]);
      const version = WINDOWS_SERVER_BUILDS.find(([b]) => build >= b)?.[1] ?? null;
      return {
        family: 'windows',
        distribution: 'windows-server',
        version,
        arch: normalizeArch(m[2]),
        name: version ? `Windows Server ${version}` : 'Windows Server',
        purpose: 'installer',
        language: languageTag(m[3]),
        shortId: version ? `win2k${version.slice(2)}` : null,
      };
    },
  },
  {
    id: 'windows',
    pattern: /^Win(10|11)_[\w.]*?_?(?:English|EnglishInternational|[A-Z][a-z]+)?_?(x64|x32|Arm64)(?:v\d+)?\.iso$/i,
    identify: (m) => ({
      family: 'windows',
      distribution: 'windows',
      version: m[1] ?? null,
      arch: normalizeArch(m[2] === 'x32' ? 'i686' : m[2]),
      name: `Windows ${m[1]}`,
      purpose: 'installer',
      language: null,
      shortId: `win${m[1]}`,
    }),
  },
  {
    id: 'virtio-win',
    pattern: /^virtio-win(?:-(\d+\.\d+\.\d+))?\.iso$/i,
    identify: (m) => ({
      family: 'windows',
      distribution: 'virtio-win',
      version: m[1] ?? null,
      arch: null,
      name: 'virtio-win drivers',
      purpose: 'drivers',
      language: null,
      shortId: null,
    }),
  },
];
