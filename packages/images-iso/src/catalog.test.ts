import { CatalogRegistry, ErrorCode, type ImageCatalog } from '@quantix/core';
import { describe, expect, it } from 'vitest';
import { createIsoCatalog, ISO_CATALOG_ENTRIES, ISO_CATALOG_NAME, IsoCatalog } from './catalog.js';

describe('the ISO catalog', () => {
  it('offers ISOs only, each with an http(s) source and a checksum file to verify it against', async () => {
    const catalog = createIsoCatalog();
    expect(catalog.name).toBe(ISO_CATALOG_NAME);
    const entries = await catalog.list();
    expect(entries.length).toBe(ISO_CATALOG_ENTRIES.length);
    expect(new Set(entries.map((e) => e.id)).size).toBe(entries.length);
    for (const entry of entries) {
      expect(entry, entry.id).toMatchObject({ kind: 'iso', format: 'iso', checksumAlgorithm: 'sha256' });
      expect(entry.id).toMatch(/-iso$/);
      expect(new URL(entry.sourceUrl).protocol).toBe('https:');
      expect(new URL(entry.checksumUrl as string).protocol).toBe('https:');
      // The checksum file sits beside the ISO, where the distribution publishes it.
      expect(new URL(entry.checksumUrl as string).pathname.replace(/[^/]*$/, '')).toBe(
        new URL(entry.sourceUrl).pathname.replace(/[^/]*$/, ''),
      );
      expect(entry.os.family).toBe('linux');
      expect(entry.os.distribution).toBeTruthy();
      expect(entry.os.version).toBeTruthy();
    }
    expect(await catalog.list({ kind: 'cloud' })).toEqual([]);
    expect(await catalog.get({ id: 'debian-12-netinst-amd64-iso' })).toMatchObject({
      os: { distribution: 'debian', version: '12' },
    });
    expect(await catalog.get({ id: 'nope' })).toBeUndefined();
  });

  it('takes a site its own entries, checked when the catalog is made', () => {
    const mirror = new IsoCatalog({
      name: 'site-mirror',
      entries: [
        {
          id: 'debian-12-netinst-amd64-iso',
          name: 'Debian 12 from our mirror',
          os: {
            family: 'linux',
            distribution: 'debian',
            version: '12',
            arch: 'x86_64',
            defaultUser: null,
            cloudInit: false,
          },
          requirements: { minCpu: 1, minMemoryMiB: 1024, minDiskGiB: 10, firmware: 'any' },
          sourceUrl: 'http://mirror.example.internal/debian-12.7.0-amd64-netinst.iso',
          checksumUrl: 'http://mirror.example.internal/SHA256SUMS',
        },
      ],
    });
    expect(mirror.name).toBe('site-mirror');
    const base = ISO_CATALOG_ENTRIES[0] as (typeof ISO_CATALOG_ENTRIES)[number];
    for (const [bad, why] of [
      [{ ...base, id: 'Not An Id' }, 'id must be'],
      [{ ...base, name: ' ' }, 'name is empty'],
      [{ ...base, sourceUrl: 'ftp://example.org/x.iso' }, 'sourceUrl must be an http(s) URL'],
      [{ ...base, checksumUrl: 'not a url' }, 'checksumUrl is not a URL'],
    ] as const) {
      expect(() => new IsoCatalog({ entries: [bad] })).toThrow(
        expect.objectContaining({ code: ErrorCode.INVALID_INPUT }),
      );
      expect(() => new IsoCatalog({ entries: [bad] })).toThrow(why);
    }
    expect(() => new IsoCatalog({ entries: [base, base] })).toThrow(
      expect.objectContaining({ code: ErrorCode.ALREADY_EXISTS }),
    );
  });

  it('merges with a cloud image catalog without replacing its entries, and a site mirror overrides by id', async () => {
    const cloud: ImageCatalog = {
      name: 'cloud',
      list: async () => [
        {
          id: 'debian-12',
          name: 'Debian 12 cloud image',
          description: '',
          kind: 'cloud',
          format: 'qcow2',
          os: {
            family: 'linux',
            distribution: 'debian',
            version: '12',
            arch: 'x86_64',
            defaultUser: 'debian',
            cloudInit: true,
          },
          requirements: { minCpu: 1, minMemoryMiB: 512, minDiskGiB: 10, firmware: 'any' },
          sourceUrl: 'https://cloud.debian.org/images/cloud/bookworm/latest/debian-12-generic-amd64.qcow2',
          checksum: null,
          checksumUrl: 'https://cloud.debian.org/images/cloud/bookworm/latest/SHA512SUMS',
          checksumAlgorithm: 'sha512',
          sizeBytes: null,
        },
      ],
    };
    const mirror = new IsoCatalog({
      name: 'mirror',
      entries: [
        {
          ...(ISO_CATALOG_ENTRIES[2] as (typeof ISO_CATALOG_ENTRIES)[number]),
          sourceUrl: 'https://mirror.example/debian.iso',
        },
      ],
    });
    const registry = new CatalogRegistry({ catalogs: [cloud, createIsoCatalog(), mirror] });
    const { entries } = await registry.listDetailed();
    expect(entries.filter((e) => e.kind === 'cloud').map((e) => e.id)).toEqual(['debian-12']);
    expect(entries.filter((e) => e.kind === 'iso')).toHaveLength(ISO_CATALOG_ENTRIES.length);
    expect(entries.find((e) => e.id === 'debian-12-netinst-amd64-iso')).toMatchObject({
      catalog: 'mirror',
      overrides: [ISO_CATALOG_NAME],
      sourceUrl: 'https://mirror.example/debian.iso',
    });
  });
});
