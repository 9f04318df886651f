import { ErrorCode } from '@quantix/core';
import { describe, expect, it } from 'vitest';
import { isTemporaryName, matchesContent } from './content.js';

describe('content types', () => {
  it('recognises ISOs by extension, in any case', () => {
    for (const name of ['debian-12.iso', 'WIN11.ISO', 'mixed.IsO', 'a.b.c.iso'])
      expect(matchesContent(name, 'iso')).toBe(true);
    for (const name of ['iso', 'debian.iso.txt', 'debian.img', 'isofile', '.iso'])
      expect(matchesContent(name, 'iso')).toBe(false);
  });

  it('recognises disk images as qcow2, raw and img', () => {
    for (const name of ['jammy.qcow2', 'disk.RAW', 'floppy.img', 'x.QCOW2'])
      expect(matchesContent(name, 'images')).toBe(true);
    for (const name of ['debian.iso', 'disk.vmdk', 'qcow2', 'disk.qcow2.bak'])
      expect(matchesContent(name, 'images')).toBe(false);
  });

  it('treats downloads and uploads in progress and hidden files as temporary, never as content', () => {
    for (const name of [
      'debian.iso.partial',
      'disk.qcow2.part',
      '.upload-4f2a.iso',
      '.hidden.iso',
      'x.iso.tmp',
      'x.iso~',
      'x.iso.crdownload',
      'DEBIAN.ISO.PARTIAL',
      'Disk.Qcow2.Part',
      'X.ISO.TMP',
      'x.iso.Download',
    ]) {
      expect(isTemporaryName(name)).toBe(true);
      expect(matchesContent(name, 'iso') || matchesContent(name, 'images')).toBe(false);
    }
    for (const name of ['debian.iso', 'WIN11.ISO', 'partial', 'x.tmp.iso', 'disk.qcow2', 'notes.txt']) {
      expect(isTemporaryName(name)).toBe(false);
    }
  });

  it('refuses an unknown content type with INVALID_INPUT', () => {
    expect(() => matchesContent('x.iso', 'videos' as never)).toThrow(
      expect.objectContaining({ code: ErrorCode.INVALID_INPUT }),
    );
  });
});
