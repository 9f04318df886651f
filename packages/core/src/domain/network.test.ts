import { describe, expect, it } from 'vitest';
import { ErrorCode } from '../errors.js';
import { generateMac, MAC_PREFIX, macAddressSchema, parseNicReference, vmNicSchema } from './network.js';

describe('generateMac', () => {
  it('makes unicast, locally administered MACs in QEMU’s 52:54:00 range, libvirt’s format', () => {
    for (let i = 0; i < 200; i++) {
      const mac = generateMac();
      expect(mac).toMatch(/^52:54:00(:[0-9a-f]{2}){3}$/);
      const first = Number.parseInt(mac.slice(0, 2), 16);
      expect(first & 0b10).toBe(0b10); // locally administered
      expect(first & 0b01).toBe(0); // unicast
      expect(macAddressSchema.safeParse(mac).success).toBe(true);
    }
  });

  it('never hands out a MAC that is taken: it draws again', () => {
    const draws = [Buffer.from([1, 2, 3]), Buffer.from([1, 2, 3]), Buffer.from([0xab, 0xcd, 0xef])];
    const random = () => draws.shift() as Buffer;
    expect(generateMac(new Set([`${MAC_PREFIX}:01:02:03`]), random)).toBe('52:54:00:ab:cd:ef');
  });

  it('gives distinct MACs to many NICs drawn against what is already taken', () => {
    const taken = new Set<string>();
    for (let i = 0; i < 2000; i++) taken.add(generateMac(taken));
    expect(taken.size).toBe(2000);
  });

  it('fails with a code, not forever, when every draw is taken', () => {
    const random = () => Buffer.from([0, 0, 0]);
    expect(() => generateMac(new Set(['52:54:00:00:00:00']), random)).toThrow(
      expect.objectContaining({ code: ErrorCode.INTERNAL_ERROR }),
    );
  });
});

describe('MACs and NICs as recorded', () => {
  it('refuses multicast, upper-case and malformed MACs', () => {
    for (const mac of ['01:00:5e:00:00:01', '52:54:00:AB:CD:EF', '52-54-00-ab-cd-ef', '52:54:00:ab:cd', '']) {
      expect(macAddressSchema.safeParse(mac).success).toBe(false);
    }
  });

  it('takes a virtio NIC on a network or a bridge, and no bridge name longer than Linux allows', () => {
    expect(vmNicSchema.parse({ attachment: 'network', source: 'default', mac: '52:54:00:00:00:01' })).toEqual({
      attachment: 'network',
      source: 'default',
      model: 'virtio',
      mac: '52:54:00:00:00:01',
    });
    expect(
      vmNicSchema.safeParse({ attachment: 'bridge', source: 'a-very-long-bridge', mac: '52:54:00:00:00:01' }).success,
    ).toBe(false);
  });
});

describe('parseNicReference', () => {
  it('reads a network name, bridge:NAME and network:NAME', () => {
    expect(parseNicReference('default')).toEqual({ attachment: 'network', source: 'default' });
    expect(parseNicReference('bridge:br0')).toEqual({ attachment: 'bridge', source: 'br0' });
    expect(parseNicReference('network:lab-net')).toEqual({ attachment: 'network', source: 'lab-net' });
  });

  it('refuses other kinds and names that could be options or shell syntax, with INVALID_INPUT', () => {
    for (const text of [
      'vlan:5',
      'bridge:',
      '--network',
      'default;reboot',
      'bridge:br0 br1',
      'bridge:sixteen-chars-xy',
    ]) {
      expect(() => parseNicReference(text)).toThrow(expect.objectContaining({ code: ErrorCode.INVALID_INPUT }));
    }
  });
});
