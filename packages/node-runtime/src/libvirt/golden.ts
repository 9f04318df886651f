import type { DomainSpec } from './domain-xml.js';

/**
 * The specs behind the golden domain XMLs in __fixtures__/ (one file per name). The unit test
 * compares the built XML with the files byte for byte; the integration test has libvirt accept them.
 */
export const GOLDEN_DOMAINS: Record<string, DomainSpec> = {
  /** A VM from a cloud image: overlay disk, NoCloud seed on a CD-ROM, BIOS, no network. */
  'bios-cloud': {
    name: 'web-01',
    uuid: '6f1c1a2e-8d44-4c1e-9a51-0c3f1f0b7e21',
    memoryMiB: 2048,
    vcpus: 2,
    firmware: 'bios',
    disks: [{ path: '/srv/pools/images/vms/web-01/disk0.qcow2', format: 'qcow2' }],
    cdroms: [{ path: '/srv/pools/images/vms/web-01/seed.iso' }],
    metadata: {
      vmId: 'vm-0001',
      ownedFiles: ['/srv/pools/images/vms/web-01/disk0.qcow2', '/srv/pools/images/vms/web-01/seed.iso'],
      ownedDirectories: ['/srv/pools/images/vms/web-01'],
    },
  },
  /** A VM from an installer ISO: empty disk, bootable CD-ROM first, UEFI, NAT network and VNC. */
  'uefi-iso': {
    name: 'installer',
    memoryMiB: 4096,
    vcpus: 4,
    firmware: 'uefi',
    virtType: 'kvm',
    cpu: 'host-passthrough',
    disks: [{ path: '/var/lib/quantix/vms/installer/disk0.qcow2' }],
    cdroms: [{ path: '/mnt/nfs/iso/debian-12.5.0-amd64-netinst.iso' }],
    networks: [{ kind: 'network', network: 'default', mac: '52:54:00:12:34:56' }],
    bootFrom: 'cdrom',
    graphics: 'vnc',
    metadata: { ownedFiles: ['/var/lib/quantix/vms/installer/disk0.qcow2'] },
  },
  /** TCG, i440fx, user-mode and bridged networks, an empty CD-ROM drive, raw read-only extra disk, no serial. */
  'tcg-devices': {
    name: 'tcg-box',
    memoryMiB: 64,
    vcpus: 1,
    virtType: 'qemu',
    machine: 'pc',
    disks: [
      { path: '/tmp/quantix/tcg-box/root.qcow2' },
      { path: '/tmp/quantix/tcg-box/data.raw', format: 'raw', bus: 'sata', readOnly: true },
    ],
    cdroms: [{ path: null }],
    networks: [{ kind: 'user' }, { kind: 'bridge', bridge: 'br0' }],
    serialConsole: false,
  },
  /** Values that XML must escape: they end up as text, never as markup. */
  'escaped-values': {
    name: 'odd-paths',
    title: 'Title with <tags> & "quotes"',
    description: "It's <b>bold</b> & ]]> done",
    memoryMiB: 128,
    vcpus: 1,
    disks: [{ path: `/srv/pool/it's "a" <disk> & more.qcow2` }],
    cdroms: [{ path: '/srv/pool/$(reboot) `id` ; rm -rf.iso' }],
    metadata: { vmId: 'vm&<id>', ownedFiles: [`/srv/pool/it's "a" <disk> & more.qcow2`] },
  },
};
