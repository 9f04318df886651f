import { ErrorCode } from '@quantix/core';
import { describe, expect, it } from 'vitest';
import {
  createNfsPoolType,
  formatNfsSource,
  nfsPoolType,
  normalizeServer,
  parseNfsPoolConfig,
  poolMountPoint,
} from './config.js';

const parse = (config: Record<string, unknown>, id = 'p1') => parseNfsPoolConfig({ id, config });

describe('NFS pool config', () => {
  it('takes server, export, version, options and mount point, and fills in defaults', () => {
    expect(parse({ server: 'nas.lan', export: '/export/isos/' })).toEqual({
      server: 'nas.lan',
      export: '/export/isos',
      options: [],
      maxDepth: 8,
      readOnly: false,
    });
    expect(
      parse({ server: '[fd00::1]', export: '/e', version: 4.1, options: 'hard,timeo=600', mountPoint: '/srv/nfs/q' }),
    ).toMatchObject({ server: 'fd00::1', version: '4.1', options: ['hard', 'timeo=600'], mountPoint: '/srv/nfs/q' });
  });

  it.each([
    [{ export: '/e' }, 'server'],
    [{ server: 'nas', export: 'relative' }, 'export'],
    [{ server: 'nas; rm -rf /', export: '/e' }, 'server'],
    [{ server: 'nas', export: '/e', version: '5' }, 'version'],
    [{ server: 'nas', export: '/e', options: ['hard,soft'] }, 'options'],
    [{ server: 'nas', export: '/e', options: ['with space'] }, 'options'],
    [{ server: 'nas', export: '/e', version: '3', options: ['vers=4'] }, 'options'],
    [{ server: 'nas', export: '/e', mountpoint: '/srv/x' }, 'mountpoint'],
    [{ server: 'nas', exprt: '/e' }, 'exprt'],
  ])('refuses %j with INVALID_INPUT naming %s', (config, field) => {
    expect(() => parse(config)).toThrow(
      expect.objectContaining({ code: ErrorCode.INVALID_INPUT, message: expect.stringContaining(field) }),
    );
  });

  it.each(['mnt', '/srv/nfs/q/', '/srv/../etc'])(
    'refuses the mount point %j with POOL_ROOT_NOT_ALLOWED',
    (mountPoint) => {
      expect(() => parse({ server: 'nas', export: '/e', mountPoint })).toThrow(
        expect.objectContaining({ code: ErrorCode.POOL_ROOT_NOT_ALLOWED }),
      );
    },
  );

  it('has one root: the mount point, configured or under the mount root by pool id', () => {
    const config = nfsPoolType.configSchema.parse({ server: 'nas', export: '/e' });
    expect(nfsPoolType.roots(config, 'iso')).toEqual(['/var/lib/quantix/pools/iso']);
    expect(createNfsPoolType({ mountRoot: '/srv/mnt' }).roots(config, 'iso')).toEqual(['/srv/mnt/iso']);
    expect(nfsPoolType.roots({ ...config, mountPoint: '/srv/nfs/q' }, 'iso')).toEqual(['/srv/nfs/q']);
  });

  it('puts a pool without a mount point under the default root, by id', () => {
    const config = parse({ server: 'nas', export: '/e' });
    expect(poolMountPoint('pool-7', config)).toBe('/var/lib/quantix/pools/pool-7');
    expect(poolMountPoint('pool-7', config, '/mnt/q')).toBe('/mnt/q/pool-7');
    expect(poolMountPoint('pool-7', parse({ server: 'nas', export: '/e', mountPoint: '/srv/x' }))).toBe('/srv/x');
    expect(() => poolMountPoint('..', config)).toThrow(expect.objectContaining({ code: ErrorCode.INVALID_INPUT }));
  });

  it('writes sources as mount takes them and compares servers in one spelling', () => {
    expect(formatNfsSource('fd00::1', '/export')).toBe('[fd00::1]:/export');
    expect(formatNfsSource('nas.lan', '/export')).toBe('nas.lan:/export');
    expect(normalizeServer('[FD00:0:0::1]')).toBe('fd00::1');
    expect(normalizeServer('NAS.lan.')).toBe('nas.lan');
  });
});
