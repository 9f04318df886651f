import type { Image } from '@quantix/core';
import { describe, expect, it } from 'vitest';
import {
  defaultRelPathForEntry,
  defaultRelPathForImport,
  defaultRelPathForUrl,
  SOURCE_LABELS,
  sourceFromImage,
  sourceToLabels,
  validateSource,
} from './source.js';

describe('download sources recorded in the row', () => {
  it('round-trips through labels, so a restart needs only the row', () => {
    const source = validateSource({
      url: 'https://mirror.example/images/x.qcow2',
      checksum: { algorithm: 'sha512', value: 'C'.repeat(128) },
      checksumUrl: 'https://mirror.example/images/SHA512SUMS',
      checksumAlgorithm: null,
    });
    const labels = sourceToLabels(source);
    expect(labels[SOURCE_LABELS.checksum]).toBe(`sha512:${'c'.repeat(128)}`);
    expect(sourceFromImage({ labels: { ...labels, other: 'kept' } } as unknown as Image)).toEqual({
      ...source,
      checksumAlgorithm: 'sha512',
    });
    expect(sourceFromImage({ labels: {} } as unknown as Image)).toBeNull();
  });

  it('refuses what a label cannot hold and URLs that name no file', () => {
    expect(() =>
      sourceToLabels({
        url: `https://m/${'a'.repeat(600)}.img`,
        checksum: null,
        checksumUrl: null,
        checksumAlgorithm: null,
      }),
    ).toThrow(expect.objectContaining({ code: 'INVALID_INPUT' }));
    expect(() =>
      validateSource({ url: 'https://m/dir/', checksum: null, checksumUrl: null, checksumAlgorithm: null }),
    ).toThrow(expect.objectContaining({ code: 'INVALID_INPUT' }));
  });

  it('derives a safe relPath from a URL', () => {
    expect(defaultRelPathForUrl('https://m/a/noble-server-cloudimg-amd64.img')).toBe(
      'images/noble-server-cloudimg-amd64.img',
    );
    expect(defaultRelPathForUrl('https://m/a/..%2F..%2Fetc%2Fshadow')).toBe('images/__.._etc_shadow');
    expect(defaultRelPathForUrl('https://m/a/.hidden.img')).toBe('images/_hidden.img');
  });

  it('names an import by its URL’s file without its compression and format, with the format it becomes', () => {
    expect(defaultRelPathForImport('https://m/a/win.vhdx.xz', 'raw')).toBe('images/win.raw');
    expect(defaultRelPathForImport('https://m/a/tiny.vmdk.gz', 'qcow2')).toBe('images/tiny.qcow2');
    expect(defaultRelPathForImport('https://m/a/app.ova', 'qcow2')).toBe('images/app.qcow2');
    expect(defaultRelPathForImport('https://m/a/disk', 'qcow2')).toBe('images/disk.qcow2');
  });

  it('names a catalog image by its entry, so entries whose URLs end alike never collide', () => {
    const a = defaultRelPathForEntry({ id: 'ubuntu-24.04', kind: 'cloud', format: 'qcow2' });
    const b = defaultRelPathForEntry({ id: 'ubuntu-22.04', kind: 'cloud', format: 'qcow2' });
    expect([a, b]).toEqual(['images/ubuntu-24.04.qcow2', 'images/ubuntu-22.04.qcow2']);
    expect(defaultRelPathForEntry({ id: 'alpine-3.20', kind: 'iso', format: 'iso' })).toBe('iso/alpine-3.20.iso');
  });
});
