import type { OsFamily } from '@quantix/core';
import { archFromToken, normalizeArch } from './arch.js';
import type { IdentifiedOs, MediaPurpose } from './builtin-rules.js';
import type { IsoFields } from './osinfo.js';
import { compareVersions } from './versions.js';

/**
 * Family rules: one per OS family, reading the release from the way that family labels its media
 * ("Fedora-S-dvd-x86_64-41", "RHEL-9-6-0-BaseOS-x86_64", "NETBSD_100"), so that a release the
 * installed osinfo-db does not know yet is still named — as osinfo-db would name it, with the
 * osinfo-style short id ("fedora41", "rhel9.6", "netbsd10.0").
 *
 * A rule names its release through short ids, most precise first ("rocky9.4", "rocky9"):
 * identification keeps the first one the loaded osinfo-db knows, so the answer follows osinfo-db's
 * granularity (one entry for all of Rocky 9, one per RHEL minor release). When osinfo-db knows none
 * of them the rule's `extrapolate` choice is used and the answer is marked as extrapolated.
 *
 * Rules read labels, never sizes or dates, and never list releases: what generalises to the next
 * release is the shape of the label, not a table of the releases seen so far.
 */

export interface LabelReading {
  os: IdentifiedOs;
  /**
   * osinfo-style short ids of the release, most precise first. Empty when the label names the
   * family but not a release (Slackware's "SlackDVD").
   */
  shortIds: readonly string[];
  /** Which of `shortIds` stands for the release when osinfo-db knows none of them (default: the first). */
  extrapolate?: string;
  /**
   * Snapshots made before the release carry its label (NixOS builds "nixos-minimal-24.05-x86_64"
   * from unstable for months before 24.05): media created before `before` (YYYY-MM-DD) are `shortId`.
   */
  preRelease?: { before: string; shortId: string; version: string };
}

export interface FamilyRule {
  /** Stable id, reported as `builtin:<id>`. */
  id: string;
  /** The family; readings of one label by rules of different families make the answer ambiguous. */
  family: string;
  /** Matched against the volume id (or, when it is empty, the UDF or Joliet volume id). */
  volumeId: RegExp;
  /** When set, these descriptors must match too. */
  publisherId?: RegExp;
  applicationId?: RegExp;
  /**
   * First release date of what the rule reports, for rules that stand for one of several releases
   * sharing a label (Windows): the ISO's creation date can then tell them apart.
   */
  releaseDate?: string;
  read(match: RegExpExecArray, fields: IsoFields): LabelReading | null;
}

const os = (
  family: OsFamily,
  distribution: string,
  version: string | null,
  arch: string | null | undefined,
  name: string,
  purpose: MediaPurpose | null = 'installer',
): IdentifiedOs => ({
  family,
  distribution,
  version,
  arch: normalizeArch(arch),
  name,
  purpose,
  language: null,
  shortId: null,
});

const linux = (
  distribution: string,
  version: string | null,
  arch: string | null | undefined,
  name: string,
  purpose: MediaPurpose | null = 'installer',
) => os('linux', distribution, version, arch, name, purpose);

const bsd = (distribution: string, version: string, arch: string | null | undefined, name: string) =>
  os('bsd', distribution, version, arch, name);

/** Group `name` of a match, or undefined. */
const g = (m: RegExpExecArray, name: string): string | undefined => m.groups?.[name];

const LINUX_ARCH = 'x86_64|aarch64|ppc64le|s390x|i[3-6]86|armhfp|riscv64';

// ---------------------------------------------------------------------------------------------
// Red Hat and its rebuilds

/** Fedora's edition codes that are their own osinfo-db OS; every other edition or spin is Fedora itself. */
const FEDORA_VARIANTS: Record<string, { prefix: string; name: string }> = {
  SB: { prefix: 'silverblue', name: 'Fedora Silverblue' },
  Silverblue: { prefix: 'silverblue', name: 'Fedora Silverblue' },
};

function fedora(edition: string, kind: string | undefined, release: string, arch: string | undefined): LabelReading {
  const variant = FEDORA_VARIANTS[edition];
  const live = kind === 'Live';
  if (!variant && kind === 'ostree') {
    // An ostree edition osinfo-db has no name for (a new atomic desktop): Fedora, but which OS is unknown.
    return { os: linux('fedora', null, arch, `Fedora ${edition}`), shortIds: [] };
  }
  const prefix = variant?.prefix ?? 'fedora';
  const name = variant?.name ?? 'Fedora';
  if (release === 'rawh') {
    return {
      os: linux('fedora', 'rawhide', arch, `${name} Rawhide`, live ? 'live' : 'installer'),
      shortIds: [`${prefix}-rawhide`],
    };
  }
  return {
    os: linux('fedora', release, arch, `${name} ${release}`, live ? 'live' : 'installer'),
    shortIds: [`${prefix}${release}`],
  };
}

const RHEL_LIKE = (
  id: string,
  distribution: string,
  name: string,
  label: RegExp,
  shortIds: (major: string, minor: string | undefined) => string[],
  /** osinfo-db names this family's releases by major version only: extrapolate to that granularity. */
  byMajor = false,
): FamilyRule => ({
  id,
  family: distribution,
  volumeId: label,
  read: (m) => {
    const major = g(m, 'major') as string;
    const minor = g(m, 'minor');
    const version = minor === undefined ? major : `${major}.${minor}`;
    const live = /Live|KDE|XFCE|GNOME|MATE|Cinnamon|Workstation/i.test(g(m, 'kind') ?? '');
    const ids = shortIds(major, minor);
    return {
      os: linux(distribution, version, g(m, 'arch') ?? 'x86_64', `${name} ${version}`, live ? 'live' : 'installer'),
      shortIds: ids,
      ...(byMajor ? { extrapolate: ids[ids.length - 1] } : {}),
    };
  },
});

