import {
  type CatalogEntry,
  ErrorCode,
  type ImageCatalog,
  type ImageKind,
  type ImageRequirements,
  type OsInfo,
  QuantixError,
} from '@quantix/core';

export const ISO_CATALOG_NAME = 'quantix-iso';

const linux = (distribution: string, version: string, arch = 'x86_64'): OsInfo => ({
  family: 'linux',
  distribution,
  version,
  arch,
  defaultUser: null,
  cloudInit: false,
});

const needs = (minCpu: number, minMemoryMiB: number, minDiskGiB: number): ImageRequirements => ({
  minCpu,
  minMemoryMiB,
  minDiskGiB,
  firmware: 'any',
});

/** An ISO entry: kind and format are always 'iso', and it is always verified against a checksum file. */
export interface IsoCatalogEntryInput {
  id: string;
  name: string;
  description?: string;
  os: OsInfo;
  requirements: ImageRequirements;
  sourceUrl: string;
  checksumUrl: string;
  checksumAlgorithm?: 'sha256' | 'sha512';
  sizeBytes?: number | null;
}

/**
 * Installation media of the common server distributions. Ids end in `-iso` so that they never
 * collide with a cloud image catalog's ids when catalogs are merged (a later catalog's entry
 * replaces an earlier one with the same id).
 *
 * Superseded point releases move on distribution mirrors, so entries point where a release stays
 * put: Debian's cdimage archive, Rocky's and AlmaLinux's vaults and Fedora's archive keep old
 * releases at fixed URLs; Ubuntu 22.04.5 is 22.04's final point release. Ubuntu 24.04 and CentOS
 * Stream name their current media. Every entry names the checksum file published beside the ISO
 * (SHA256SUMS, or the BSD-style CHECKSUM of the RHEL family): downloads are always verified.
 * Windows media are left out: Microsoft publishes no checksum file and no stable download URL.
 */
export const ISO_CATALOG_ENTRIES: readonly IsoCatalogEntryInput[] = [
  {
    id: 'ubuntu-24.04-server-amd64-iso',
    name: 'Ubuntu Server 24.04 LTS (installer ISO)',
    description: 'Ubuntu 24.04 LTS (Noble Numbat) live server installer, amd64.',
    os: linux('ubuntu', '24.04'),
    requirements: needs(1, 2048, 10),
    sourceUrl: 'https://releases.ubuntu.com/24.04/ubuntu-24.04.3-live-server-amd64.iso',
    checksumUrl: 'https://releases.ubuntu.com/24.04/SHA256SUMS',
  },
  {
    id: 'ubuntu-22.04-server-amd64-iso',
    name: 'Ubuntu Server 22.04 LTS (installer ISO)',
    description: 'Ubuntu 22.04.5 LTS (Jammy Jellyfish) live server installer, amd64: the final 22.04 point release.',
    os: linux('ubuntu', '22.04'),
    requirements: needs(1, 1536, 10),
    sourceUrl: 'https://releases.ubuntu.com/22.04/ubuntu-22.04.5-live-server-amd64.iso',
    checksumUrl: 'https://releases.ubuntu.com/22.04/SHA256SUMS',
  },
  {
    id: 'debian-12-netinst-amd64-iso',
    name: 'Debian 12.7 netinst (installer ISO)',
    description: 'Debian 12 (Bookworm) network installer, amd64, from the cdimage archive.',
    os: linux('debian', '12'),
    requirements: needs(1, 1024, 10),
    sourceUrl: 'https://cdimage.debian.org/cdimage/archive/12.7.0/amd64/iso-cd/debian-12.7.0-amd64-netinst.iso',
    checksumUrl: 'https://cdimage.debian.org/cdimage/archive/12.7.0/amd64/iso-cd/SHA256SUMS',
  },
  {
    id: 'debian-13-netinst-amd64-iso',
    name: 'Debian 13.0 netinst (installer ISO)',
    description: 'Debian 13 (Trixie) network installer, amd64, from the cdimage archive.',
    os: linux('debian', '13'),
    requirements: needs(1, 1024, 10),
    sourceUrl: 'https://cdimage.debian.org/cdimage/archive/13.0.0/amd64/iso-cd/debian-13.0.0-amd64-netinst.iso',
    checksumUrl: 'https://cdimage.debian.org/cdimage/archive/13.0.0/amd64/iso-cd/SHA256SUMS',
  },
  {
    id: 'rocky-9.4-dvd-x86_64-iso',
    name: 'Rocky Linux 9.4 DVD (installer ISO)',
    description: 'Rocky Linux 9.4 full DVD installer, x86_64, from the Rocky vault.',
    os: linux('rocky', '9.4'),
    requirements: needs(1, 1536, 10),
    sourceUrl: 'https://dl.rockylinux.org/vault/rocky/9.4/isos/x86_64/Rocky-9.4-x86_64-dvd.iso',
    checksumUrl: 'https://dl.rockylinux.org/vault/rocky/9.4/isos/x86_64/CHECKSUM',
  },
  {
    id: 'rocky-9.4-minimal-x86_64-iso',
    name: 'Rocky Linux 9.4 minimal (installer ISO)',
    description: 'Rocky Linux 9.4 minimal installer, x86_64, from the Rocky vault.',
    os: linux('rocky', '9.4'),
    requirements: needs(1, 1536, 10),
    sourceUrl: 'https://dl.rockylinux.org/vault/rocky/9.4/isos/x86_64/Rocky-9.4-x86_64-minimal.iso',
    checksumUrl: 'https://dl.rockylinux.org/vault/rocky/9.4/isos/x86_64/CHECKSUM',
  },
  {
    id: 'almalinux-9.4-dvd-x86_64-iso',
    name: 'AlmaLinux 9.4 DVD (installer ISO)',
    description: 'AlmaLinux 9.4 full DVD installer, x86_64, from the AlmaLinux vault.',
    os: linux('almalinux', '9.4'),
    requirements: needs(1, 1536, 10),
    sourceUrl: 'https://vault.almalinux.org/9.4/isos/x86_64/AlmaLinux-9.4-x86_64-dvd.iso',
    checksumUrl: 'https://vault.almalinux.org/9.4/isos/x86_64/CHECKSUM',
  },
  {
    id: 'fedora-41-server-dvd-x86_64-iso',
    name: 'Fedora Server 41 DVD (installer ISO)',
    description: 'Fedora Server 41 DVD installer, x86_64, from the Fedora archive.',
    os: linux('fedora', '41'),
    requirements: needs(2, 2048, 20),
    sourceUrl:
      'https://archives.fedoraproject.org/pub/archive/fedora/linux/releases/41/Server/x86_64/iso/Fedora-Server-dvd-x86_64-41-1.4.iso',
    checksumUrl:
      'https://archives.fedoraproject.org/pub/archive/fedora/linux/releases/41/Server/x86_64/iso/Fedora-Server-41-1.4-x86_64-CHECKSUM',
  },
  {
    id: 'centos-stream-9-dvd-x86_64-iso',
    name: 'CentOS Stream 9 DVD (installer ISO)',
    description: 'CentOS Stream 9 DVD installer, x86_64: the current compose.',
    os: linux('centos-stream', '9'),
    requirements: needs(1, 2048, 10),
    sourceUrl: 'https://mirror.stream.centos.org/9-stream/BaseOS/x86_64/iso/CentOS-Stream-9-latest-x86_64-dvd1.iso',
    checksumUrl:
      'https://mirror.stream.centos.org/9-stream/BaseOS/x86_64/iso/CentOS-Stream-9-latest-x86_64-dvd1.iso.SHA256SUM',
  },
];

