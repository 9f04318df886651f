/**
 * Real ISO images for the tests, made by the real mastering tools: xorriso (`-as mkisofs`) and
 * genisoimage. xorriso cannot write UDF, so UDF bridge images (the layout of Windows media) come
 * from `genisoimage -udf`. genisoimage has no option for the volume dates, so when a test needs a
 * given creation date on such an image, the date is written into the primary volume descriptor's
 * creation and modification fields afterwards, as a mastering tool would have written it.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, open, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { requireTools } from '@quantix/core/testing';

const run = promisify(execFile);

/** Where Debian's osinfo-db puts its OS descriptions. */
export const OSINFO_DB_DIR = '/usr/share/osinfo/os';

/**
 * Fails (never skips, never installs) unless xorriso, genisoimage and osinfo-db are there; the
 * error names the Debian packages and the command that installs them.
 */
export function requireIsoTools(): void {
  requireTools({ program: 'xorriso', debianPackage: 'xorriso' }, { program: 'genisoimage', debianPackage: 'genisoimage' });
  if (!existsSync(OSINFO_DB_DIR)) {
    throw new Error(
      `This test needs osinfo-db's OS descriptions (${OSINFO_DB_DIR}), which are not installed. Install them with: apt-get install -y osinfo-db`,
    );
  }
}

export interface IsoSpec {
  volumeId: string;
  publisher?: string;
  systemId?: string;
  applicationId?: string;
  /** El Torito entries: a BIOS no-emulation image, an EFI image, or both. */
  boot?: 'bios' | 'uefi' | 'both' | null;
  /** A UDF bridge (genisoimage only). */
  udf?: boolean;
  /** Creation and modification date of the volume. */
  date?: Date;
  tool?: 'xorriso' | 'genisoimage';
  /** Extra files: name → contents. */
  files?: Record<string, string | Buffer>;
  /** Bytes of a zero-filled file added to make the image larger. */
  padBytes?: number;
}

function isoDate(date: Date): string {
  const pad = (n: number, width = 2) => String(n).padStart(width, '0');
  return `${pad(date.getUTCFullYear(), 4)}${pad(date.getUTCMonth() + 1)}${pad(date.getUTCDate())}${pad(date.getUTCHours())}${pad(date.getUTCMinutes())}${pad(date.getUTCSeconds())}00`;
}

/** Writes a date into the primary volume descriptor's creation (813) and modification (830) fields, GMT. */
async function setVolumeDates(path: string, date: Date): Promise<void> {
  const field = Buffer.concat([Buffer.from(isoDate(date), 'latin1'), Buffer.from([0])]);
  const handle = await open(path, 'r+');
  try {
    await handle.write(field, 0, 17, 16 * 2048 + 813);
    await handle.write(field, 0, 17, 16 * 2048 + 830);
  } finally {
    await handle.close();
  }
}

/** Builds an ISO at `path` and returns `path`. */
export async function buildIso(path: string, spec: IsoSpec): Promise<string> {
  const tool = spec.tool ?? (spec.udf ? 'genisoimage' : 'xorriso');
  if (spec.udf && tool !== 'genisoimage') throw new Error('xorriso cannot write UDF; use genisoimage');
  const source = await mkdtemp(join(tmpdir(), 'quantix-iso-src-'));
  try {
    await writeFile(join(source, 'README.TXT'), `${spec.volumeId}\n`);
    for (const [name, contents] of Object.entries(spec.files ?? {})) await writeFile(join(source, name), contents);
    if (spec.padBytes) {
      const pad = await open(join(source, 'PAD.BIN'), 'w');
      await pad.truncate(spec.padBytes);
      await pad.close();
    }
    const boot: string[] = [];
    if (spec.boot) {
      await mkdir(join(source, 'boot'));
      // Contents do not matter to the catalog: firmware would run them, the reader does not.
      await writeFile(join(source, 'boot', 'bios.img'), Buffer.alloc(2048 * 4, 0xeb));
      await writeFile(join(source, 'boot', 'efi.img'), Buffer.alloc(64 * 1024, 0xef));
      if (spec.boot === 'bios' || spec.boot === 'both') {
        boot.push('-b', 'boot/bios.img', '-no-emul-boot', '-boot-load-size', '4', '-boot-info-table');
      }
      if (spec.boot === 'uefi' || spec.boot === 'both') {
        if (spec.boot === 'both') boot.push('-eltorito-alt-boot');
        boot.push('-e', 'boot/efi.img', '-no-emul-boot');
      }
    }
    const ids = [
      '-V',
      spec.volumeId,
      '-sysid',
      spec.systemId ?? (tool === 'xorriso' ? 'LINUX' : ''),
      ...(spec.publisher ? ['-publisher', spec.publisher] : []),
      ...(spec.applicationId ? ['-A', spec.applicationId] : []),
    ];
    if (tool === 'xorriso') {
      const date = spec.date ? [`--modification-date=${isoDate(spec.date)}`] : [];
      await run('xorriso', ['-as', 'mkisofs', '-quiet', ...ids, ...date, '-J', '-R', ...boot, '-o', path, source]);
    } else {
      await run('genisoimage', ['-quiet', ...ids, ...(spec.udf ? ['-udf'] : []), '-J', '-r', ...boot, '-o', path, source]);
      if (spec.date) await setVolumeDates(path, spec.date);
    }
    return path;
  } finally {
    await rm(source, { recursive: true, force: true });
  }
}