// ---------------------------------------------------------------------------------------------
// Debian and Ubuntu

/** Debian's release codenames, published two releases ahead; media of the testing release carry them. */
const DEBIAN_CODENAMES: Record<string, string> = {
  wheezy: '7',
  jessie: '8',
  stretch: '9',
  buster: '10',
  bullseye: '11',
  bookworm: '12',
  trixie: '13',
  forky: '14',
  duke: '15',
};

// The architecture is read as any token: labels that shorten it (p64el, riscv) or lose it to the
// 32-character limit still name the release, which is what identifies the media.
const DEBIAN_ARCHES = [
  'amd64',
  'arm64',
  'i386',
  'ppc64el',
  's390x',
  'armhf',
  'armel',
  'mips64el',
  'mipsel',
  'riscv64',
  'loong64',
];

function debian(release: string, token: string | undefined, live: boolean): LabelReading {
  const purpose = live ? 'live' : 'installer';
  const arch = archFromToken(token, DEBIAN_ARCHES) ?? undefined;
  if (release === 'testing' || release === 'sid') {
    return { os: linux('debian', release, arch, `Debian ${release}`, purpose), shortIds: ['debiantesting'] };
  }
  const major = /^\d+$/.test(release) ? release : DEBIAN_CODENAMES[release];
  if (!major) return { os: linux('debian', null, arch, 'Debian', purpose), shortIds: [] };
  return { os: linux('debian', major, arch, `Debian ${major}`, purpose), shortIds: [`debian${major}`] };
}

const UBUNTU_ARCHES = ['amd64', 'arm64', 'i386', 'ppc64el', 's390x', 'riscv64', 'armhf', 'powerpc'];

// ---------------------------------------------------------------------------------------------
// SUSE

const SUSE_ARCH = /(x86_64|aarch64|ppc64le|s390x|i586|x86)/;

/** The architecture SUSE media name, from the application id when the 32-character label cut it off. */
function suseArch(label: string, applicationId: string | undefined): string | undefined {
  return SUSE_ARCH.exec(applicationId ?? '')?.[1] ?? SUSE_ARCH.exec(label)?.[1];
}

// ---------------------------------------------------------------------------------------------
// Windows

/**
 * Windows media labels: [prefix_]EDITION_ARCH{FRE|CHK}[E|V]_LANG-REGION_DV5|DV9. The prefix names
 * the release for Windows 8 (HRM), 8.1 and 2012 R2 (IRn/IRM) and the first Windows 10 (J); the
 * edition code alone does not tell Windows 10 from 11, nor Server 2016 from 2019, 2022 or 2025.
 */
const WIN_TAIL = '_(?<arch>X64|X86|A64)(?:FREE?|FREV|CHK)_(?<lang>[A-Z]{2}-[A-Z]{2})';

function languageTag(code: string | undefined): string | null {
  if (!code) return null;
  const [language, region] = code.split('-');
  return region ? `${language?.toLowerCase()}-${region.toUpperCase()}` : (language?.toLowerCase() ?? null);
}

const windows = (
  id: string,
  label: RegExp,
  server: boolean,
  version: string,
  shortId: string,
  releaseDate: string,
): FamilyRule => ({
  id,
  family: server ? 'windows-server' : 'windows',
  volumeId: label,
  publisherId: /MICROSOFT/i,
  releaseDate,
  read: (m) => ({
    os: {
      family: 'windows',
      distribution: server ? 'windows-server' : 'windows',
      version,
      arch: normalizeArch(g(m, 'arch')),
      name: server ? `Windows Server ${version}` : `Windows ${version}`,
      purpose: 'installer',
      language: languageTag(g(m, 'lang')),
      shortId: null,
    },
    shortIds: [shortId],
  }),
});

