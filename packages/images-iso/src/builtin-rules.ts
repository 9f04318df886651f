import type { OsFamily } from '@quantix/core';

/**
 * The built-in identification table: releases newer than the osinfo-db a machine may carry
 * (Debian 12 ships osinfo-db 20221203, which knows neither Debian 12 nor Ubuntu 24.04), the
 * common distributions for machines without osinfo-db at all, and what osinfo-db cannot tell
 * apart from the volume id alone (Windows Server 2016 to 2025 share one label; Windows 10 and 11
 * share another), which the table resolves with release dates against the ISO's creation date.
 *
 * Version numbers follow osinfo-db's granularity: the release, not the point release, where
 * osinfo-db has one entry per release (Ubuntu 24.04, Debian 12, Fedora 41), and the minor
 * release where the media name it (Rocky and AlmaLinux 9.4).
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
}

export interface BuiltinRule {
  /** Stable id, reported as `builtin:<id>`. */
  id: string;
  /** Matched against the primary volume id (or, when it is empty, the UDF volume id). */
  volumeId: RegExp;
  /** When set, the publisher id must match too. */
  publisherId?: RegExp;
  /**
   * First release date (YYYY-MM-DD) of what this rule reports. Several rules on one label are
   * told apart by the ISO's creation date: the newest release not long after it wins.
   */
  releaseDate?: string;
  identify(match: RegExpExecArray): IdentifiedOs;
}

/** Canonical architecture names (libvirt's and osinfo-db's) for the spellings media use. */
export function normalizeArch(arch: string | null | undefined): string | null {
  if (!arch) return null;
  const lower = arch.toLowerCase();
  switch (lower) {
    case 'amd64':
    case 'x64':
    case 'x86_64':
    case 'x86-64':
      return 'x86_64';
    case 'arm64':
    case 'a64':
    case 'aarch64':
      return 'aarch64';
    case 'i386':
    case 'i486':
    case 'i586':
    case 'i686':
    case 'x86':
      return 'i686';
    case 'ppc64el':
    case 'ppc64le':
      return 'ppc64le';
    case 'armhf':
    case 'armv7l':
    case 'armv7hl':
      return 'armv7l';
    case 'all':
      return null;
    default:
      return lower;
  }
}

const linux = (
  distribution: string,
  version: string | null,
  arch: string | null | undefined,
  name: string,
  purpose: MediaPurpose | null = 'installer',
): IdentifiedOs => ({
  family: 'linux',
  distribution,
  version,
  arch: normalizeArch(arch),
  name,
  purpose,
  language: null,
});

/** en-US from EN-US (BCP 47 casing). */
function languageTag(code: string | undefined): string | null {
  if (!code) return null;
  const [language, region] = code.split('-');
  return region ? `${language?.toLowerCase()}-${region.toUpperCase()}` : (language?.toLowerCase() ?? null);
}

const windows = (
  server: boolean,
  version: string,
  arch: string | undefined,
  language: string | undefined,
): IdentifiedOs => ({
  family: 'windows',
  distribution: server ? 'windows-server' : 'windows',
  version,
  arch: normalizeArch(arch),
  name: server ? `Windows Server ${version}` : `Windows ${version}`,
  purpose: 'installer',
  language: languageTag(language),
});

/** Windows client labels: CCCOMA_X64FRE_EN-US_DV9 (consumer), CPBA_…, CCSA_…, with an optional J_ prefix. */
const WINDOWS_CLIENT = /^(?:J_)?(?:C?CCOMA|CCSN?A|CPBA|CPRN?A|CENN?A|CCBEVAL)_(X64|A64)FREE?V?_([A-Z]{2}-[A-Z]{2})/;
/** Windows Server labels: SSS_X64FREE_EN-US_DV9 for every release since 2016. */
const WINDOWS_SERVER = /^(?:J_)?SSS_(X64)(?:FREE?|FREV|CHK)_([A-Z]{2}-[A-Z]{2})/;

const windowsRules = (
  id: string,
  label: RegExp,
  server: boolean,
  releases: readonly [version: string, releaseDate: string][],
): BuiltinRule[] =>
  releases.map(([version, releaseDate]) => ({
    id: `${id}-${version}`,
    volumeId: label,
    releaseDate,
    identify: (m) => windows(server, version, m[1], m[2]),
  }));

