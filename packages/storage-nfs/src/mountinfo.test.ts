import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  findPoolMount,
  nfsMounts,
  parseMountInfo,
  parseNfsSource,
  readMountTable,
  unescapeMountField,
} from './mountinfo.js';

// Mount tables in the real /proc/self/mountinfo format, as a node with NFS mounts shows them.
const fixture = (name: string) => readFileSync(new URL(`./__fixtures__/mountinfo/${name}`, import.meta.url), 'utf8');
const table = parseMountInfo(fixture('node-with-nfs.txt'));
const mounts = nfsMounts(table);

describe('parseMountInfo', () => {
  it('reads every field of a mountinfo line, optional fields included', () => {
    expect(table.find((e) => e.mountPoint === '/srv/nfs/qVDS01')).toEqual({
      mountId: 120,
      parentId: 26,
      device: '0:52',
      root: '/',
      mountPoint: '/srv/nfs/qVDS01',
      mountOptions: ['rw', 'relatime'],
      optionalFields: ['shared:62'],
      fsType: 'nfs4',
      source: '10.0.0.5:/export/qVDS01',
      superOptions: expect.arrayContaining(['vers=4.2', 'addr=10.0.0.5', 'hard']),
    });
  });

  it('decodes spaces, tabs and backslashes written as octal escapes', () => {
    expect(unescapeMountField('/mnt/iso\\040library')).toBe('/mnt/iso library');
    expect(table.map((e) => e.mountPoint)).toContain('/mnt/iso library');
    expect(table.map((e) => e.mountPoint)).toContain('/mnt/tab\tand\\backslash');
  });

  it('leaves out lines that are not mountinfo lines instead of failing the table', () => {
    expect(parseMountInfo(fixture('malformed.txt')).map((e) => e.mountPoint)).toEqual([
      '/proc',
      '/',
      '/mnt/export-copy',
    ]);
  });

  it("parses this machine's live mount table, every line of it", async () => {
    const text = readFileSync('/proc/self/mountinfo', 'utf8');
    const live = await readMountTable();
    expect(live.length).toBe(text.trim().split('\n').length);
    expect(live.some((e) => e.mountPoint === '/')).toBe(true);
    for (const entry of live) expect(entry.fsType).toMatch(/^\S+$/);
    // Whatever NFS mounts the machine has (this kernel has no NFS client: usually none) parse too.
    for (const mount of nfsMounts(live)) expect(mount.export.startsWith('/')).toBe(true);
  });
});

describe('nfsMounts', () => {
  it('finds every nfs and nfs4 mount, with server, export, version and address', () => {
    expect(mounts.map((m) => [m.fsType, m.server, m.export, m.mountPoint, m.version, m.address])).toEqual([
      ['nfs4', '10.0.0.5', '/export/qVDS01', '/srv/nfs/qVDS01', '4.2', '10.0.0.5'],
      ['nfs', 'nas.lan', '/volume1/iso files', '/mnt/iso library', '3', '192.168.1.10'],
      ['nfs4', 'fd00::1', '/export', '/var/lib/quantix/pools/pool-v6', '4.1', 'fd00::1'],
      ['nfs4', 'nas.lan', '/export/images', '/mnt/images', '4.2', '192.168.1.10'],
      ['nfs4', 'filer.lan', '/', '/mnt/filer', '4.2', '192.168.1.20'],
      ['nfs', '10.0.0.5', '/export/odd name', '/mnt/tab\tand\\backslash', '3', '10.0.0.5'],
    ]);
  });

  it('ignores filesystems that are not NFS even when their source looks like host:/path', () => {
    const points = mounts.map((m) => m.mountPoint);
    for (const notNfs of [
      '/proc/fs/nfsd',
      '/run/rpc_pipefs',
      '/home/ops/remote',
      '/mnt/windows-share',
      '/mnt/auto',
      '/',
    ]) {
      expect(points).not.toContain(notNfs);
    }
  });

  it('ignores an NFS mount hidden under another mount on the same directory', () => {
    expect(mounts.map((m) => m.mountPoint)).not.toContain('/mnt/old-nfs');
  });
});

