import type { CatalogEntryInput } from './static-catalog.js';
import { StaticImageCatalog } from './static-catalog.js';

export const BUILTIN_CATALOG_NAME = 'quantix-builtin';

/**
 * The cloud images LimiQuantix offered, with the same ids, default users and minimum
 * requirements, plus what it lacked: where each publisher's checksum file is and which
 * algorithm it uses. Fedora and openSUSE moved to their current releases (LimiQuantix's Fedora 40
 * and Leap 15.5 are end-of-life and gone from the primary mirrors). "current"/"latest" URLs
 * change content with each publication; the checksum file is read at download time, and a
 * resume notices the change through the ETag.
 */
export const BUILTIN_CATALOG_ENTRIES: readonly CatalogEntryInput[] = [
  {
    id: 'ubuntu-22.04',
    name: 'Ubuntu 22.04 LTS (Jammy)',
    description: 'Official Ubuntu cloud image with cloud-init. Default user: ubuntu',
    format: 'qcow2',
    os: {
      family: 'linux',
      distribution: 'ubuntu',
      version: '22.04',
      arch: 'x86_64',
      defaultUser: 'ubuntu',
      cloudInit: true,
    },
    requirements: { minCpu: 1, minMemoryMiB: 512, minDiskGiB: 10, firmware: 'any' },
    sourceUrl: 'https://cloud-images.ubuntu.com/jammy/current/jammy-server-cloudimg-amd64.img',
    checksumUrl: 'https://cloud-images.ubuntu.com/jammy/current/SHA256SUMS',
    checksumAlgorithm: 'sha256',
  },
  {
    id: 'ubuntu-24.04',
    name: 'Ubuntu 24.04 LTS (Noble)',
    description: 'Latest Ubuntu LTS with cloud-init. Default user: ubuntu',
    format: 'qcow2',
    os: {
      family: 'linux',
      distribution: 'ubuntu',
      version: '24.04',
      arch: 'x86_64',
      defaultUser: 'ubuntu',
      cloudInit: true,
    },
    requirements: { minCpu: 1, minMemoryMiB: 512, minDiskGiB: 10, firmware: 'any' },
    sourceUrl: 'https://cloud-images.ubuntu.com/noble/current/noble-server-cloudimg-amd64.img',
    checksumUrl: 'https://cloud-images.ubuntu.com/noble/current/SHA256SUMS',
    checksumAlgorithm: 'sha256',
  },
  {
    id: 'debian-12',
    name: 'Debian 12 (Bookworm)',
    description: 'Official Debian cloud image. Default user: debian',
    format: 'qcow2',
    os: {
      family: 'linux',
      distribution: 'debian',
      version: '12',
      arch: 'x86_64',
      defaultUser: 'debian',
      cloudInit: true,
    },
    requirements: { minCpu: 1, minMemoryMiB: 256, minDiskGiB: 5, firmware: 'any' },
    sourceUrl: 'https://cloud.debian.org/images/cloud/bookworm/latest/debian-12-generic-amd64.qcow2',
    // Debian publishes SHA512 sums only.
    checksumUrl: 'https://cloud.debian.org/images/cloud/bookworm/latest/SHA512SUMS',
    checksumAlgorithm: 'sha512',
  },
  {
    id: 'rocky-9',
    name: 'Rocky Linux 9',
    description: 'Enterprise Linux compatible. Default user: rocky',
    format: 'qcow2',
    os: { family: 'linux', distribution: 'rocky', version: '9', arch: 'x86_64', defaultUser: 'rocky', cloudInit: true },
    requirements: { minCpu: 1, minMemoryMiB: 1024, minDiskGiB: 10, firmware: 'any' },
    sourceUrl: 'https://dl.rockylinux.org/pub/rocky/9/images/x86_64/Rocky-9-GenericCloud-Base.latest.x86_64.qcow2',
    // BSD format: "SHA256 (Rocky-9-GenericCloud-Base.latest.x86_64.qcow2) = …".
    checksumUrl:
      'https://dl.rockylinux.org/pub/rocky/9/images/x86_64/Rocky-9-GenericCloud-Base.latest.x86_64.qcow2.CHECKSUM',
    checksumAlgorithm: 'sha256',
  },
  {
    id: 'almalinux-9',
    name: 'AlmaLinux 9',
    description: 'RHEL-compatible. Default user: almalinux',
    format: 'qcow2',
    os: {
      family: 'linux',
      distribution: 'almalinux',
      version: '9',
      arch: 'x86_64',
      defaultUser: 'almalinux',
      cloudInit: true,
    },
    requirements: { minCpu: 1, minMemoryMiB: 1024, minDiskGiB: 10, firmware: 'any' },
    sourceUrl:
      'https://repo.almalinux.org/almalinux/9/cloud/x86_64/images/AlmaLinux-9-GenericCloud-latest.x86_64.qcow2',
    checksumUrl: 'https://repo.almalinux.org/almalinux/9/cloud/x86_64/images/CHECKSUM',
    checksumAlgorithm: 'sha256',
  },
  {
    id: 'fedora-42',
    name: 'Fedora 42 Cloud',
    description: 'Fedora cloud image. Default user: fedora',
    format: 'qcow2',
    os: {
      family: 'linux',
      distribution: 'fedora',
      version: '42',
      arch: 'x86_64',
      defaultUser: 'fedora',
      cloudInit: true,
    },
    requirements: { minCpu: 1, minMemoryMiB: 512, minDiskGiB: 10, firmware: 'any' },
    sourceUrl:
      'https://download.fedoraproject.org/pub/fedora/linux/releases/42/Cloud/x86_64/images/Fedora-Cloud-Base-Generic-42-1.1.x86_64.qcow2',
    // A PGP-signed BSD-format list; the signature lines are skipped when reading it.
    checksumUrl:
      'https://download.fedoraproject.org/pub/fedora/linux/releases/42/Cloud/x86_64/images/Fedora-Cloud-42-1.1-x86_64-CHECKSUM',
    checksumAlgorithm: 'sha256',
  },
  {
    id: 'centos-stream-9',
    name: 'CentOS Stream 9',
    description: 'CentOS Stream 9 cloud image. Default user: cloud-user',
    format: 'qcow2',
    os: {
      family: 'linux',
      distribution: 'centos',
      version: '9-stream',
      arch: 'x86_64',
      defaultUser: 'cloud-user',
      cloudInit: true,
    },
    requirements: { minCpu: 1, minMemoryMiB: 1024, minDiskGiB: 10, firmware: 'any' },
    sourceUrl:
      'https://cloud.centos.org/centos/9-stream/x86_64/images/CentOS-Stream-GenericCloud-9-latest.x86_64.qcow2',
    checksumUrl:
      'https://cloud.centos.org/centos/9-stream/x86_64/images/CentOS-Stream-GenericCloud-9-latest.x86_64.qcow2.SHA256SUM',
    checksumAlgorithm: 'sha256',
  },
  {
    id: 'opensuse-leap-15.6',
    name: 'openSUSE Leap 15.6',
    description: 'openSUSE Leap minimal cloud image. Default user: opensuse',
    format: 'qcow2',
    os: {
      family: 'linux',
      distribution: 'opensuse',
      version: '15.6',
      arch: 'x86_64',
      defaultUser: 'opensuse',
      cloudInit: true,
    },
    requirements: { minCpu: 1, minMemoryMiB: 512, minDiskGiB: 10, firmware: 'any' },
    sourceUrl:
      'https://download.opensuse.org/distribution/leap/15.6/appliances/openSUSE-Leap-15.6-Minimal-VM.x86_64-Cloud.qcow2',
    checksumUrl:
      'https://download.opensuse.org/distribution/leap/15.6/appliances/openSUSE-Leap-15.6-Minimal-VM.x86_64-Cloud.qcow2.sha256',
    checksumAlgorithm: 'sha256',
  },
];

/** The built-in catalog as an ImageCatalog. */
export function createBuiltinCatalog(): StaticImageCatalog {
  return new StaticImageCatalog({ name: BUILTIN_CATALOG_NAME, entries: BUILTIN_CATALOG_ENTRIES });
}
