import { describe, expect, it } from 'vitest';
import type { CatalogEntry, ImageCatalog } from '../contracts/catalog.js';
import { isQuantixError } from '../errors.js';
import { CatalogRegistry } from './catalog-registry.js';

function entry(id: string, overrides: Partial<CatalogEntry> = {}): CatalogEntry {
  return {
    id,
    name: id,
    description: '',
    kind: 'cloud',
    format: 'qcow2',
    os: { family: 'linux', distribution: null, version: null, arch: 'x86_64', defaultUser: null, cloudInit: true },
    requirements: { minCpu: 1, minMemoryMiB: 512, minDiskGiB: 10, firmware: 'any' },
    sourceUrl: `https://images.example/${id}.qcow2`,
    checksum: null,
    checksumUrl: `https://images.example/SHA256SUMS`,
    checksumAlgorithm: 'sha256',
    sizeBytes: null,
    ...overrides,
  };
}

function catalog(name: string, entries: CatalogEntry[], withGet = true): ImageCatalog {
  const base: ImageCatalog = { name, list: async () => entries };
  if (!withGet) return base;
  return { ...base, get: async ({ id }) => entries.find((e) => e.id === id) };
}

describe('CatalogRegistry', () => {
  it('merges catalogs in order, a later entry replacing an earlier one with the same id', async () => {
    const builtin = catalog('builtin', [entry('ubuntu-24.04'), entry('debian-12'), entry('fedora-42')]);
    const mirror = catalog('mirror', [
      entry('debian-12', { sourceUrl: 'https://mirror.lan/debian-12.qcow2' }),
      entry('internal-app'),
    ]);
    const registry = new CatalogRegistry({ catalogs: [builtin, mirror] });

    const { entries, failures } = await registry.listDetailed();
    expect(failures).toEqual([]);
    expect(entries.map((e) => [e.id, e.catalog])).toEqual([
      ['ubuntu-24.04', 'builtin'],
      ['fedora-42', 'builtin'],
      ['debian-12', 'mirror'],
      ['internal-app', 'mirror'],
    ]);
    const debian = entries.find((e) => e.id === 'debian-12');
    expect(debian).toMatchObject({ sourceUrl: 'https://mirror.lan/debian-12.qcow2', overrides: ['builtin'] });

    // get() agrees with list(), for catalogs with and without their own get().
    const withoutGet = new CatalogRegistry({
      catalogs: [
        catalog('builtin', [entry('debian-12')], false),
        catalog('mirror', [entry('debian-12', { sourceUrl: 'https://mirror.lan/d.qcow2' })], false),
      ],
    });
    for (const reg of [registry, withoutGet]) {
      expect(await reg.get({ id: 'debian-12' })).toMatchObject({ catalog: 'mirror', overrides: ['builtin'] });
    }
    expect(await registry.get({ id: 'ubuntu-24.04' })).toMatchObject({ catalog: 'builtin', overrides: [] });
    expect(await registry.get({ id: 'nope' })).toBeUndefined();
  });

  it('filters by kind and lists as a plain ImageCatalog', async () => {
    const registry = new CatalogRegistry({
      catalogs: [catalog('mixed', [entry('cloud-a'), entry('iso-b', { kind: 'iso', format: 'iso' })])],
    });
    expect((await registry.list({ kind: 'iso' })).map((e) => e.id)).toEqual(['iso-b']);
    expect((await registry.list()).map((e) => e.id)).toEqual(['cloud-a', 'iso-b']);
  });

  it('reports a failing catalog without hiding the others', async () => {
    const broken: ImageCatalog = {
      name: 'remote',
      list: async () => {
        throw new Error('connect ECONNREFUSED 192.0.2.10:443');
      },
    };
    const registry = new CatalogRegistry({ catalogs: [catalog('builtin', [entry('ubuntu-24.04')]), broken] });
    const listing = await registry.listDetailed();
    expect(listing.entries.map((e) => e.id)).toEqual(['ubuntu-24.04']);
    expect(listing.failures).toEqual([{ catalog: 'remote', message: 'connect ECONNREFUSED 192.0.2.10:443' }]);
  });

  it('refuses two catalogs with one name, and require() names the catalogs it searched', async () => {
    expect(() => new CatalogRegistry({ catalogs: [catalog('a', []), catalog('a', [])] })).toThrow(
      expect.objectContaining({ code: 'ALREADY_EXISTS' }),
    );
    const registry = new CatalogRegistry({ catalogs: [catalog('builtin', []), catalog('mine', [])] });
    const error = await registry.require({ id: 'missing' }).catch((e: unknown) => e);
    expect(isQuantixError(error, 'NOT_FOUND')).toBe(true);
    expect((error as Error).message).toContain('builtin, mine');
  });
});
