import { describe, expect, it } from 'vitest';
import {
  buildConnectionCheckArgv,
  buildMountArgv,
  buildUnmountArgv,
  isExported,
  parseShowmountExports,
} from './commands.js';
import { type NfsPoolConfigInput, parseNfsPoolConfig } from './config.js';

// Golden files: each command as JSON, one argument per line, in __fixtures__/argv.
// A change to a generated command shows up as a diff of its golden file.
const golden = (name: string, argv: string[]) =>
  expect(`${JSON.stringify(argv, null, 2)}\n`).toMatchFileSnapshot(`./__fixtures__/argv/${name}.argv.json`);

const config = (input: NfsPoolConfigInput) => parseNfsPoolConfig({ id: 'p1', config: input });

describe('generated commands', () => {
  it.each<[string, NfsPoolConfigInput, string]>([
    ['mount-defaults', { server: 'nas.lan', export: '/export/isos' }, '/var/lib/quantix/pools/p1'],
    [
      'mount-v4.2-options',
      { server: '10.0.0.5', export: '/export/qVDS01', version: '4.2', options: ['hard', 'timeo=600'] },
      '/srv/nfs/qVDS01',
    ],
    [
      'mount-v3-option-string',
      { server: 'nas.lan', export: '/volume1/iso files/', version: 3, options: 'ro,nolock' },
      '/mnt/iso library',
    ],
    ['mount-ipv6', { server: '[fd00::1]', export: '/export', version: '4.1' }, '/var/lib/quantix/pools/pool-v6'],
  ])('mount: %s', async (name, input, mountPoint) => {
    await golden(name, buildMountArgv(config(input), mountPoint));
  });

  it('umount', async () => {
    await golden('umount', buildUnmountArgv('/srv/nfs/qVDS01'));
  });

  it.each<[string, NfsPoolConfigInput]>([
    ['check-showmount', { server: 'nas.lan', export: '/e' }],
    ['check-showmount-v3', { server: '127.0.0.1', export: '/e', version: '3' }],
    ['check-rpcinfo-v4', { server: '10.0.0.5', export: '/e', version: '4.2' }],
    ['check-rpcinfo-v4-ipv6', { server: 'fd00::1', export: '/e', version: '4' }],
  ])('connection check: %s', async (name, input) => {
    await golden(name, buildConnectionCheckArgv(config(input)));
  });

  it('passes hostile-looking values as single arguments, never as shell text', () => {
    const argv = buildMountArgv(config({ server: 'nas', export: '/a b/$(id)/`x`' }), '/mnt/$HOME; rm');
    expect(argv.slice(-2)).toEqual(['nas:/a b/$(id)/`x`', '/mnt/$HOME; rm']);
  });
});

describe('showmount output', () => {
  it('reads exports and their clients, paths with spaces included', () => {
    const stdout = [
      '/srv/export      127.0.0.1/32',
      '/volume1/iso files 10.0.0.0/8,192.168.1.0/24',
      '/pub (everyone)',
      '',
    ].join('\n');
    expect(parseShowmountExports(stdout)).toEqual([
      { path: '/srv/export', clients: '127.0.0.1/32' },
      { path: '/volume1/iso files', clients: '10.0.0.0/8,192.168.1.0/24' },
      { path: '/pub', clients: '(everyone)' },
    ]);
  });

  it('counts an export as served when it or a directory above it is exported', () => {
    const exports = parseShowmountExports('/srv/export 127.0.0.1/32\n');
    expect(isExported(exports, '/srv/export')).toBe(true);
    expect(isExported(exports, '/srv/export/isos')).toBe(true);
    expect(isExported(exports, '/srv/exported')).toBe(false);
    expect(isExported(exports, '/srv')).toBe(false);
  });
});