export const BUILTIN_RULES: readonly BuiltinRule[] = [
  {
    // Ubuntu 24.04.1 LTS amd64, Ubuntu-Server 24.04.1 LTS amd64, Ubuntu 24.10 amd64 (desktop and server)
    id: 'ubuntu',
    volumeId:
      /^(Ubuntu|Ubuntu-Server|Kubuntu|Xubuntu|Lubuntu|Ubuntu-MATE|Ubuntu Budgie) (\d\d\.\d\d)(?:\.\d+)?( LTS)? (amd64|arm64|ppc64el|s390x|riscv64|i386)$/,
    identify: (m) =>
      linux(
        'ubuntu',
        m[2] ?? null,
        m[4],
        `${m[1] === 'Ubuntu-Server' ? 'Ubuntu Server' : m[1]} ${m[2]}${m[3] ?? ''}`,
        m[1] === 'Ubuntu-Server' ? 'installer' : 'live',
      ),
  },
  {
    // Debian 12.7.0 amd64 n (netinst), Debian 12.7.0 amd64 1 (DVD 1), Debian 13.0.0 arm64 n
    id: 'debian',
    volumeId:
      /^Debian (\d+)\.\d+(?:\.\d+)? (amd64|arm64|i386|ppc64el|s390x|armhf|armel|mips64el|riscv64) (n|\d+|DVD|BD|DLBD)$/,
    identify: (m) => linux('debian', m[1] ?? null, m[2], `Debian ${m[1]}`),
  },
  {
    // d-live 12.7.0 gn amd64 (Debian live images)
    id: 'debian-live',
    volumeId: /^d-live (\d+)\.\d+(?:\.\d+)? \w+ (amd64|arm64|i386)$/,
    identify: (m) => linux('debian', m[1] ?? null, m[2], `Debian ${m[1]} Live`, 'live'),
  },
  {
    // Rocky-9-4-x86_64-dvd, Rocky-10-0-aarch64-boot, Rocky-9-4-x86_64-minimal
    id: 'rocky',
    volumeId: /^Rocky-(\d+)-(\d+)-(x86_64|aarch64|ppc64le|s390x|riscv64)-(?:dvd|boot|minimal)\d*$/,
    identify: (m) => linux('rocky', `${m[1]}.${m[2]}`, m[3], `Rocky Linux ${m[1]}.${m[2]}`),
  },
  {
    // AlmaLinux-9-4-x86_64-dvd, AlmaLinux-10-0-x86_64-boot
    id: 'almalinux',
    volumeId: /^AlmaLinux-(\d+)-(\d+)-(x86_64|aarch64|ppc64le|s390x|x86_64_v2)-(?:dvd|boot|minimal)\d*$/,
    identify: (m) =>
      linux('almalinux', `${m[1]}.${m[2]}`, m[3] === 'x86_64_v2' ? 'x86_64' : m[3], `AlmaLinux ${m[1]}.${m[2]}`),
  },
  {
    // Fedora-S-dvd-x86_64-41 (Server), Fedora-E-dvd-x86_64-41 (Everything netinst), Fedora-WS-Live-x86_64-40
    id: 'fedora',
    volumeId: /^Fedora-([A-Za-z]+)-(dvd|netinst|Live|ostree|osb)-(x86_64|aarch64|ppc64le|s390x)-(\d+)(?:-[\d.]+)?$/,
    identify: (m) => linux('fedora', m[4] ?? null, m[3], `Fedora ${m[4]}`, m[2] === 'Live' ? 'live' : 'installer'),
  },
  {
    // Fedora-WS-Live-41-1-4 (Workstation live media since 41 put the compose in place of the arch)
    id: 'fedora-live',
    volumeId: /^Fedora-([A-Za-z]+)-Live-(\d+)(?:-[\d.-]+)?$/,
    identify: (m) => linux('fedora', m[2] ?? null, null, `Fedora ${m[2]}`, 'live'),
  },
  {
    // CentOS-Stream-9-BaseOS-x86_64, CentOS-Stream-10-BaseOS-aarch64
    id: 'centos-stream',
    volumeId: /^CentOS-Stream-(\d+)-(?:BaseOS|\d+\.\d+)-(x86_64|aarch64|ppc64le|s390x)$/,
    identify: (m) => linux('centos-stream', m[1] ?? null, m[2], `CentOS Stream ${m[1]}`),
  },
  {
    // RHEL-9-4-0-BaseOS-x86_64, RHEL-10-0-BaseOS-x86_64
    id: 'rhel',
    volumeId: /^RHEL-(\d+)-(\d+)-\d+-BaseOS-(x86_64|aarch64|ppc64le|s390x)$/,
    identify: (m) => linux('rhel', `${m[1]}.${m[2]}`, m[3], `Red Hat Enterprise Linux ${m[1]}.${m[2]}`),
  },
  {
    // OL-9-4-0-BaseOS-x86_64 (Oracle Linux)
    id: 'oraclelinux',
    volumeId: /^OL-(\d+)-(\d+)-\d+-BaseOS-(x86_64|aarch64)$/,
    identify: (m) => linux('ol', `${m[1]}.${m[2]}`, m[3], `Oracle Linux ${m[1]}.${m[2]}`),
  },
  {
    // openSUSE-Leap-15.6-DVD-x86_64 (and -NET-), openSUSE-Tumbleweed-DVD-x86_64
    id: 'opensuse',
    volumeId: /^openSUSE-(Leap-(\d+\.\d+)|Tumbleweed)-(?:DVD|NET)-(x86_64|aarch64|ppc64le|s390x)/,
    identify: (m) =>
      linux(
        'opensuse',
        m[2] ?? (m[1] === 'Tumbleweed' ? 'tumbleweed' : null),
        m[3],
        `openSUSE ${m[1]?.replace('-', ' ')}`,
      ),
  },
  {
    // alpine-std 3.20.3 x86_64, alpine-virt 3.20.3 x86_64
    id: 'alpine',
    volumeId: /^alpine-(\w+) (\d+\.\d+)(?:\.\d+)? (x86_64|aarch64|x86|armv7|ppc64le|s390x)$/,
    identify: (m) => linux('alpinelinux', m[2] ?? null, m[3], `Alpine Linux ${m[2]}`),
  },
  {
    // ARCH_202409 (Arch Linux monthly media: no version, the month is the release)
    id: 'archlinux',
    volumeId: /^ARCH_(\d{4})(\d{2})$/,
    identify: (m) => linux('archlinux', `${m[1]}.${m[2]}`, 'x86_64', 'Arch Linux', 'live'),
  },
  {
    // PVE (Proxmox VE installer), PMG, PBS
    id: 'proxmox',
    volumeId: /^(PVE|PBS|PMG)$/,
    identify: (m) =>
      linux(
        'proxmox',
        null,
        'x86_64',
        { PVE: 'Proxmox VE', PBS: 'Proxmox Backup Server', PMG: 'Proxmox Mail Gateway' }[m[1] as 'PVE'],
      ),
  },
  {
    // 14_1_RELEASE_AMD64_CD, 14_1_RELEASE_AMD64_DVD, 14_1_RELEASE_AMD64_BO (FreeBSD)
    id: 'freebsd',
    volumeId: /^(\d+)_(\d+)_RELEASE_(AMD64|ARM64|I386)_(?:CD|DVD|BO)$/,
    identify: (m) => ({
      family: 'bsd',
      distribution: 'freebsd',
      version: `${m[1]}.${m[2]}`,
      arch: normalizeArch(m[3]),
      name: `FreeBSD ${m[1]}.${m[2]}`,
      purpose: 'installer',
      language: null,
    }),
  },
  ...windowsRules('windows', WINDOWS_CLIENT, false, [
    ['10', '2015-07-29'],
    ['11', '2021-10-05'],
  ]),
  ...windowsRules('windows-server', WINDOWS_SERVER, true, [
    ['2016', '2016-10-12'],
    ['2019', '2018-11-13'],
    ['2022', '2021-08-18'],
    ['2025', '2024-11-01'],
  ]),
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
      linux('ubuntu', m[2] ?? null, m[4], `Ubuntu ${m[2]}`, m[3]?.toLowerCase() === 'desktop' ? 'live' : 'installer'),
  },
  {
    id: 'debian',
    pattern:
      /^debian-(\d+)\.\d+(?:\.\d+)?-(amd64|arm64|i386|ppc64el|s390x|armhf)-(netinst|DVD-\d+|BD-\d+|xfce-CD-\d+)\.iso$/i,
    identify: (m) => linux('debian', m[1] ?? null, m[2], `Debian ${m[1]}`),
  },
  {
    id: 'rocky',
    pattern: /^Rocky-(\d+)\.(\d+)-(x86_64|aarch64|ppc64le|s390x)-(?:dvd\d*|boot|minimal)\.iso$/i,
    identify: (m) => linux('rocky', `${m[1]}.${m[2]}`, m[3], `Rocky Linux ${m[1]}.${m[2]}`),
  },
  {
    id: 'almalinux',
    pattern: /^AlmaLinux-(\d+)\.(\d+)-(x86_64|aarch64|ppc64le|s390x)-(?:dvd|boot|minimal)\.iso$/i,
    identify: (m) => linux('almalinux', `${m[1]}.${m[2]}`, m[3], `AlmaLinux ${m[1]}.${m[2]}`),
  },
  {
    id: 'fedora',
    pattern: /^Fedora-([A-Za-z]+)-(?:dvd|netinst|Live|ostree)-(x86_64|aarch64|ppc64le|s390x)-(\d+)-[\d.]+\.iso$/i,
    identify: (m) => linux('fedora', m[3] ?? null, m[2], `Fedora ${m[3]}`),
  },
  {
    id: 'centos-stream',
    pattern: /^CentOS-Stream-(\d+)-\w+-(x86_64|aarch64|ppc64le|s390x)-(?:dvd1|boot)\.iso$/i,
    identify: (m) => linux('centos-stream', m[1] ?? null, m[2], `CentOS Stream ${m[1]}`),
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
    }),
  },
];
