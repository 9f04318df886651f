import { ErrorCode } from '@quantix/core';
import { describe, expect, it } from 'vitest';
import { buildNoCloudSeed } from './cloud-init.js';

const KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPPQNAluafk1kgslOYLx6UGtMCWRPwyyCISxHyzri6ti ada@laptop';

describe('buildNoCloudSeed', () => {
  it('writes hostname, user and SSH keys as #cloud-config, and the instance id as meta-data', () => {
    const seed = buildNoCloudSeed({
      instanceId: 'vm-0001',
      config: {
        hostname: 'web-01.example.org',
        user: { name: 'ada', sshAuthorizedKeys: [KEY] },
        sshAuthorizedKeys: [KEY],
      },
    });
    expect(seed.userData.startsWith('#cloud-config\n')).toBe(true);
    expect(JSON.parse(seed.userData.slice('#cloud-config\n'.length))).toEqual({
      hostname: 'web-01',
      fqdn: 'web-01.example.org',
      ssh_pwauth: false,
      ssh_authorized_keys: [KEY],
      users: [
        'default',
        {
          name: 'ada',
          sudo: 'ALL=(ALL) NOPASSWD:ALL',
          shell: '/bin/bash',
          lock_passwd: true,
          ssh_authorized_keys: [KEY],
        },
      ],
    });
    expect(JSON.parse(seed.metaData)).toEqual({ 'instance-id': 'vm-0001', 'local-hostname': 'web-01.example.org' });
  });

  it.each([
    ['a hostname with YAML in it', { hostname: 'web\nruncmd: [reboot]' }],
    ['a hostname with a space', { hostname: 'web 01' }],
    ['a key with a second line', { hostname: 'h', sshAuthorizedKeys: [`${KEY}\nruncmd: [reboot]`] }],
    ['something that is not a key', { hostname: 'h', sshAuthorizedKeys: ['hello'] }],
    ['a user name with shell syntax', { hostname: 'h', user: { name: 'root;reboot', sshAuthorizedKeys: [] } }],
  ])('refuses %s with INVALID_INPUT', (_what, config) => {
    expect(() => buildNoCloudSeed({ instanceId: 'i', config })).toThrow(
      expect.objectContaining({ code: ErrorCode.INVALID_INPUT }),
    );
  });
});
