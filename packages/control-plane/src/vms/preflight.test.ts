import { ErrorCode, type HostNetwork } from '@quantix/core';
import { describe, expect, it } from 'vitest';
import { ControlPlaneErrorCode } from '../errors.js';
import { checkImageRequirements, checkVmNetworks } from './preflight.js';

const offered: HostNetwork[] = [
  { attachment: 'network', name: 'default', active: true, forward: 'nat', bridge: 'virbr0', addresses: [], dhcp: true },
  {
    attachment: 'network',
    name: 'lab',
    active: false,
    forward: 'isolated',
    bridge: 'virbr1',
    addresses: [],
    dhcp: false,
  },
  { attachment: 'bridge', name: 'br0', active: true, forward: null, bridge: 'br0', addresses: [], dhcp: false },
];
const check = (requested: { attachment: 'network' | 'bridge'; source: string }[]) => () =>
  checkVmNetworks({ nodeId: 'hv1', requested, offered });

describe('checkVmNetworks', () => {
  it('passes NICs on started networks and bridges the node has', () => {
    expect(
      check([
        { attachment: 'network', source: 'default' },
        { attachment: 'bridge', source: 'br0' },
      ]),
    ).not.toThrow();
  });

  it('refuses an unknown network with NETWORK_NOT_FOUND, naming what the node has', () => {
    expect(check([{ attachment: 'network', source: 'dmz' }])).toThrow(
      expect.objectContaining({
        code: ErrorCode.NETWORK_NOT_FOUND,
        message: 'Node hv1 has no libvirt network dmz; it has default, lab, bridge:br0',
        details: expect.objectContaining({ available: ['default', 'lab', 'bridge:br0'] }),
      }),
    );
  });

  it('does not take a bridge for a network of the same name, nor the reverse', () => {
    expect(check([{ attachment: 'network', source: 'br0' }])).toThrow(
      expect.objectContaining({ code: ErrorCode.NETWORK_NOT_FOUND }),
    );
    expect(check([{ attachment: 'bridge', source: 'default' }])).toThrow(
      expect.objectContaining({ code: ErrorCode.NETWORK_NOT_FOUND }),
    );
  });

  it('refuses a network that is not started with NETWORK_NOT_ACTIVE', () => {
    expect(check([{ attachment: 'network', source: 'lab' }])).toThrow(
      expect.objectContaining({
        code: ErrorCode.NETWORK_NOT_ACTIVE,
        message: expect.stringContaining('virsh net-start'),
      }),
    );
  });
});

describe('checkImageRequirements', () => {
  const GIB = 1024 ** 3;
  const guest = {
    name: 'guest',
    kind: 'cloud' as const,
    requirements: { minCpu: 2, minMemoryMiB: 128, minDiskGiB: 1, firmware: 'uefi' as const },
    virtualSizeBytes: 2.5 * GIB,
  };

  it('passes a VM given what its image needs, and sizes left out', () => {
    expect(() => checkImageRequirements(guest, { cpu: 2, memoryMiB: 128, diskGiB: 3, firmware: 'uefi' })).not.toThrow();
    expect(() => checkImageRequirements(guest, { memoryMiB: 4096 })).not.toThrow();
  });

  it('refuses less with BELOW_IMAGE_REQUIREMENTS, naming each shortfall; a cloud image’s disk is at least its virtual size', () => {
    expect(() => checkImageRequirements(guest, { cpu: 1, memoryMiB: 64, diskGiB: 2, firmware: 'bios' })).toThrow(
      expect.objectContaining({
        code: ControlPlaneErrorCode.BELOW_IMAGE_REQUIREMENTS,
        message:
          'Image guest needs at least 2 vCPUs (asked 1), at least 128 MiB of memory (asked 64), a disk of at least 3 GiB (asked 2), uefi firmware (asked bios); the VM would not boot as asked',
        details: {
          asked: { cpu: 1, memoryMiB: 64, diskGiB: 2, firmware: 'bios' },
          needs: { minCpu: 2, minMemoryMiB: 128, minDiskGiB: 3, firmware: 'uefi' },
        },
      }),
    );
  });

  it('names only the sizes and firmware asked in its details, not the rest of a creation’s request', () => {
    const request = { name: 'web', sshAuthorizedKeys: ['ssh-ed25519 AAAA'], cpu: 2, memoryMiB: 64, diskGiB: 3 };
    expect(() => checkImageRequirements(guest, request)).toThrow(
      expect.objectContaining({
        details: expect.objectContaining({ asked: { cpu: 2, memoryMiB: 64, diskGiB: 3, firmware: undefined } }),
      }),
    );
  });

  it('holds an installer ISO to its requirements only: its blank disk is not made from it', () => {
    const iso = { ...guest, kind: 'iso' as const, virtualSizeBytes: 4 * GIB };
    expect(() => checkImageRequirements(iso, { cpu: 2, memoryMiB: 128, diskGiB: 1 })).not.toThrow();
  });

  it('holds an image whose source said nothing to nothing', () => {
    const told = { minCpu: 1, minMemoryMiB: 0, minDiskGiB: 0, firmware: 'any' as const };
    const anything = { cpu: 1, memoryMiB: 64, diskGiB: 1, firmware: 'bios' as const };
    expect(() =>
      checkImageRequirements({ ...guest, requirements: told, virtualSizeBytes: null }, anything),
    ).not.toThrow();
  });
});
