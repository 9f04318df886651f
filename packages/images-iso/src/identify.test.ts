import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildIso, REAL_MEDIA, requireIsoTools } from './__fixtures__/isos.js';
import { ISO_CATALOG_ENTRIES } from './catalog.js';
import { type IsoIdentity, identifyIso, identifyOs } from './identify.js';
import { createIsoInspector } from './inspect.js';
import { type IsoInfo, readIsoInfo } from './iso9660.js';
import { getOsinfoDatabase, loadOsinfoDatabase, type OsinfoDatabase } from './osinfo.js';

let dir: string;
let osinfo: OsinfoDatabase | null;
const media: Partial<Record<keyof typeof REAL_MEDIA, IsoInfo>> = {};

beforeAll(async () => {
  requireIsoTools();
  dir = await mkdtemp(join(tmpdir(), 'quantix-identify-'));
  osinfo = await getOsinfoDatabase();
  // Real ISOs with the labels, publishers, dates, boot records and UDF bridges real media carry.
  for (const [name, spec] of Object.entries(REAL_MEDIA)) {
    const path = await buildIso(join(dir, `${name}.iso`), spec);
    media[name as keyof typeof REAL_MEDIA] = await readIsoInfo({ path });
  }
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const identify = (name: keyof typeof REAL_MEDIA, db: OsinfoDatabase | null = osinfo) =>
  identifyOs({ iso: media[name] as IsoInfo, fileName: `${name}.iso`, osinfo: db });

describe('identifying real media', () => {
  it.each([
    // media, source, rule, family, distribution, version, arch, shortId, confidence
    [
      'ubuntuServer2404',
      'builtin',
      'builtin:ubuntu',
      'linux',
      'ubuntu',
      '24.04',
      'x86_64',
      'ubuntu24.04',
      'extrapolated',
    ],
    ['ubuntuDesktop2204', 'osinfo', 'osinfo:ubuntu22.04', 'linux', 'ubuntu', '22.04', 'x86_64', 'ubuntu22.04', 'exact'],
    ['debian12', 'builtin', 'builtin:debian', 'linux', 'debian', '12', 'x86_64', 'debian12', 'extrapolated'],
    ['debian11', 'osinfo', 'osinfo:debian11', 'linux', 'debian', '11', 'x86_64', 'debian11', 'exact'],
    ['rocky94', 'osinfo', 'osinfo:rocky9', 'linux', 'rocky', '9.4', 'x86_64', 'rocky9', 'exact'],
    ['alma94', 'osinfo', 'osinfo:almalinux9', 'linux', 'almalinux', '9.4', 'x86_64', 'almalinux9', 'exact'],
    ['fedora41', 'builtin', 'builtin:fedora', 'linux', 'fedora', '41', 'x86_64', 'fedora41', 'extrapolated'],
    ['windows11', 'osinfo', 'osinfo:win11', 'windows', 'windows', '11', 'x86_64', 'win11', 'exact'],
    [
      'windowsServer2022',
      'osinfo',
      'osinfo:win2k22',
      'windows',
      'windows-server',
      '2022',
      'x86_64',
      'win2k22',
      'exact',
    ],
    [
      'windowsServer2025',
      'builtin',
      'builtin:windows-server-2025',
      'windows',
      'windows-server',
      '2025',
      'x86_64',
      'win2k25',
      'extrapolated',
    ],
    ['rhel10', 'builtin', 'builtin:rhel', 'linux', 'rhel', '10.0', 'x86_64', 'rhel10.0', 'extrapolated'],
    ['nixos2405', 'builtin', 'builtin:nixos', 'linux', 'nixos', '24.05', 'x86_64', 'nixos-24.05', 'extrapolated'],
    ['silverblue40', 'builtin', 'builtin:fedora', 'linux', 'fedora', '40', 'x86_64', 'silverblue40', 'extrapolated'],
    ['windows10EnterpriseN', 'osinfo', 'osinfo:win10', 'windows', 'windows', '10', 'x86_64', 'win10', 'exact'],
    ['cidata', 'builtin', 'builtin:cloud-init-seed', 'other', 'cloud-init-nocloud', null, null, null, 'label'],
  ] as const)(
    '%s → %s %s: %s %s %s %s (%s, %s)',
    (name, source, rule, family, distribution, version, arch, shortId, confidence) => {
      const result = identify(name);
      expect(result).toMatchObject({ source, rule, shortId, confidence, osinfoVersion: '20221203' });
      expect(result.os).toEqual({
        family,
        distribution,
        version,
        arch,
        defaultUser: null,
        cloudInit: false,
        shortId,
        confidence,
        osinfoVersion: '20221203',
      });
    },
  );

  it('says why when osinfo-db knows only the major release: the label gives the minor one', () => {
    expect(identify('rocky94')).toMatchObject({
      osinfoId: 'http://rockylinux.org/rocky/9',
      versionFrom: 'builtin:rocky',
    });
  });

  it('tells Windows 10 from 11 and Server 2016 to 2025 (one label each) by when the media were made', () => {
    expect(identify('windows11')).toMatchObject({
      alternatives: ['osinfo:win10'],
      language: null,
      name: 'Microsoft Windows 11',
    });
    expect(identify('windowsServer2022').alternatives).toEqual(
      expect.arrayContaining(['osinfo:win2k16', 'osinfo:win2k19', 'builtin:windows-server-2025']),
    );
    const older = { ...(media.windows11 as IsoInfo), createdAt: new Date('2020-05-01T00:00:00Z') };
    expect(identifyOs({ iso: older, osinfo }).os.version).toBe('10');
  });

  it('identifies Ubuntu 24.04 and Debian 12 that the installed osinfo-db (2022) does not know', () => {
    expect(osinfo?.match({ volumeId: 'Debian 12.7.0 amd64 n', systemId: 'LINUX' })).toEqual([]);
    expect(identify('debian12').source).toBe('builtin');
    // osinfo-db's "fedora-unknown" placeholder matches Fedora 41; the table's precise answer wins.
    expect(osinfo?.match({ volumeId: 'Fedora-S-dvd-x86_64-41', systemId: 'LINUX' })[0]?.rule.shortId).toBe(
      'fedora-unknown',
    );
  });

  it('identifies the same media with the built-in table alone, when osinfo-db is not installed', () => {
    for (const name of [
      'ubuntuServer2404',
      'ubuntuDesktop2204',
      'debian12',
      'rocky94',
      'alma94',
      'fedora41',
      'rhel10',
      'nixos2405',
      'silverblue40',
      'windows10EnterpriseN',
    ] as const) {
      const withDb = identify(name);
      const without = identify(name, null);
      expect(without.source, name).toBe('builtin');
      // Without a database nothing is known, so nothing is "newer than known": the label is taken as read.
      expect(without, name).toMatchObject({ confidence: 'label', osinfoVersion: null, shortId: withDb.shortId });
      const { family, distribution, version, arch } = withDb.os;
      expect(without.os, name).toMatchObject({ family, distribution, version, arch });
    }
    expect(identify('windows11', null).os).toMatchObject({ distribution: 'windows', version: '11' });
    expect(identify('windowsServer2022', null).os).toMatchObject({ distribution: 'windows-server', version: '2022' });
    expect(identify('windows11', null).language).toBe('en-US');
  });

  it('falls back to the file name, and to nothing, when the descriptors name nothing known', async () => {
    const path = await buildIso(join(dir, 'cdrom.iso'), { volumeId: 'CDROM' });
    const iso = await readIsoInfo({ path });
    expect(identifyOs({ iso, fileName: 'isos/debian-12.7.0-amd64-netinst.iso', osinfo })).toMatchObject({
      source: 'filename',
      rule: 'filename:debian',
      os: { family: 'linux', distribution: 'debian', version: '12', arch: 'x86_64' },
    });
    expect(
      identifyOs({
        iso,
        fileName: '26100.1742.240906-0331.ge_release_svc_refresh_SERVER_EVAL_x64FRE_en-us.iso',
        osinfo,
      }).os,
    ).toMatchObject({ family: 'windows', distribution: 'windows-server', version: '2025' });
    expect(identifyOs({ iso, fileName: 'backup.iso', osinfo })).toMatchObject({
      source: 'none',
      rule: null,
      os: { family: 'unknown', distribution: null, version: null, arch: null },
    });
    // Unreadable media: the name is all there is.
    expect(identifyOs({ iso: null, fileName: 'Rocky-9.4-x86_64-dvd.iso', osinfo }).os.version).toBe('9.4');
  });

  it('identifyIso loads osinfo-db itself, or uses the table alone when told to', async () => {
    expect((await identifyIso({ iso: media.rocky94 })).source).toBe('osinfo');
    expect((await identifyIso({ iso: media.rocky94, osinfo: false })).source).toBe('builtin');
  });
});

/** Descriptors as the ISO's primary volume descriptor carries them (no creation date unless given). */
const descriptors = (volumeId: string, more: Partial<IsoIdentity> = {}): IsoIdentity => ({
  volumeId,
  systemId: '',
  publisherId: '',
  applicationId: '',
  volumeSizeBytes: 1,
  createdAt: null,
  ...more,
});

describe('precision decides, not order of loading', () => {
  it('an exact osinfo-db match with the volume size it pins beats the release the label reads', () => {
    // ALT Workstation K 8.1 media say 8.0 in their application id; osinfo-db pins them by size.
    const iso = { systemId: 'LINUX', publisherId: 'BASEALT LTD', applicationId: '8.0/X86_64' };
    const pinned = identifyOs({ iso: descriptors('Workstation K', { ...iso, volumeSizeBytes: 3760128000 }), osinfo });
    expect(pinned).toMatchObject({ shortId: 'alt8.1', confidence: 'exact', rule: 'osinfo:alt8.1' });
    const other = identifyOs({ iso: descriptors('Workstation K', { ...iso, volumeSizeBytes: 3760130048 }), osinfo });
    expect(other).toMatchObject({ shortId: 'alt8.0', confidence: 'label', rule: 'builtin:alt-release' });
  });

  it("the release a label reads beats osinfo-db's -unknown and -unstable catch-alls", () => {
    const fedora = descriptors('Fedora-S-dvd-x86_64-41');
    expect(osinfo?.match(fedora).map((m) => m.rule.shortId)).toEqual(['fedora-unknown']);
    expect(identifyOs({ iso: fedora, osinfo })).toMatchObject({ shortId: 'fedora41', confidence: 'extrapolated' });
    // The 2022 database still files 22.11 media under "unstable"; the label names the release.
    const nixos = descriptors('nixos-plasma5-22.11-x86_64', { publisherId: 'NIXOS', applicationId: 'NIXOS' });
    expect(osinfo?.match(nixos).map((m) => m.rule.shortId)).toEqual(['nixos-unstable']);
    expect(identifyOs({ iso: nixos, osinfo })).toMatchObject({
      shortId: 'nixos-22.11',
      os: { version: '22.11' },
      alternatives: ['osinfo:nixos-unstable'],
    });
  });

  it('snapshots made before the release they carry the label of are the unstable branch', () => {
    const iso = descriptors('nixos-minimal-24.05-x86_64', { createdAt: new Date('2024-01-10T00:00:00Z') });
    expect(identifyOs({ iso, osinfo })).toMatchObject({ shortId: 'nixos-unstable', os: { version: 'unstable' } });
    const released = { ...iso, createdAt: new Date('2024-06-02T00:00:00Z') };
    expect(identifyOs({ iso: released, osinfo })).toMatchObject({ shortId: 'nixos-24.05' });
  });

  it('a date tie-break never overrides what the label says', () => {
    const publisherId = 'MICROSOFT CORPORATION';
    // J_ media exist for Windows 10 only: a 2024 mastering date does not make them Windows 11.
    const enterpriseN = descriptors('J_CENNA_X64FREV_EN-US_DV5', { publisherId, createdAt: new Date('2024-03-01') });
    expect(identifyOs({ iso: enterpriseN, osinfo })).toMatchObject({ shortId: 'win10', confidence: 'exact' });
    expect(identifyOs({ iso: enterpriseN, osinfo: null })).toMatchObject({ shortId: 'win10', confidence: 'label' });
    // Windows 11 has no 32-bit media.
    const x86 = descriptors('CCCOMA_X86FRE_EN-US_DV9', { publisherId, createdAt: new Date('2024-03-01') });
    expect(identifyOs({ iso: x86, osinfo: null })).toMatchObject({ shortId: 'win10' });
  });

  it('rather silent than wrong: a label two releases share, and no date to decide, names the family alone', () => {
    const iso = descriptors('CCCOMA_X64FRE_EN-US_DV9', { publisherId: 'MICROSOFT CORPORATION' });
    for (const db of [osinfo, null]) {
      expect(identifyOs({ iso, osinfo: db })).toMatchObject({
        shortId: null,
        os: { family: 'windows', distribution: 'windows', version: null, arch: 'x86_64', shortId: null },
      });
    }
    expect(identifyOs({ iso, osinfo }).alternatives).toEqual(['osinfo:win10', 'osinfo:win11']);
  });

  it('labels of releases newer than anything osinfo-db knows are that release, marked extrapolated', () => {
    for (const [label, shortId] of [
      ['Fedora-S-dvd-x86_64-47', 'fedora47'],
      ['Ubuntu-Server 28.04 LTS amd64', 'ubuntu28.04'],
      ['RHEL-10-0-BaseOS-x86_64', 'rhel10.0'],
      ['NETBSD_110', 'netbsd11.0'],
      ['openSUSE-Leap-16.1-DVD-x86_64', 'opensuse16.1'],
    ] as const) {
      expect(identifyOs({ iso: descriptors(label), osinfo }), label).toMatchObject({
        shortId,
        confidence: 'extrapolated',
      });
    }
    // A release osinfo-db knows, on media its patterns do not cover: read from the label.
    expect(identifyOs({ iso: descriptors('Rocky-9-1-Cinnamon'), osinfo })).toMatchObject({
      shortId: 'rocky9',
      confidence: 'label',
      os: { version: '9.1' },
    });
  });

  it('labels cut at 32 characters, or with an abbreviated architecture, still name the release', () => {
    for (const [label, shortId, arch] of [
      ['Ubuntu-Server 24.04 LTS ppc64', 'ubuntu24.04', 'ppc64le'],
      ['Debian 12.0.0 p64el 1', 'debian12', 'ppc64le'],
      ['Mageia-9-i686-netinstall', 'mageia9', 'i686'],
      ['openSUSE-Tumbleweed-LegacyX86-DV', 'opensusetumbleweed', null],
    ] as const) {
      const result = identifyOs({ iso: descriptors(label), osinfo });
      expect(result.shortId, label).toBe(shortId);
      if (arch) expect(result.os.arch, label).toBe(arch);
    }
  });

  it('answers the family alone when two families match one label', async () => {
    // Two operating systems of different distributions whose media osinfo-db cannot tell apart.
    const root = join(dir, 'two-families');
    await mkdir(join(root, 'os', 'example.org'), { recursive: true });
    await writeFile(join(root, 'VERSION'), '20990101\n');
    const os = (short: string, distro: string) => `<libosinfo version="0.0.1">
  <os id="http://example.org/${short}"><short-id>${short}</short-id><name>${short}</name><version>1</version>
    <family>linux</family><distro>${distro}</distro>
    <media arch="x86_64"><iso><volume-id>^SHARED-LABEL-1$</volume-id></iso></media>
  </os>
</libosinfo>`;
    await writeFile(join(root, 'os', 'example.org', 'one.xml'), os('exone1', 'exone'));
    await writeFile(join(root, 'os', 'example.org', 'two.xml'), os('extwo1', 'extwo'));
    const db = await loadOsinfoDatabase({ dir: root, cacheDir: false });
    expect(identifyOs({ iso: descriptors('SHARED-LABEL-1'), osinfo: db })).toMatchObject({
      shortId: null,
      os: { family: 'linux', distribution: null, version: null },
      alternatives: ['osinfo:exone1', 'osinfo:extwo1'],
    });
  });
});

describe('the ISO catalog and identification agree', () => {
  // What each catalog entry's media carry as their volume id (from the published ISOs).
  const labels: Record<string, string> = {
    'ubuntu-24.04-server-amd64-iso': 'Ubuntu-Server 24.04.3 LTS amd64',
    'ubuntu-22.04-server-amd64-iso': 'Ubuntu-Server 22.04.5 LTS amd64',
    'debian-12-netinst-amd64-iso': 'Debian 12.7.0 amd64 n',
    'debian-13-netinst-amd64-iso': 'Debian 13.0.0 amd64 n',
    'rocky-9.4-dvd-x86_64-iso': 'Rocky-9-4-x86_64-dvd',
    'rocky-9.4-minimal-x86_64-iso': 'Rocky-9-4-x86_64-dvd',
    'almalinux-9.4-dvd-x86_64-iso': 'AlmaLinux-9-4-x86_64-dvd',
    'fedora-41-server-dvd-x86_64-iso': 'Fedora-S-dvd-x86_64-41',
    'centos-stream-9-dvd-x86_64-iso': 'CentOS-Stream-9-BaseOS-x86_64',
  };

  it.each(ISO_CATALOG_ENTRIES.map((entry) => [entry.id, entry] as const))('%s', (id, entry) => {
    const volumeId = labels[id];
    expect(volumeId, `a label for ${id}`).toBeDefined();
    const result = identifyOs({
      iso: {
        volumeId: volumeId as string,
        systemId: 'LINUX',
        publisherId: '',
        applicationId: '',
        volumeSizeBytes: 1,
        createdAt: null,
      },
      osinfo,
    });
    expect({ ...result.os }).toMatchObject({
      family: entry.os.family,
      distribution: entry.os.distribution,
      version: entry.os.version,
      arch: entry.os.arch,
    });
  });
});

describe('createIsoInspector (for scans run by a node agent)', () => {
  it('does not follow a symbolic link put in a listed file’s place (it may lead out of the pool)', async () => {
    const link = join(dir, 'swapped.iso');
    await symlink(join(dir, 'rocky94.iso'), link);
    await expect(
      createIsoInspector().inspect({ path: link, relPath: 'swapped.iso', content: 'iso' }),
    ).rejects.toMatchObject({ code: 'ISO_NOT_ISO9660', message: expect.stringContaining('symbolic link') });
  });

  it('reports an ISO the way a scan result carries it, and nothing for other content', async () => {
    const inspector = createIsoInspector();
    const path = join(dir, 'rocky94.iso');
    expect(await inspector.inspect({ path, relPath: 'isos/rocky94.iso', content: 'iso' })).toEqual({
      format: 'iso',
      name: 'Rocky Linux 9.4',
      os: {
        family: 'linux',
        distribution: 'rocky',
        version: '9.4',
        arch: 'x86_64',
        shortId: 'rocky9',
        confidence: 'exact',
        osinfoVersion: '20221203',
      },
      labels: expect.objectContaining({
        'iso.quantix.io/volume-id': 'Rocky-9-4-x86_64-dvd',
        'os.quantix.io/rule': 'osinfo:rocky9',
      }),
      // The test ISO has no El Torito catalog: no firmware is required of it.
      firmware: 'any',
    });
    expect(await inspector.inspect({ path, relPath: 'rocky94.iso', content: 'images' })).toBeNull();
  });
});
