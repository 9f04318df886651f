import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildIso, ensureIsoTools, REAL_MEDIA } from './__fixtures__/isos.js';
import { ISO_CATALOG_ENTRIES } from './catalog.js';
import { identifyIso, identifyOs } from './identify.js';
import { type IsoInfo, readIsoInfo } from './iso9660.js';
import { getOsinfoDatabase, type OsinfoDatabase } from './osinfo.js';
import { createIsoInspector } from './scanner.js';

let dir: string;
let osinfo: OsinfoDatabase | null;
const media: Partial<Record<keyof typeof REAL_MEDIA, IsoInfo>> = {};

beforeAll(async () => {
  await ensureIsoTools();
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
    // media, source, rule, family, distribution, version, arch
    ['ubuntuServer2404', 'builtin', 'builtin:ubuntu', 'linux', 'ubuntu', '24.04', 'x86_64'],
    ['ubuntuDesktop2204', 'osinfo', 'osinfo:ubuntu22.04', 'linux', 'ubuntu', '22.04', 'x86_64'],
    ['debian12', 'builtin', 'builtin:debian', 'linux', 'debian', '12', 'x86_64'],
    ['debian11', 'osinfo', 'osinfo:debian11', 'linux', 'debian', '11', 'x86_64'],
    ['rocky94', 'osinfo', 'osinfo:rocky9', 'linux', 'rocky', '9.4', 'x86_64'],
    ['alma94', 'osinfo', 'osinfo:almalinux9', 'linux', 'almalinux', '9.4', 'x86_64'],
    ['fedora41', 'builtin', 'builtin:fedora', 'linux', 'fedora', '41', 'x86_64'],
    ['windows11', 'osinfo', 'osinfo:win11', 'windows', 'windows', '11', 'x86_64'],
    ['windowsServer2022', 'osinfo', 'osinfo:win2k22', 'windows', 'windows-server', '2022', 'x86_64'],
    ['windowsServer2025', 'builtin', 'builtin:windows-server-2025', 'windows', 'windows-server', '2025', 'x86_64'],
    ['cidata', 'builtin', 'builtin:cloud-init-seed', 'other', 'cloud-init-nocloud', null, null],
  ] as const)('%s → %s %s: %s %s %s %s', (name, source, rule, family, distribution, version, arch) => {
    const result = identify(name);
    expect(result).toMatchObject({ source, rule });
    expect(result.os).toEqual({ family, distribution, version, arch, defaultUser: null, cloudInit: false });
  });

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
    ] as const) {
      const withDb = identify(name);
      const without = identify(name, null);
      expect(without.source, name).toBe('builtin');
      expect(without.os, name).toEqual(withDb.os);
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
  it('reports an ISO the way a scan result carries it, and nothing for other content', async () => {
    const inspector = createIsoInspector();
    const path = join(dir, 'rocky94.iso');
    expect(await inspector.inspect({ path, relPath: 'isos/rocky94.iso', content: 'iso' })).toEqual({
      format: 'iso',
      name: 'Rocky Linux 9.4',
      os: { family: 'linux', distribution: 'rocky', version: '9.4', arch: 'x86_64' },
      labels: expect.objectContaining({
        'iso.quantix.io/volume-id': 'Rocky-9-4-x86_64-dvd',
        'os.quantix.io/rule': 'osinfo:rocky9',
      }),
    });
    expect(await inspector.inspect({ path, relPath: 'rocky94.iso', content: 'images' })).toBeNull();
  });
});
