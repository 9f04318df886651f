import { ErrorCode, type HostNetwork } from '@quantix/core';
import { describe, expect, it } from 'vitest';
import { checkVmNetworks } from './preflight.js';

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
