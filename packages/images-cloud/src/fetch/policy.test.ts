import type { LookupAddress } from 'node:dns';
import { describe, expect, it } from 'vitest';
import { DEFAULT_DENIED_ADDRESSES, SourceGuard } from './policy.js';

function refusal(call: () => unknown): unknown {
  try {
    call();
  } catch (error) {
    return error;
  }
  return undefined;
}

describe('SourceGuard', () => {
  it('allows http(s) to public hosts by default and refuses other schemes and credentials', () => {
    const guard = new SourceGuard();
    expect(guard.checkUrl('https://cloud-images.ubuntu.com/noble/current/x.img').hostname).toBe(
      'cloud-images.ubuntu.com',
    );
    expect(refusal(() => guard.checkUrl('ftp://mirror.example/x.img'))).toMatchObject({
      code: 'SOURCE_NOT_ALLOWED',
      details: { reason: 'scheme' },
    });
    expect(refusal(() => guard.checkUrl('https://user:pw@mirror.example/x.img'))).toMatchObject({
      details: { reason: 'credentials' },
    });
    expect(refusal(() => guard.checkUrl('not a url'))).toMatchObject({ code: 'INVALID_INPUT' });
  });

  it.each([
    'http://169.254.169.254/latest/meta-data/',
    'http://[fd00:ec2::254]/latest/meta-data/',
    'http://[::ffff:a9fe:a9fe]/',
    'http://127.1/',
    'http://0x7f000001/',
    'http://10.0.0.5/',
    'http://192.168.1.1/',
    'http://172.16.0.1/',
    'http://100.64.0.1/',
    'http://[::1]/',
    'http://[fe80::1]/',
    'http://0.0.0.0/',
  ])('refuses %s under the default policy, by address', (url) => {
    expect(refusal(() => new SourceGuard().checkUrl(url))).toMatchObject({
      code: 'SOURCE_NOT_ALLOWED',
      details: { reason: 'address' },
    });
  });

  it('lets allowAddresses open a denied range (a LAN mirror) without opening the rest', () => {
    const guard = new SourceGuard({ allowAddresses: ['10.20.0.0/16'] });
    expect(guard.checkUrl('http://10.20.3.4/x.img').hostname).toBe('10.20.3.4');
    expect(refusal(() => guard.checkUrl('http://10.21.0.1/x.img'))).toMatchObject({ code: 'SOURCE_NOT_ALLOWED' });
    expect(refusal(() => guard.checkUrl('http://169.254.169.254/'))).toMatchObject({ code: 'SOURCE_NOT_ALLOWED' });
  });

  it('matches host patterns and port lists', () => {
    const guard = new SourceGuard({
      allowHosts: ['*.ubuntu.com', 'dl.rockylinux.org'],
      denyHosts: ['evil.ubuntu.com'],
      allowPorts: [443],
    });
    expect(guard.checkUrl('https://cloud-images.ubuntu.com/x').port).toBe('');
    expect(refusal(() => guard.checkUrl('https://ubuntu.com.evil.org/x'))).toMatchObject({
      details: { reason: 'host' },
    });
    expect(refusal(() => guard.checkUrl('https://evil.ubuntu.com/x'))).toMatchObject({ details: { reason: 'host' } });
    expect(refusal(() => guard.checkUrl('http://dl.rockylinux.org/x'))).toMatchObject({
      details: { reason: 'port', port: 80 },
    });
    expect(refusal(() => guard.checkUrl('https://dl.rockylinux.org:8443/x'))).toMatchObject({
      details: { reason: 'port', port: 8443 },
    });
  });

  it('refuses a malformed address range in the policy itself', () => {
    expect(() => new SourceGuard({ denyAddresses: ['10.0.0.0/33'] })).toThrow(
      expect.objectContaining({ code: 'INVALID_INPUT' }),
    );
    expect(() => new SourceGuard({ allowAddresses: ['mirror.lan'] })).toThrow(
      expect.objectContaining({ code: 'INVALID_INPUT' }),
    );
    expect(DEFAULT_DENIED_ADDRESSES).toContain('169.254.0.0/16');
  });

  it('resolves host names (localhost here) and checks every address, before and at connect time', async () => {
    const guard = new SourceGuard();
    await expect(guard.checkSource('http://localhost:9/x.img')).rejects.toMatchObject({
      code: 'SOURCE_NOT_ALLOWED',
      details: { reason: 'address' },
    });
    const lookup = guard.connectLookup('http://localhost:9/x.img');
    const error = await new Promise((resolve) => lookup('localhost', { all: true }, (e) => resolve(e)));
    expect(error).toMatchObject({ code: 'SOURCE_NOT_ALLOWED' });

    const open = new SourceGuard({ allowAddresses: ['127.0.0.0/8', '::1'] });
    await expect(open.checkSource('http://localhost:9/x.img')).resolves.toBeInstanceOf(URL);
    const addresses = await new Promise<LookupAddress[]>((resolve, reject) =>
      open.connectLookup('http://localhost:9/')('localhost', { all: true }, (e, a) =>
        e ? reject(e) : resolve(a as LookupAddress[]),
      ),
    );
    expect(addresses.length).toBeGreaterThan(0);
  });
});