export const FAMILY_RULES: readonly FamilyRule[] = [
  {
    // Fedora-S-dvd-x86_64-41, Fedora-E-dvd-x86_64-40, Fedora-SB-ostree-x86_64-40, Fedora-WS-Live-x86_64-39-1-5
    id: 'fedora',
    family: 'fedora',
    volumeId: new RegExp(
      `^Fedora-(?<ed>[A-Za-z]+)-(?<kind>dvd|netinst|Live|ostree|osb|boot)-(?<arch>${LINUX_ARCH})-(?<rel>\\d+|rawh)(?:-[\\w.-]+)?$`,
    ),
    read: (m) => fedora(g(m, 'ed') as string, g(m, 'kind'), g(m, 'rel') as string, g(m, 'arch')),
  },
  {
    // Fedora-WS-Live-41-1-4, Fedora-WS-Live-42 (Workstation live media since 41 put the release where the arch was)
    id: 'fedora-live',
    family: 'fedora',
    volumeId: /^Fedora-(?<ed>[A-Za-z]+)-Live-(?<rel>\d+|rawh)(?:-[\w.-]+)?$/,
    read: (m) => fedora(g(m, 'ed') as string, 'Live', g(m, 'rel') as string, undefined),
  },
  {
    // Fedora-ELN-BaseOS-x86_64
    id: 'fedora-eln',
    family: 'fedora',
    volumeId: new RegExp(`^Fedora-ELN-BaseOS-(?<arch>${LINUX_ARCH})$`),
    read: (m) => ({ os: linux('fedora', 'eln', g(m, 'arch'), 'Fedora ELN'), shortIds: ['fedora-eln'] }),
  },
  RHEL_LIKE(
    // RHEL-10-0-BaseOS-x86_64, RHEL-9-6-0-BaseOS-x86_64, RHEL-8-10-0-BaseOS-x86_64
    'rhel',
    'rhel',
    'Red Hat Enterprise Linux',
    new RegExp(`^RHEL-(?<major>\\d+)-(?<minor>\\d+)(?:-\\d+)?-BaseOS-(?<arch>${LINUX_ARCH})$`),
    (major, minor) => [`rhel${major}.${minor}`],
  ),
  RHEL_LIKE(
    // RHEL-7.9 Server.x86_64, RHEL-7.9 Workstation.x86_64
    'rhel7',
    'rhel',
    'Red Hat Enterprise Linux',
    new RegExp(
      `^RHEL-(?<major>\\d+)\\.(?<minor>\\d+) (?<kind>Server|Workstation|Client|ComputeNode)\\.(?<arch>${LINUX_ARCH}|ppc64)$`,
    ),
    (major, minor) => [`rhel${major}.${minor}`],
  ),
  RHEL_LIKE(
    // CentOS-8-5-2111-x86_64-dvd, CentOS-8-BaseOS-x86_64, CentOS 7 x86_64, CentOS-7-x86_64-GNOME-2003
    'centos',
    'centos',
    'CentOS',
    new RegExp(
      `^CentOS(?:-| )(?<major>\\d+)(?:-(?<minor>\\d+)-\\d{4})?(?:-BaseOS)?(?:-| )(?<arch>${LINUX_ARCH})(?:-(?<kind>dvd|GNOME|KDE|Live\\w*)(?:-\\d+)?)?$`,
    ),
    (major, minor) =>
      major === '7' ? ['centos7.0'] : minor && Number(major) < 7 ? [`centos${major}.${minor}`] : [`centos${major}`],
  ),
  RHEL_LIKE(
    // CentOS-Stream-9-BaseOS-x86_64, CentOS-Stream-10-BaseOS-x86_64, CentOS-Stream-8-x86_64-dvd
    'centos-stream',
    'centos-stream',
    'CentOS Stream',
    new RegExp(`^CentOS-Stream-(?<major>\\d+)-(?:BaseOS-)?(?<arch>${LINUX_ARCH})(?:-dvd\\d*)?$`),
    (major) => [`centos-stream${major}`],
  ),
  RHEL_LIKE(
    // Rocky-9-4-x86_64-dvd, Rocky-10-0-x86_64-dvd, Rocky-8-5-x86_64-dvd
    'rocky',
    'rocky',
    'Rocky Linux',
    new RegExp(`^Rocky-(?<major>\\d+)-(?<minor>\\d+)-(?<arch>${LINUX_ARCH})-(?:dvd|boot|minimal)\\d*$`),
    (major, minor) => [`rocky${major}.${minor}`, `rocky${major}`],
    true,
  ),
  {
    // Rocky live media: Rocky-10-0-KDE, Rocky-9-1-Cinnamon, Rocky-KDE-9-0, Rocky-Workstation-Lite-9-0, Rocky-Workstation-8
    id: 'rocky-live',
    family: 'rocky',
    volumeId:
      /^Rocky-(?:(?<major>\d+)-(?<minor>\d+)-(?<ed>[A-Za-z]+(?:-[A-Za-z]+)?)|(?<ed2>[A-Za-z]+(?:-Lite)?)-(?<major2>\d+)(?:-(?<minor2>\d+))?)$/,
    read: (m) => {
      const major = (g(m, 'major') ?? g(m, 'major2')) as string;
      const minor = g(m, 'minor') ?? g(m, 'minor2');
      const version = minor === undefined ? major : `${major}.${minor}`;
      return {
        os: linux('rocky', version, 'x86_64', `Rocky Linux ${version} ${g(m, 'ed') ?? g(m, 'ed2')}`, 'live'),
        shortIds: minor === undefined ? [`rocky${major}`] : [`rocky${major}.${minor}`, `rocky${major}`],
        extrapolate: `rocky${major}`,
      };
    },
  },
  {
    // AlmaLinux-9-4-x86_64-dvd, AlmaLinux-10-0-x86_64-dvd, AlmaLinux-9.1-x86_64-Live-GNOME, AlmaLinux-9_5-x86_64-Live-KDE
    id: 'almalinux',
    family: 'almalinux',
    volumeId: new RegExp(
      `^AlmaLinux-(?<major>\\d+)[-._](?<minor>\\d+)-(?<arch>${LINUX_ARCH}|x86_64_v2)-(?<kind>dvd|boot|minimal|Live-[\\w-]+)\\d*$`,
    ),
    read: (m) => {
      const major = g(m, 'major') as string;
      const version = `${major}.${g(m, 'minor')}`;
      const live = g(m, 'kind')?.startsWith('Live');
      return {
        os: linux(
          'almalinux',
          version,
          g(m, 'arch')?.replace('_v2', ''),
          `AlmaLinux ${version}`,
          live ? 'live' : 'installer',
        ),
        shortIds: [`almalinux${version}`, `almalinux${major}`],
        extrapolate: `almalinux${major}`,
      };
    },
  },
  {
    // AlmaLinux-Kitten-10-x86_64 (the AlmaLinux counterpart of CentOS Stream)
    id: 'almalinux-kitten',
    family: 'almalinux',
    volumeId: new RegExp(`^AlmaLinux-Kitten-(?<major>\\d+)-(?<arch>${LINUX_ARCH}|x86_64_v2)$`),
    read: (m) => ({
      os: linux(
        'almalinux-kitten',
        g(m, 'major') as string,
        g(m, 'arch')?.replace('_v2', ''),
        `AlmaLinux Kitten ${g(m, 'major')}`,
      ),
      shortIds: [`almalinux-kitten${g(m, 'major')}`],
    }),
  },
  RHEL_LIKE(
    // OL-9-4-0-BaseOS-x86_64 (Oracle Linux)
    'oraclelinux',
    'ol',
    'Oracle Linux',
    new RegExp(`^OL-(?<major>\\d+)-(?<minor>\\d+)(?:-\\d+)?-BaseOS-(?<arch>${LINUX_ARCH})$`),
    (major, minor) => [`ol${major}.${minor}`],
  ),
  RHEL_LIKE(
    // EL-9-0-x86_64-20220613-dvd (EuroLinux)
    'eurolinux',
    'eurolinux',
    'EuroLinux',
    new RegExp(`^EL-(?<major>\\d+)-(?<minor>\\d+)-(?<arch>${LINUX_ARCH})-\\d{8}-dvd$`),
    (major) => [`eurolinux${major}`],
  ),
  RHEL_LIKE(
    // Circle-8-4-x86_64-dvd
    'circle',
    'circle',
    'Circle Linux',
    new RegExp(`^Circle-(?<major>\\d+)-(?<minor>\\d+)-(?<arch>${LINUX_ARCH})-(?:dvd|boot|minimal)\\d*$`),
    (major, minor) => [`circle${major}.${minor}`],
  ),
  RHEL_LIKE(
    // MIRACLE-LINUX-9-0-x86_64
    'miraclelinux',
    'miraclelinux',
    'MIRACLE LINUX',
    new RegExp(`^MIRACLE-LINUX-(?<major>\\d+)-(?<minor>\\d+)-(?<arch>${LINUX_ARCH})$`),
    (major, minor) => [`miraclelinux${major}.${minor}`],
  ),
  {
    // Ubuntu 24.04 LTS amd64, Ubuntu-Server 24.04.1 LTS amd64, Edubuntu 25.04 amd64, Kubuntu 22.04.3 LTS amd64
    id: 'ubuntu',
    family: 'ubuntu',
    volumeId:
      /^(?<flavour>Ubuntu|Ubuntu-Server|Kubuntu|Xubuntu|Lubuntu|Edubuntu|Ubuntu-MATE|Ubuntu MATE|Ubuntu-Budgie|Ubuntu Budgie|Ubuntu Studio|Ubuntu-Studio|Ubuntu Unity|Ubuntu Cinnamon|Ubuntu Kylin) (?<rel>\d\d\.\d\d)(?:\.\d+)*(?<lts> LTS)? (?<arch>\w+)(?: .*)?$/,
    read: (m) => {
      const flavour = g(m, 'flavour') as string;
      const server = flavour === 'Ubuntu-Server';
      const rel = g(m, 'rel') as string;
      return {
        os: linux(
          'ubuntu',
          rel,
          archFromToken(g(m, 'arch'), UBUNTU_ARCHES) ?? undefined,
          `${server ? 'Ubuntu Server' : flavour.replace('-', ' ')} ${rel}${g(m, 'lts') ?? ''}`,
          server ? 'installer' : 'live',
        ),
        shortIds: [`ubuntu${rel}`],
      };
    },
  },
  {
    // Pop_OS 20.04 amd64, Pop_OS 20.10 amd64 Nvidia
    id: 'popos',
    family: 'popos',
    volumeId: /^Pop_OS (?<rel>\d\d\.\d\d) (?<arch>amd64|arm64)(?: \w+)?$/,
    read: (m) => ({
      os: linux('popos', g(m, 'rel') as string, g(m, 'arch'), `Pop!_OS ${g(m, 'rel')}`, 'live'),
      shortIds: [`popos${g(m, 'rel')}`],
    }),
  },
  {
    // Debian 12.7.0 amd64 n (netinst), Debian 13.0.0 amd64 1 (DVD 1), Debian trixie-DI-rc1 amd64 n, Debian testing amd64 n
    id: 'debian',
    family: 'debian',
    volumeId: /^Debian (?<rel>\d+|[a-z]+)(?:\.\d+)*(?:-DI-\w+)? (?<arch>\w+) (?:n|\d+|DVD|BD|DLBD|M)$/,
    read: (m) => debian(g(m, 'rel') as string, g(m, 'arch'), false),
  },
  {
    // d-live 12.10.0 gn amd64, d-live testing gn amd64 (Debian live images)
    id: 'debian-live',
    family: 'debian',
    volumeId: /^d-live (?<rel>\d+|[a-z]+)(?:\.\d+)* \w+ (?<arch>\w+)$/,
    read: (m) => debian(g(m, 'rel') as string, g(m, 'arch'), true),
  },
  {
    // trisquel 11.0.1 amd64, triskel 11.0.1 amd64, trisquel-mini 9.0.2 amd64
    id: 'trisquel',
    family: 'trisquel',
    volumeId:
      /^(?<ed>trisquel|triskel|trisquel-mini|trisquel-sugar|trisquel-netinst) (?<major>\d+)(?:\.\d+)* (?<arch>\w+)$/,
    read: (m) => ({
      os: linux('trisquel', g(m, 'major') as string, g(m, 'arch'), `Trisquel ${g(m, 'major')}`, 'live'),
      shortIds: [`trisquel${g(m, 'major')}`],
    }),
  },
  {
    // elementary OS 5.0 Juno
    id: 'elementary',
    family: 'elementary',
    volumeId: /^elementary OS (?<major>\d+)\.(?<minor>\d+)(?:\.\d+)? \w+$/,
    read: (m) => {
      const version = `${g(m, 'major')}.${g(m, 'minor')}`;
      return {
        os: linux('elementary', version, 'x86_64', `elementary OS ${version}`, 'live'),
        shortIds: [`elementary${version}`],
      };
    },
  },
  {
    // PureOS 10.3 gnome (live), PureOS 9.0 GNOME Live
    id: 'pureos',
    family: 'pureos',
    volumeId: /^PureOS (?<major>\d+)(?:\.\d+)* \w+(?: \(live\)| Live)?$/,
    read: (m) => ({
      os: linux('pureos', g(m, 'major') as string, 'x86_64', `PureOS ${g(m, 'major')}`, 'live'),
      shortIds: [`pureos${g(m, 'major')}`],
    }),
  },
  {
    // openSUSE-Leap-15.6-DVD-x86_64710, openSUSE-Leap-15.5-NET-x86_64491 (the build number runs into the arch)
    id: 'opensuse-leap',
    family: 'opensuse',
    volumeId: /^openSUSE-Leap-(?<rel>\d+\.\d+)-(?:DVD|NET)-/,
    read: (m, f) => ({
      os: linux('opensuse', g(m, 'rel') as string, suseArch(m[0], f.applicationId), `openSUSE Leap ${g(m, 'rel')}`),
      shortIds: [`opensuse${g(m, 'rel')}`],
    }),
  },
  {
    // openSUSE_Leap_15.6_GNOME_Live, openSUSE_Leap_15.5_Rescue_CD
    id: 'opensuse-leap-live',
    family: 'opensuse',
    volumeId: /^openSUSE_Leap_(?<rel>\d+\.\d+)_(?<ed>\w+?)_(?:Live|CD)$/,
    read: (m) => ({
      os: linux('opensuse', g(m, 'rel') as string, null, `openSUSE Leap ${g(m, 'rel')} ${g(m, 'ed')}`, 'live'),
      shortIds: [`opensuse${g(m, 'rel')}`],
    }),
  },
  {
    // Install-Leap-16.0-x86_64 (Leap 16 installers)
    id: 'opensuse-leap16',
    family: 'opensuse',
    volumeId: /^Install-Leap-(?<rel>\d+\.\d+)-(?<arch>x86_64|aarch64|ppc64le|s390x)$/,
    read: (m) => ({
      os: linux('opensuse', g(m, 'rel') as string, g(m, 'arch'), `openSUSE Leap ${g(m, 'rel')}`),
      shortIds: [`opensuse${g(m, 'rel')}`],
    }),
  },
  {
    // openSUSE-Tumbleweed-DVD-x86_64, openSUSE-Tumbleweed-NET-x86_6423 (rolling: no release to
    // read, so any Tumbleweed medium, whatever its kind, is the one OS)
    id: 'opensuse-tumbleweed',
    family: 'opensuse',
    volumeId: /^openSUSE-Tumbleweed-/,
    read: (m, f) => ({
      os: linux('opensuse', 'tumbleweed', suseArch(m[0], f.applicationId), 'openSUSE Tumbleweed'),
      shortIds: ['opensusetumbleweed'],
    }),
  },
  {
    // SLE-15-SP7-Full-x86_6491.11.001, SLE-15-SP1-Installer-DVD-x86.001, SLE-12-SP5-Server-DVD-x86_640372, SLES-11-SP4-DVD-x86_6412211
    id: 'sle',
    family: 'sle',
    volumeId:
      /^(?<product>SLES?|SLED)-(?<major>\d+)(?:-SP(?<sp>\d+))?-(?<media>Full|Online|Installer-DVD|Server-DVD|Desktop-DVD|DVD)-/,
    read: (m, f) => {
      const major = g(m, 'major') as string;
      const sp = g(m, 'sp');
      const media = g(m, 'media') as string;
      // SLE 15 is one product ("sle15sp6"); before it, Server and Desktop were separate OSes.
      const product = Number(major) >= 15 ? 'sle' : media.startsWith('Desktop') ? 'sled' : 'sles';
      const suffix = sp ? `sp${sp}` : '';
      return {
        os: linux(
          product === 'sled' ? 'sled' : 'sles',
          sp ? `${major}.${sp}` : major,
          suseArch(m[0], f.applicationId),
          `SUSE Linux Enterprise ${major}${sp ? ` SP${sp}` : ''}`,
        ),
        shortIds: [`${product}${major}${suffix}`],
      };
    },
  },
  {
    // Install-SUSE-SLE-16-x86_64 (SLES 16); the application id names the minor release: SLES-16.0-Full-x86_64-Build135.5
    id: 'sles16',
    family: 'sle',
    volumeId: /^Install-SUSE-SLE-(?<major>\d+)(?:\.(?<minor>\d+))?-(?<arch>x86_64|aarch64|ppc64le|s390x)$/,
    read: (m, f) => {
      const app = /^SLES-(?<major>\d+)\.(?<minor>\d+)-/.exec(f.applicationId ?? '');
      const minor = g(m, 'minor') ?? app?.groups?.minor;
      if (minor === undefined)
        return { os: linux('sles', null, g(m, 'arch'), 'SUSE Linux Enterprise Server'), shortIds: [] };
      const version = `${g(m, 'major')}.${minor}`;
      return {
        os: linux('sles', version, g(m, 'arch'), `SUSE Linux Enterprise Server ${version}`),
        shortIds: [`sles${version}`],
      };
    },
  },
  {
    // alpine-std 3.21.0 x86_64, alpine-virt 3.20.0 x86_64, alpine-ext 3.21.0 x86_64
    id: 'alpine',
    family: 'alpinelinux',
    volumeId:
      /^alpine-(?<ed>\w+) (?<major>\d+)\.(?<minor>\d+)(?:\.\d+)?(?:_\w+)? (?<arch>x86_64|x86|aarch64|armv7|armhf|ppc64le|s390x|riscv64|loongarch64)$/,
    read: (m) => {
      const version = `${g(m, 'major')}.${g(m, 'minor')}`;
      return {
        os: linux('alpinelinux', version, g(m, 'arch'), `Alpine Linux ${version}`),
        shortIds: [`alpinelinux${version}`],
      };
    },
  },
  {
    // Mageia-9-x86_64, Mageia-9-Live-GNOME-x86_64, Mageia-9-x86_64-netinstall, Mageia-7.1-x86_64
    id: 'mageia',
    family: 'mageia',
    volumeId: /^Mageia-(?<major>\d+)(?:\.\d+)?-(?:Live-(?<ed>[A-Za-z]+)-)?(?<arch>\w+?)(?:-netinstall)?$/,
    read: (m) => ({
      os: linux(
        'mageia',
        g(m, 'major') as string,
        g(m, 'arch'),
        `Mageia ${g(m, 'major')}`,
        g(m, 'ed') ? 'live' : 'installer',
      ),
      shortIds: [`mageia${g(m, 'major')}`],
    }),
  },
  {
    // Slackware DVDs all say SlackDVD; older ones name the release in the application id (Slackware64 14.2 DVD)
    id: 'slackware-dvd',
    family: 'slackware',
    volumeId: /^SlackDVD$/,
    applicationId: /^(?:Slackware(?:64)? (?<rel>\d+\.\d+) DVD|SLACKWARE INSTALL)$/i,
    read: (_m, f) => {
      const rel = /^Slackware(?<x64>64)? (?<rel>\d+\.\d+) DVD$/i.exec(f.applicationId ?? '');
      const version = rel?.groups?.rel;
      const arch = rel ? (rel.groups?.x64 ? 'x86_64' : 'i686') : null;
      if (!version) return { os: linux('slackware', null, arch, 'Slackware'), shortIds: [] };
      return { os: linux('slackware', version, arch, `Slackware ${version}`), shortIds: [`slackware${version}`] };
    },
  },
  {
    // S14.2d1 (Slackware CD sets)
    id: 'slackware-cd',
    family: 'slackware',
    volumeId: /^S(?<rel>\d+\.\d+)d\d$/,
    read: (m) => ({
      os: linux('slackware', g(m, 'rel') as string, 'i686', `Slackware ${g(m, 'rel')}`),
      shortIds: [`slackware${g(m, 'rel')}`],
    }),
  },
  {
    // ALT starter kits and regular builds: "ALT p8 kde5/x86_64", "ALT regular-xfce/x86_64" (Sisyphus snapshots)
    id: 'alt-branch',
    family: 'alt',
    volumeId: /^ALT (?<branch>p\d+|regular|sisyphus)[ -](?<ed>[\w-]+)\/(?<arch>x86_64|i586|aarch64|ppc64le)$/,
    read: (m) => {
      const branch = g(m, 'branch') as string;
      const sisyphus = branch === 'regular' || branch === 'sisyphus';
      return {
        os: linux(
          'alt',
          sisyphus ? 'sisyphus' : branch,
          g(m, 'arch'),
          sisyphus ? 'ALT Sisyphus' : `ALT ${branch}`,
          'live',
        ),
        shortIds: [sisyphus ? 'alt.sisyphus' : `alt.${branch}`],
      };
    },
  },
  {
    // ALT distributions name the release in the application id: "ALT Workstation" + 8.2/X86_64, "Simply Linux live/x86_64" + 8.2.0/X86_64
    id: 'alt-release',
    family: 'alt',
    volumeId: /^(?:ALT [\w ]+|Workstation K|Simply Linux[\w ]*|ALT)(?:\/\w+)?$/,
    publisherId: /BASEALT|ALT LINUX/i,
    applicationId: /^(?<major>\d+)\.(?<minor>\d+)(?:\.\d+)?\/(?<arch>X86_64|I586|AARCH64|PPC64LE)$/i,
    read: (_m, f) => {
      const app = /^(?<major>\d+)\.(?<minor>\d+)(?:\.\d+)?\/(?<arch>\w+)$/.exec(f.applicationId ?? '');
      const version = `${app?.groups?.major}.${app?.groups?.minor}`;
      return { os: linux('alt', version, app?.groups?.arch, `ALT ${version}`), shortIds: [`alt${version}`] };
    },
  },
  {
    // nixos-gnome-24.05-x86_64, nixos-minimal-25.11-aarch64, nixos-graphical-25.05-x86_64
    id: 'nixos',
    family: 'nixos',
    volumeId: /^nixos-(?<ed>[a-z0-9]+)-(?<rel>\d\d\.\d\d)-(?<arch>x86_64|aarch64|i686)$/,
    read: (m) => {
      const rel = g(m, 'rel') as string;
      const [year, month] = rel.split('.');
      return {
        os: linux('nixos', rel, g(m, 'arch'), `NixOS ${rel}`, 'live'),
        shortIds: [`nixos-${rel}`],
        // NixOS YY.MM is released at the end of month MM.
        preRelease: { before: `20${year}-${month}-01`, shortId: 'nixos-unstable', version: 'unstable' },
      };
    },
  },
  {
    // Endless-OS-6-0-6-en, Endless-OS-5-0-0-base
    id: 'endless',
    family: 'eos',
    volumeId: /^Endless-OS-(?<major>\d+)-(?<minor>\d+)-\d+-(?<ed>\w+)$/,
    read: (m) => {
      const version = `${g(m, 'major')}.${g(m, 'minor')}`;
      return { os: linux('eos', version, 'x86_64', `Endless OS ${version}`, 'live'), shortIds: [`eos${version}`] };
    },
  },
  {
    // GUIX_X86_64-LINUX_1.3.0
    id: 'guix',
    family: 'guix',
    volumeId: /^GUIX_(?<arch>X86_64|I686|AARCH64)-LINUX_(?<major>\d+)\.(?<minor>\d+)(?:\.\d+)?$/,
    read: (m) => {
      const version = `${g(m, 'major')}.${g(m, 'minor')}`;
      return { os: linux('guix', version, g(m, 'arch'), `Guix System ${version}`), shortIds: [`guix-${version}`] };
    },
  },
  {
    // ARCH_202402 (Arch Linux monthly media: a rolling release, the month is the snapshot)
    id: 'archlinux',
    family: 'archlinux',
    volumeId: /^ARCH_(?<year>\d{4})(?<month>\d{2})$/,
    read: (m) => ({
      os: linux('archlinux', `${g(m, 'year')}.${g(m, 'month')}`, 'x86_64', 'Arch Linux', 'live'),
      shortIds: ['archlinux'],
    }),
  },
  {
    // Gentoo-amd64-20250209, Gentoo amd64 20190212T214502Z, gentoo-amd64-livegui (rolling)
    id: 'gentoo',
    family: 'gentoo',
    volumeId: /^Gentoo[- ](?<arch>amd64|x86|arm64)[- ](?:\d{8}|livegui)/i,
    read: (m) => ({ os: linux('gentoo', null, g(m, 'arch'), 'Gentoo'), shortIds: ['gentoo'] }),
  },
  {
    // VOID_LIVE (rolling)
    id: 'voidlinux',
    family: 'voidlinux',
    volumeId: /^VOID_LIVE$/,
    read: () => ({ os: linux('voidlinux', null, null, 'Void Linux', 'live'), shortIds: ['voidlinux'] }),
  },
  {
    // CLR_ISO (Clear Linux, rolling)
    id: 'clearlinux',
    family: 'clearlinux',
    volumeId: /^CLR_ISO$/,
    read: () => ({ os: linux('clearlinux', null, 'x86_64', 'Clear Linux'), shortIds: ['clearlinux'] }),
  },
  {
    // MANJARO_KDEM_190 (Manjaro: osinfo-db has one entry for all releases)
    id: 'manjaro',
    family: 'manjaro',
    volumeId: /^MANJARO_[A-Z]+_(?<rel>\d+)$/,
    read: () => ({ os: linux('manjaro', null, 'x86_64', 'Manjaro', 'live'), shortIds: ['manjaro'] }),
  },
  {
    // haiku-r1~beta4-x86_64, haiku-r1~beta3-x86, haiku-nightly-x86_64
    id: 'haiku',
    family: 'haiku',
    volumeId:
      /^haiku-(?:(?<rel>r\d+)~?(?<stage>alpha|beta)(?<n>\d+(?:\.\d+)?)|(?<nightly>nightly))-(?<arch>x86_64|x86)$/,
    read: (m) => {
      if (g(m, 'nightly'))
        return { os: os('other', 'haiku', 'nightly', g(m, 'arch'), 'Haiku nightly'), shortIds: ['haikunightly'] };
      const release = `${g(m, 'rel')}${g(m, 'stage')}${g(m, 'n')}`;
      return { os: os('other', 'haiku', release, g(m, 'arch'), `Haiku ${release}`), shortIds: [`haiku${release}`] };
    },
  },
  {
    // 14_2_RELEASE_AMD64_CD, 14_1_RELEASE_AMD64_DVD, 14_1_RELEASE_AMD64_BO (FreeBSD)
    id: 'freebsd',
    family: 'freebsd',
    volumeId:
      /^(?<major>\d+)_(?<minor>\d+)_RELEASE_(?<arch>AMD64|I386|ARM64|AARCH64|POWERPC64|RISCV64)_(?:CD|DVD|BO|MS)$/,
    read: (m) => {
      const version = `${g(m, 'major')}.${g(m, 'minor')}`;
      return { os: bsd('freebsd', version, g(m, 'arch'), `FreeBSD ${version}`), shortIds: [`freebsd${version}`] };
    },
  },
  {
    // NETBSD_100, NETBSD_94, NETBSD_711: the release with its dots taken out
    id: 'netbsd',
    family: 'netbsd',
    volumeId: /^NETBSD_(?<digits>\d{2,4})$/,
    read: (m) => {
      const digits = g(m, 'digits') as string;
      // NetBSD 10 and later have a two-digit major release; 1.x (before these labels) never used them.
      const majorLength = digits.startsWith('1') && digits.length >= 3 ? 2 : 1;
      const parts = [digits.slice(0, majorLength), ...digits.slice(majorLength).split('')];
      const version = parts.join('.');
      return { os: bsd('netbsd', version, null, `NetBSD ${version}`), shortIds: [`netbsd${version}`] };
    },
  },
  {
    // "OpenBSD/amd64   7.7 Install CD", "OpenBSD/i386    7.4 boot-only CD"
    id: 'openbsd',
    family: 'openbsd',
    volumeId: /^OpenBSD\/(?<arch>\w+)\s+(?<rel>\d+\.\d+) (?:Install|boot-only) CD$/,
    read: (m) => ({
      os: bsd('openbsd', g(m, 'rel') as string, g(m, 'arch'), `OpenBSD ${g(m, 'rel')}`),
      shortIds: [`openbsd${g(m, 'rel')}`],
    }),
  },
  {
    // DragonFly v5.4.3, DragonFly_v5.6.1: osinfo-db names point releases up to 5.4 and minor releases since
    id: 'dragonflybsd',
    family: 'dragonflybsd',
    volumeId: /^DragonFly[ _]v(?<major>\d+)\.(?<minor>\d+)\.(?<patch>\d+)/,
    read: (m) => {
      const minor = `${g(m, 'major')}.${g(m, 'minor')}`;
      const patch = `${minor}.${g(m, 'patch')}`;
      // osinfo-db names each point release up to 5.4 and only the minor release from 5.6 on.
      const byMinor = compareVersions(minor, '5.6') >= 0;
      return {
        os: bsd('dragonflybsd', patch, 'x86_64', `DragonFly BSD ${patch}`),
        shortIds: [`dragonflybsd${patch}`, `dragonflybsd${minor}`],
        extrapolate: byMinor ? `dragonflybsd${minor}` : `dragonflybsd${patch}`,
      };
    },
  },
  {
    // FD13-LiveCD, FD13-LEGACY (FreeDOS 1.3)
    id: 'freedos',
    family: 'freedos',
    volumeId: /^FD(?<major>\d)(?<minor>\d)-(?:LiveCD|LEGACY|BONUS|FloppyEdition)$/i,
    read: (m) => {
      const version = `${g(m, 'major')}.${g(m, 'minor')}`;
      return { os: os('other', 'freedos', version, 'i686', `FreeDOS ${version}`), shortIds: [`freedos${version}`] };
    },
  },
  // Windows: one rule per release, each with the labels that release's media can carry.
  windows('windows-8', new RegExp(`^HRM_(?<ed>C[A-Z]+)${WIN_TAIL}`), false, '8', 'win8', '2012-10-26'),
  windows('windows-8.1', new RegExp(`^IR[M\\d]_(?<ed>C[A-Z]+)${WIN_TAIL}`), false, '8.1', 'win8.1', '2013-10-17'),
  // J_ marks the first Windows 10 releases (2015); Windows 11 has no 32-bit media.
  windows(
    'windows-10',
    new RegExp(`^(?:J_)?(?<ed>C[A-Z]{2,6}|CCBEVAL)${WIN_TAIL}`),
    false,
    '10',
    'win10',
    '2015-07-29',
  ),
  windows(
    'windows-11',
    /^(?<ed>C[A-Z]{2,6}|CCBEVAL)_(?<arch>X64|A64)(?:FREE?|FREV|CHK)_(?<lang>[A-Z]{2}-[A-Z]{2})/,
    false,
    '11',
    'win11',
    '2021-10-05',
  ),
  windows('windows-server-2012', new RegExp(`^HRM_(?<ed>S[A-Z]+)${WIN_TAIL}`), true, '2012', 'win2k12', '2012-09-04'),
  windows(
    'windows-server-2012r2',
    new RegExp(`^IR[M\\d]_(?<ed>S[A-Z]+)${WIN_TAIL}`),
    true,
    '2012 R2',
    'win2k12r2',
    '2013-10-18',
  ),
  ...(
    [
      ['2016', 'win2k16', '2016-10-12'],
      ['2019', 'win2k19', '2018-11-13'],
      ['2022', 'win2k22', '2021-08-18'],
      ['2025', 'win2k25', '2024-11-01'],
    ] as const
  ).map(([version, shortId, date]) =>
    windows(
      `windows-server-${version}`,
      new RegExp(`^(?<ed>SSS|SESS|SHV|SSSO|SSEE)${WIN_TAIL}`),
      true,
      version,
      shortId,
      date,
    ),
  ),
];