const ID = /^[a-z0-9][a-z0-9._-]*$/;

function invalid(id: string, why: string): QuantixError {
  return new QuantixError(ErrorCode.INVALID_INPUT, `ISO catalog entry ${JSON.stringify(id)}: ${why}`, {
    details: { id, issues: [{ path: id, message: why }] },
  });
}

function httpsUrl(id: string, field: string, value: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw invalid(id, `${field} is not a URL`);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw invalid(id, `${field} must be an http(s) URL`);
  return value;
}

/** Checks an entry and makes it a CatalogEntry of kind 'iso'; INVALID_INPUT naming the problem. */
export function defineIsoCatalogEntry(input: IsoCatalogEntryInput): CatalogEntry {
  const id = String(input?.id ?? '');
  if (!ID.test(id) || id.length > 200) throw invalid(id, 'id must be lower-case letters, digits, . _ - (at most 200)');
  if (typeof input.name !== 'string' || input.name.trim() === '') throw invalid(id, 'name is empty');
  return {
    id,
    name: input.name.trim(),
    description: input.description ?? '',
    kind: 'iso',
    format: 'iso',
    os: { ...input.os },
    requirements: { ...input.requirements },
    sourceUrl: httpsUrl(id, 'sourceUrl', input.sourceUrl),
    checksum: null,
    checksumUrl: httpsUrl(id, 'checksumUrl', input.checksumUrl),
    checksumAlgorithm: input.checksumAlgorithm ?? 'sha256',
    sizeBytes: input.sizeBytes ?? null,
  };
}

export interface IsoCatalogOptions {
  /** Default ISO_CATALOG_NAME. */
  name?: string;
  /** Entries to list instead of ISO_CATALOG_ENTRIES (a site's own mirror, say). */
  entries?: readonly IsoCatalogEntryInput[];
}

/** The ISO catalog (kind 'iso'): entries are checked once, when it is made, so a bad one fails start-up. */
export class IsoCatalog implements ImageCatalog {
  readonly name: string;
  private readonly entries: readonly CatalogEntry[];

  constructor(options: IsoCatalogOptions = {}) {
    this.name = options.name ?? ISO_CATALOG_NAME;
    const seen = new Set<string>();
    this.entries = (options.entries ?? ISO_CATALOG_ENTRIES).map((input) => {
      const entry = defineIsoCatalogEntry(input);
      if (seen.has(entry.id)) {
        throw new QuantixError(ErrorCode.ALREADY_EXISTS, `ISO catalog '${this.name}' lists '${entry.id}' twice`, {
          details: { catalog: this.name, id: entry.id },
        });
      }
      seen.add(entry.id);
      return Object.freeze(entry);
    });
  }

  async list(options: { kind?: ImageKind } = {}): Promise<CatalogEntry[]> {
    if (options.kind !== undefined && options.kind !== 'iso') return [];
    return [...this.entries];
  }

  async get(options: { id: string }): Promise<CatalogEntry | undefined> {
    return this.entries.find((entry) => entry.id === options.id);
  }
}

export function createIsoCatalog(options: IsoCatalogOptions = {}): IsoCatalog {
  return new IsoCatalog(options);
}