describe('SourceGuard: addresses inside IPv6 and exact URL prefixes', () => {
  it.each([
    ['http://[::7f00:1]/', '127.0.0.1'],
    ['http://[::ffff:0:7f00:1]/', '127.0.0.1'],
    ['http://[::ffff:127.0.0.1]/', '127.0.0.1'],
    ['http://[2002:7f00:1::1]/', '127.0.0.1'],
    ['http://[64:ff9b::7f00:1]/', '127.0.0.1'],
    ['http://[64:ff9b::a9fe:a9fe]/', '169.254.169.254'],
    ['http://[2002:a9fe:a9fe::]/', '169.254.169.254'],
    ['http://[::a00:5]/', '10.0.0.5'],
    // Teredo: the client address is stored inverted in the last 32 bits.
    ['http://[2001:0:4136:e378:8000:63bf:80ff:fffe]/', '127.0.0.1'],
  ])('judges %s by the IPv4 address it carries (%s)', (url, v4) => {
    // Opening the IPv6 ranges themselves must not open what they carry.
    const guard = new SourceGuard({ denyAddresses: DEFAULT_DENIED_ADDRESSES.filter((r) => r.includes('.')) });
    expect(refusal(() => guard.checkUrl(url))).toMatchObject({
      code: 'SOURCE_NOT_ALLOWED',
      details: { reason: 'address', address: v4 },
    });
  });

  it('lets a public IPv4 inside 6to4 through, like the IPv4 itself', () => {
    const guard = new SourceGuard({ denyAddresses: DEFAULT_DENIED_ADDRESSES.filter((r) => r.includes('.')) });
    expect(guard.checkUrl('http://[2002:5db8:d822::1]/x.img').hostname).toBe('[2002:5db8:d822::1]');
  });

  it('allows exactly the URLs under an allowed prefix, not the rest of its host', async () => {
    const guard = new SourceGuard({ allowUrlPrefixes: ['http://localhost:8080/api/v1/uploads/'] });
    await expect(guard.checkSource('http://localhost:8080/api/v1/uploads/abc?token=x')).resolves.toBeInstanceOf(URL);
    for (const url of [
      'http://localhost:8080/api/v1/pools',
      'http://localhost:8080/api/v1/uploads/../pools',
      'http://localhost:8080/api/v1/uploads/%2e%2e/%2e%2e/healthz',
      'http://localhost:5432/api/v1/uploads/abc',
      'https://localhost:8080/api/v1/uploads/abc',
      'http://user:pw@localhost:8080/api/v1/uploads/abc',
    ]) {
      await expect(guard.checkSource(url), url).rejects.toMatchObject({ code: 'SOURCE_NOT_ALLOWED' });
    }
    expect(() => new SourceGuard({ allowUrlPrefixes: ['http://cp/api/v1/uploads'] })).toThrow(/must end with/);
  });
});
