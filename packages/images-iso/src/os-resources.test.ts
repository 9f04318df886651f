import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createOsResourcesDatabase } from './os-resources.js';

describe('OS resources from osinfo-db', () => {
  // The Debian package osinfo-db (2022-12): Ubuntu up to 22.10, no 24.04.
  const installed = createOsResourcesDatabase({ dir: '/usr/share/osinfo' });
  const GIB_MIB = 1024;

  it('gives the minimum and recommended resources of a release it lists, with its osinfo id', async () => {
    const jammy = await installed.resourcesFor({ distribution: 'ubuntu', version: '22.04', arch: 'x86_64' });
    expect(jammy).toEqual({
      osId: 'http://ubuntu.com/ubuntu/22.04',
      name: 'Ubuntu 22.04 LTS',
      exact: true,
      basedOn: 'ubuntu22.04',
      minimum: { cpus: 1, memoryMiB: 2 * GIB_MIB, diskGiB: 10 },
      recommended: { cpus: null, memoryMiB: 4 * GIB_MIB, diskGiB: 25 },
    });
    // By short id, as ISO identification records it.
    expect(
      (await installed.resourcesFor({ shortId: 'win10', distribution: null, version: null, arch: 'x86_64' }))?.minimum,
    ).toEqual({
      cpus: 1,
      memoryMiB: 2 * GIB_MIB,
      diskGiB: 20,
    });
  });

  it('gives a release newer than the database the figures of the newest one before it, and says so', async () => {
    const noble = await installed.resourcesFor({ distribution: 'Ubuntu', version: '24.04', arch: 'x86_64' });
    expect(noble).toMatchObject({ osId: 'http://ubuntu.com/ubuntu/24.04', exact: false, basedOn: 'ubuntu22.10' });
    expect(noble?.recommended?.memoryMiB).toBe(4 * GIB_MIB);
    expect(await installed.resourcesFor({ distribution: 'tiny', version: '1', arch: null })).toBeNull();
  });

  const dir = mkdtempSync(join(tmpdir(), 'quantix-osinfo-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('takes what an OS does not list from the OS it derives from', async () => {
    mkdirSync(join(dir, 'os', 'example.org'), { recursive: true });
    const os = (version: string, body: string) =>
      `<libosinfo version="0.0.1"><os id="http://example.org/ex/${version}"><short-id>ex${version}</short-id><name>Ex ${version}</name><version>${version}</version><distro>ex</distro>${body}</os></libosinfo>`;
    writeFileSync(
      join(dir, 'os', 'example.org', 'ex-1.xml'),
      os(
        '1',
        '<resources arch="all"><minimum><n-cpus>2</n-cpus><ram>1073741824</ram></minimum><recommended><n-cpus>4</n-cpus><ram>4294967296</ram><storage>42949672960</storage></recommended></resources>',
      ),
    );
    writeFileSync(
      join(dir, 'os', 'example.org', 'ex-2.xml'),
      os(
        '2',
        '<derives-from id="http://example.org/ex/1"/><resources arch="all"><minimum><n-cpus>1</n-cpus><ram>536870912</ram></minimum></resources>',
      ),
    );
    const ex2 = await createOsResourcesDatabase({ dir }).resourcesFor({ distribution: 'ex', version: '2', arch: null });
    expect(ex2).toMatchObject({
      exact: true,
      minimum: { cpus: 1, memoryMiB: 512, diskGiB: null },
      recommended: { cpus: 4, memoryMiB: 4096, diskGiB: 40 },
    });
  });
});
