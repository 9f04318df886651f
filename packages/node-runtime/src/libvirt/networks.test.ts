import { describe, expect, it } from 'vitest';
import { parseBridgesJson, parseDomifaddr, parseNetworkXml } from './networks.js';

// What libvirt 9.0 prints for the NAT network scripts/services.sh defines (net-dumpxml).
const DEFAULT_NETWORK = `<network>
  <name>default</name>
  <uuid>1d0e4a4e-4b0c-4b5e-9c43-1f7d0b1f0a11</uuid>
  <forward mode='nat'>
    <nat>
      <port start='1024' end='65535'/>
    </nat>
  </forward>
  <bridge name='virbr0' stp='on' delay='0'/>
  <mac address='52:54:00:94:66:95'/>
  <ip address='192.168.122.1' netmask='255.255.255.0'>
    <dhcp>
      <range start='192.168.122.2' end='192.168.122.254'/>
    </dhcp>
  </ip>
</network>
`;

describe('parseNetworkXml', () => {
  it('reads a NAT network: forward mode, bridge, subnet and DHCP', () => {
    expect(parseNetworkXml(DEFAULT_NETWORK, true)).toEqual({
      attachment: 'network',
      name: 'default',
      active: true,
      forward: 'nat',
      bridge: 'virbr0',
      addresses: ['192.168.122.1/24'],
      dhcp: true,
    });
  });

  it('reads an isolated network (no <forward>) with a prefix and no DHCP, and a stopped one as inactive', () => {
    const xml = `<network><name>lab</name><bridge name="virbr9"/><ip family="ipv6" address="fd00::1" prefix="64"/></network>`;
    expect(parseNetworkXml(xml, false)).toMatchObject({
      name: 'lab',
      active: false,
      forward: 'isolated',
      addresses: ['fd00::1/64'],
      dhcp: false,
    });
  });

  it('refuses what is not a network', () => {
    expect(() => parseNetworkXml('<domain><name>x</name></domain>', true)).toThrow(/network/);
  });
});

describe('parseBridgesJson', () => {
  // `ip -json addr show type bridge` on a host with libvirt's virbr0 and an operator's br0.
  const json = JSON.stringify([
    {
      ifindex: 5,
      ifname: 'virbr0',
      flags: ['NO-CARRIER', 'BROADCAST', 'MULTICAST', 'UP'],
      addr_info: [{ family: 'inet', local: '192.168.122.1', prefixlen: 24, scope: 'global' }],
    },
    {
      ifindex: 7,
      ifname: 'br0',
      flags: ['BROADCAST', 'MULTICAST', 'UP', 'LOWER_UP'],
      addr_info: [
        { family: 'inet', local: '10.0.0.2', prefixlen: 16, scope: 'global' },
        { family: 'inet6', local: 'fe80::1', prefixlen: 64, scope: 'link' },
      ],
    },
    { ifindex: 8, ifname: 'br-down', flags: ['BROADCAST', 'MULTICAST'], addr_info: [] },
  ]);

  it('lists host bridges, leaving out those a libvirt network manages, with state and addresses', () => {
    expect(parseBridgesJson(json, new Set(['virbr0']))).toEqual([
      {
        attachment: 'bridge',
        name: 'br0',
        active: true,
        forward: null,
        bridge: 'br0',
        addresses: ['10.0.0.2/16'],
        dhcp: false,
      },
      {
        attachment: 'bridge',
        name: 'br-down',
        active: false,
        forward: null,
        bridge: 'br-down',
        addresses: [],
        dhcp: false,
      },
    ]);
  });

  it('takes empty output as no bridges', () => {
    expect(parseBridgesJson('', new Set())).toEqual([]);
  });
});

describe('parseDomifaddr', () => {
  it('reads each address with its interface and MAC, carrying them over to the next address', () => {
    const output = [
      ' Name       MAC address          Protocol     Address',
      '-------------------------------------------------------------------------------',
      ' vnet0      52:54:00:aa:bb:01    ipv4         192.168.122.55/24',
      ' -          -                    ipv6         fd00::55/64',
      ' vnet1      52:54:00:AA:BB:02    ipv4         10.0.0.9/16',
      '',
    ].join('\n');
    expect(parseDomifaddr(output, 'lease')).toEqual([
      {
        mac: '52:54:00:aa:bb:01',
        interface: 'vnet0',
        family: 'ipv4',
        address: '192.168.122.55',
        prefix: 24,
        source: 'lease',
      },
      {
        mac: '52:54:00:aa:bb:01',
        interface: 'vnet0',
        family: 'ipv6',
        address: 'fd00::55',
        prefix: 64,
        source: 'lease',
      },
      {
        mac: '52:54:00:aa:bb:02',
        interface: 'vnet1',
        family: 'ipv4',
        address: '10.0.0.9',
        prefix: 16,
        source: 'lease',
      },
    ]);
  });

  it('reads a table with no addresses (no lease yet) as none', () => {
    const output =
      ' Name       MAC address          Protocol     Address\n-------------------------------------------\n\n';
    expect(parseDomifaddr(output, 'lease')).toEqual([]);
  });
});
