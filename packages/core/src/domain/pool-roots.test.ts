import { describe, expect, it } from 'vitest';
import { ErrorCode, isQuantixError, type QuantixError } from '../errors.js';
import {
  checkPoolRoot,
  checkPoolRootShape,
  createPoolRootPolicy,
  DEFAULT_POOL_ROOTS,
  findOverlappingPool,
  isNormalizedAbsolutePath,
  poolRootOverlaps,
} from './pool-roots.js';

function refusal(fn: () => unknown): QuantixError | undefined {
  try {
    fn();
  } catch (error) {
    if (isQuantixError(error)) return error;
    throw error;
  }
  return undefined;
}

describe('pool root policy', () => {
  const policy = createPoolRootPolicy({
    allowedRoots: ['/work/qx/pools', ...DEFAULT_POOL_ROOTS],
    protectedPaths: ['/work/qx'],
  });

  it.each([
    '/srv',
    '/srv/isos',
    '/srv/nfs/qVDS01',
    '/var/lib/quantix',
    '/var/lib/quantix/pools/nfs-iso',
    '/work/qx/pools',
    '/work/qx/pools/local',
  ])('allows %s', (path) => {
    expect(checkPoolRoot(path, policy)).toBe(path);
  });

  it.each([
    ['/', 'protected', 'is the system directory /'],
    ['/etc', 'protected', 'is the system directory /etc'],
    ['/etc/ssl', 'protected', 'lies inside the system directory /etc'],
    ['/usr/share/isos', 'protected', 'lies inside the system directory /usr'],
    ['/lib64', 'protected', 'is the system directory /lib64'],
    ['/root/isos', 'protected', 'lies inside the system directory /root'],
    ['/var/lib/postgresql/15/main', 'protected', 'lies inside the system directory /var/lib/postgresql'],
    ['/var', 'protected', 'contains the system directory /var/lib/apt'],
    ['/var/lib', 'protected', 'contains the system directory /var/lib/apt'],
    ['/work/qx', 'protected', 'is the protected directory /work/qx'],
    ['/work', 'protected', 'contains the protected directory /work/qx'],
    ['/work/qx/db', 'protected', 'lies inside the protected directory /work/qx'],
    ['/tmp/pool', 'outside', 'is outside the allowed pool roots'],
    ['/srvx', 'outside', 'is outside the allowed pool roots'],
    ['srv/isos', 'not-absolute', 'is not an absolute path'],
    ['../../etc', 'not-absolute', 'is not an absolute path'],
    ['/srv/../etc', 'not-normalized', 'it would be /etc'],
    ['/srv/isos/', 'not-normalized', 'it would be /srv/isos'],
    ['/srv//isos', 'not-normalized', 'it would be /srv/isos'],
    ['/srv/./isos', 'not-normalized', 'it would be /srv/isos'],
  ])('refuses %s with POOL_ROOT_NOT_ALLOWED (%s)', (path, reason, says) => {
    const error = refusal(() => checkPoolRoot(path, policy, 'config'));
    expect(error?.code).toBe(ErrorCode.POOL_ROOT_NOT_ALLOWED);
    expect(error?.message).toContain(says);
    expect(error?.details).toMatchObject({ path, reason, field: 'config', allowedRoots: policy.allowedRoots });
  });

  it('opens a protected directory only below an allowed root that lies strictly inside it', () => {
    // The data dir under /root: its pools/ is allowed, nothing else of /root is.
    const underRoot = createPoolRootPolicy({
      allowedRoots: ['/root/.quantix/pools'],
      protectedPaths: ['/root/.quantix'],
    });
    expect(checkPoolRoot('/root/.quantix/pools/local', underRoot)).toBe('/root/.quantix/pools/local');
    expect(refusal(() => checkPoolRoot('/root/.quantix', underRoot))?.code).toBe(ErrorCode.POOL_ROOT_NOT_ALLOWED);
    expect(refusal(() => checkPoolRoot('/root/.ssh', underRoot))?.code).toBe(ErrorCode.POOL_ROOT_NOT_ALLOWED);
    // /srv is allowed, but a data dir inside it stays closed except for its pools/.
    const inSrv = createPoolRootPolicy({ allowedRoots: ['/srv/qx/pools', '/srv'], protectedPaths: ['/srv/qx'] });
    expect(checkPoolRoot('/srv/qx/pools/a', inSrv)).toBe('/srv/qx/pools/a');
    expect(refusal(() => checkPoolRoot('/srv/qx/db', inSrv))?.message).toContain('lies inside the protected directory');
    expect(refusal(() => checkPoolRoot('/srv', inSrv))?.message).toContain('contains the protected directory /srv/qx');
  });

  it('refuses allowed roots that are not absolute and normalized, or that are or hold a system directory', () => {
    for (const bad of [['/'], ['/etc'], ['/var'], ['relative'], ['/srv/'], ['/srv/../etc'], []]) {
      expect(refusal(() => createPoolRootPolicy({ allowedRoots: bad }))?.code).toBe(ErrorCode.INVALID_INPUT);
    }
    expect(createPoolRootPolicy().allowedRoots).toEqual(DEFAULT_POOL_ROOTS);
    expect(createPoolRootPolicy({ allowedRoots: ['/data/isos', '/data/isos'] }).allowedRoots).toEqual(['/data/isos']);
  });

  it('tells normalized absolute paths from others', () => {
    expect(['/', '/a', '/a/b'].every(isNormalizedAbsolutePath)).toBe(true);
    expect(['', 'a', '/a/', '//a', '/a/./b', '/a/../b', '/a\0b', '/a\u202eb'].some(isNormalizedAbsolutePath)).toBe(
      false,
    );
  });

  it('checks the shape alone where there is no policy: absolute and normalized', () => {
    expect(checkPoolRootShape('/anywhere/at/all')).toBe('/anywhere/at/all');
    for (const path of ['relative/dir', '/a/../b', '/a/']) {
      expect(refusal(() => checkPoolRootShape(path, 'path'))?.details).toMatchObject({ path, field: 'path' });
    }
  });
});

describe('findOverlappingPool', () => {
  const media = { id: 'm', name: 'media', roots: ['/srv/media'] };
  const named = (roots: string[]) => ({ id: 'p', name: 'p', roots });

  it.each([
    ['/srv/media', 'is also'],
    ['/srv/media/isos', 'lies inside'],
    ['/srv', 'contains'],
  ])('finds %s meeting /srv/media (%s)', (root, how) => {
    const overlap = findOverlappingPool(named([root]), [media]);
    expect(overlap).toEqual({ other: media, root, otherRoot: '/srv/media' });
    const error = poolRootOverlaps(named([root]), overlap as NonNullable<typeof overlap>, {
      id: 'n-1',
      hostname: 'hv1',
    });
    expect(error.code).toBe(ErrorCode.POOL_ROOT_OVERLAPS);
    expect(error.message).toContain(`Pool p's root ${root} ${how} pool media's root /srv/media on node hv1`);
    expect(error.details).toMatchObject({ nodeId: 'n-1', overlaps: { poolId: 'm', root: '/srv/media' } });
  });

  it('lets pools beside each other be, and never compares a pool with itself', () => {
    expect(findOverlappingPool(named(['/srv/media-2', '/srv/med']), [media])).toBeNull();
    expect(findOverlappingPool(media, [media])).toBeNull();
  });
});