/** The volume ids real distribution media carry, with what they are. */
export const REAL_MEDIA = {
  ubuntuServer2404: { volumeId: 'Ubuntu-Server 24.04.1 LTS amd64', date: new Date('2024-08-27T12:00:00Z'), boot: 'both' },
  ubuntuDesktop2204: { volumeId: 'Ubuntu 22.04.1 LTS amd64', date: new Date('2022-08-09T15:00:00Z'), boot: 'both' },
  debian12: { volumeId: 'Debian 12.7.0 amd64 n', date: new Date('2024-08-31T10:00:00Z'), boot: 'both' },
  debian11: { volumeId: 'Debian 11.2.0 amd64 n', date: new Date('2021-12-18T10:00:00Z'), boot: 'both' },
  rocky94: { volumeId: 'Rocky-9-4-x86_64-dvd', date: new Date('2024-05-05T04:00:00Z'), boot: 'both' },
  alma94: { volumeId: 'AlmaLinux-9-4-x86_64-dvd', date: new Date('2024-05-06T10:00:00Z'), boot: 'both' },
  fedora41: { volumeId: 'Fedora-S-dvd-x86_64-41', date: new Date('2024-10-24T09:00:00Z'), boot: 'both' },
  windows11: {
    volumeId: 'CCCOMA_X64FRE_EN-US_DV9',
    publisher: 'MICROSOFT CORPORATION',
    systemId: '',
    udf: true,
    date: new Date('2024-09-25T00:00:00Z'),
    boot: 'both',
  },
  windowsServer2022: {
    volumeId: 'SSS_X64FREE_EN-US_DV9',
    publisher: 'MICROSOFT CORPORATION',
    systemId: '',
    udf: true,
    // Server 2022's RTM media (build 20348.1) were mastered in May 2021, before the August release.
    date: new Date('2021-05-08T00:00:00Z'),
    boot: 'both',
  },
  windowsServer2025: {
    volumeId: 'SSS_X64FREE_EN-US_DV9',
    publisher: 'MICROSOFT CORPORATION',
    systemId: '',
    udf: true,
    date: new Date('2024-09-06T00:00:00Z'),
    boot: 'both',
  },
  // The media of issue 15's misses: labels more precise than what osinfo-db's catch-alls say,
  // and a release the installed osinfo-db (2022-12) does not know.
  rhel10: { volumeId: 'RHEL-10-0-BaseOS-x86_64', systemId: '', date: new Date('2025-04-10T00:00:00Z'), boot: 'both' },
  nixos2405: {
    volumeId: 'nixos-gnome-24.05-x86_64',
    systemId: '',
    publisher: 'NIXOS',
    applicationId: 'NIXOS',
    date: new Date('2024-05-31T00:00:00Z'),
    boot: 'both',
  },
  silverblue40: { volumeId: 'Fedora-SB-ostree-x86_64-40', systemId: '', date: new Date('2024-04-14T00:00:00Z'), boot: 'both' },
  // Windows 10 Enterprise N media keep their J_ label on discs mastered long after Windows 11 came out.
  windows10EnterpriseN: {
    volumeId: 'J_CENNA_X64FREV_EN-US_DV5',
    publisher: 'MICROSOFT CORPORATION',
    systemId: '',
    udf: true,
    date: new Date('2023-06-01T00:00:00Z'),
    boot: 'both',
  },
  // What cloud-localds writes: a NoCloud seed labelled cidata with user-data and meta-data.
  cidata: {
    volumeId: 'cidata',
    tool: 'genisoimage',
    boot: null,
    files: { 'user-data': '#cloud-config\nhostname: test\n', 'meta-data': 'instance-id: test-1\n' },
  },
} satisfies Record<string, IsoSpec>;
