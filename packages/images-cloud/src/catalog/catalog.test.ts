import { CatalogRegistry } from '@quantix/core';
import { describe, expect, it } from 'vitest';
import { BUILTIN_CATALOG_NAME, createBuiltinCatalog } from './builtin.js';
import { defineCatalogEntry, StaticImageCatalog } from './static-catalog.js';

describe('built-in catalog', () => {
  it("offers LimiQuantix's distributions, each with a checksum file, OS info, default user and requirements", async () => {
    const entries = await createBuiltinCatalog().list();
    expect(entries.map((e) => e.id)).toEqual([
      'ubuntu-22.04',
      'ubuntu-24.04',
      'debian-12',
      'rocky-9',
      'almalinux-9',
      'fedora-42',
      'centos-stream-9',
      'opensuse-leap-15.6',
    ]);
    for (const entry of entries) {
      expect(entry.sourceUrl).toMatch(/^https:\/\//);
      expect(entry.checksumUrl).toMatch(/^https:\/\//);
      expect(entry.checksumAlgorithm).toMatch(/^sha(256|512)$/);
      expect(entry).toMatchObject({
        kind: 'cloud',
        format: 'qcow2',
        os: { family: 'linux', arch: 'x86_64', cloudInit: true },
      });
      expect(entry.os.defaultUser).toBeTruthy();
      expect(entry.requirements.minDiskGiB).toBeGreaterThan(0);
    }
    expect(entries.find((e) => e.id === 'debian-12')).toMatchObject({
      checksumAlgorithm: 'sha512',
      os: { defaultUser: 'debian' },
    });
    expect(entries.find((e) => e.id === 'centos-stream-9')?.os.defaultUser).toBe('cloud-user');
  });
});

describe('catalogs of your own', () => {
  it('fills defaults and validates entries when the catalog is made', () => {
    const entry = defineCatalogEntry({
      id: 'acme-base-2026',
      name: 'ACME base image',
      sourceUrl: 'https://mirror.acme.lan/acme-base-2026.qcow2',
      checksum: { algorithm: 'sha256', value: 'AB'.repeat(32) },
    });
    expect(entry).toMatchObject({
      kind: 'cloud',
      format: 'qcow2',
      checksum: { algorithm: 'sha256', value: 'ab'.repeat(32) },
      checksumUrl: null,
      os: { family: 'linux', cloudInit: true },
      requirements: { minCpu: 1, minMemoryMiB: 0, minDiskGiB: 0, firmware: 'any' },
    });
  });

  it.each([
    [{ id: 'x', name: 'x', sourceUrl: 'https://m/x.img' }, 'checksum'],
    [{ id: 'x', name: 'x', sourceUrl: 'ftp://m/x.img', checksumUrl: 'https://m/SUMS' }, 'sourceUrl'],
    [{ id: 'Bad Id', name: 'x', sourceUrl: 'https://m/x.img', checksumUrl: 'https://m/SUMS' }, 'id'],
    [
      { id: 'x', name: 'x', sourceUrl: 'https://m/x.img', checksum: { algorithm: 'sha256', value: 'abc' } },
      'checksum.value',
    ],
  ])('refuses a broken entry with INVALID_INPUT naming the field (%#)', (input, path) => {
    expect(() => defineCatalogEntry(input as never)).toThrow(
      expect.objectContaining({
        code: 'INVALID_INPUT',
        details: { issues: expect.arrayContaining([expect.objectContaining({ path })]) },
      }),
    );
  });

  it('refuses an id listed twice, and a user catalog can replace a built-in entry through the registry', async () => {
    const mirror = {
      id: 'ubuntu-24.04',
      name: 'Ubuntu 24.04 (LAN mirror)',
      sourceUrl: 'http://10.0.0.2/noble.img',
      checksumUrl: 'http://10.0.0.2/SHA256SUMS',
    };
    expect(() => new StaticImageCatalog({ name: 'dup', entries: [mirror, mirror] })).toThrow(
      expect.objectContaining({ code: 'ALREADY_EXISTS' }),
    );
    const registry = new CatalogRegistry({
      catalogs: [createBuiltinCatalog(), new StaticImageCatalog({ name: 'lan', entries: [mirror] })],
    });
    expect(await registry.get({ id: 'ubuntu-24.04' })).toMatchObject({
      sourceUrl: 'http://10.0.0.2/noble.img',
      catalog: 'lan',
      overrides: [BUILTIN_CATALOG_NAME],
    });
    expect(await registry.list()).toHaveLength(8);
  });
});