describe('findPoolMount', () => {
  it('finds the LimiQuantix pool mounted at /srv/nfs/qVDS01, not at the standard pool path', () => {
    expect(findPoolMount(mounts, { server: '10.0.0.5', export: '/export/qVDS01' })?.root).toBe('/srv/nfs/qVDS01');
  });

  it('matches an IPv6 server whatever its spelling, with or without brackets', () => {
    for (const server of ['fd00::1', '[fd00::1]', 'FD00:0:0:0:0:0:0:1', '[fd00:0::1]']) {
      expect(findPoolMount(mounts, { server, export: '/export' })?.root).toBe('/var/lib/quantix/pools/pool-v6');
    }
  });

  it('ignores trailing and doubled slashes in the export, on either side', () => {
    expect(findPoolMount(mounts, { server: 'nas.lan', export: '/export/images' })?.root).toBe('/mnt/images');
    expect(findPoolMount(mounts, { server: 'nas.lan', export: '/export//images/' })?.root).toBe('/mnt/images');
    expect(findPoolMount(mounts, { server: '10.0.0.5', export: '/export/qVDS01/' })?.root).toBe('/srv/nfs/qVDS01');
  });

  it('finds exports and mount points with spaces in their names', () => {
    expect(findPoolMount(mounts, { server: 'nas.lan', export: '/volume1/iso files' })?.root).toBe('/mnt/iso library');
  });

  it('matches a server given by address to a mount made by host name, through addr=', () => {
    expect(findPoolMount(mounts, { server: '192.168.1.10', export: '/volume1/iso files' })?.root).toBe(
      '/mnt/iso library',
    );
  });

  it('finds a pool inside a mounted parent directory of its export', () => {
    expect(findPoolMount(mounts, { server: 'filer.lan', export: '/vol/isos' })?.root).toBe('/mnt/filer/vol/isos');
    expect(findPoolMount(mounts, { server: 'nas.lan', export: '/export/images/cloud' })?.root).toBe(
      '/mnt/images/cloud',
    );
  });

  it('finds nothing for an export that is not mounted, or is mounted from another server', () => {
    expect(findPoolMount(mounts, { server: '10.0.0.5', export: '/export/other' })).toBeNull();
    expect(findPoolMount(mounts, { server: '10.0.0.6', export: '/export/qVDS01' })).toBeNull();
    expect(findPoolMount(mounts, { server: '10.0.0.9', export: '/export/old' })).toBeNull();
    // A sibling that shares a prefix is not a parent.
    expect(findPoolMount(mounts, { server: '10.0.0.5', export: '/export/qVDS01-b' })).toBeNull();
  });

  it("prefers an exact mount over a parent one, and the pool's own mount point among equals", () => {
    const twice = nfsMounts(
      parseMountInfo(
        [
          '200 26 0:70 / /mnt/parent rw - nfs4 s:/e rw,vers=4.2,addr=10.1.1.1',
          '201 26 0:71 / /mnt/admin rw - nfs4 s:/e/p rw,vers=4.2,addr=10.1.1.1',
          '202 26 0:72 / /var/lib/quantix/pools/p rw - nfs4 s:/e/p rw,vers=4.2,addr=10.1.1.1',
        ].join('\n'),
      ),
    );
    expect(findPoolMount(twice, { server: 's', export: '/e/p' })?.root).toBe('/mnt/admin');
    expect(findPoolMount(twice, { server: 's', export: '/e/p' }, '/var/lib/quantix/pools/p')?.root).toBe(
      '/var/lib/quantix/pools/p',
    );
  });
});

describe('parseNfsSource', () => {
  it('splits host:/path and [v6]:/path, and refuses other shapes', () => {
    expect(parseNfsSource('nas:/x/')).toEqual({ server: 'nas', export: '/x' });
    expect(parseNfsSource('[fd00::1]:/export')).toEqual({ server: 'fd00::1', export: '/export' });
    expect(parseNfsSource('//fileserver/share')).toBeNull();
    expect(parseNfsSource('nas:relative')).toBeNull();
    expect(parseNfsSource('[fd00::1/export')).toBeNull();
  });
});
