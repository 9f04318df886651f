import { ErrorCode } from '@quantix/core';
import { describe, expect, it } from 'vitest';
import { uploadFileName } from './uploads.js';

// Moved from images-iso's upload.test.ts (sanitizeIsoFileName, deleted with uploadIso): the same
// names, through the one name check uploads have.
const sanitizeIsoFileName = (name: unknown) => uploadFileName(name as string, '.iso');

describe('uploadFileName (ISO uploads)', () => {
  it('keeps readable names as they are, normalised and trimmed', () => {
    expect(sanitizeIsoFileName('ubuntu-24.04.1-live-server-amd64.iso')).toBe('ubuntu-24.04.1-live-server-amd64.iso');
    expect(sanitizeIsoFileName('  Windows Server 2025 (Eval) [EN].ISO ')).toBe('Windows Server 2025 (Eval) [EN].ISO');
    expect(sanitizeIsoFileName('Débian 12.iso')).toBe('Débian 12.iso');
    // Decomposed é (e + combining acute) becomes the composed form, so one name has one spelling.
    expect(sanitizeIsoFileName('De\u0301bian.iso')).toBe('D\u00e9bian.iso');
  });

  it.each([
    ['', 'is empty'],
    ['   ', 'is empty'],
    ['../../etc/passwd.iso', 'path separator'],
    ['isos/debian.iso', 'path separator'],
    ['C:\\isos\\debian.iso', 'path separator'],
    ['debian..iso', "'..'"],
    ['..iso', "'..'"],
    ['deb\u0000ian.iso', 'control character'],
    ['deb\nian.iso', 'control character'],
    ['deb\u001bian.iso', 'control character'],
    ['deb\u0085ian.iso', 'control character'],
    ['invoice\u202Eosi.exe.iso', 'bidirectional formatting character'],
    ['deb\u2066ian.iso', 'bidirectional formatting character'],
    ['.hidden.iso', 'starts with a dot'],
    ['debian.img', 'must end in .iso'],
    ['debian.iso.partial', 'must end in .iso'],
    ['.iso', 'starts with a dot'],
    [`${'x'.repeat(252)}.iso`, 'longer than 255 bytes'],
  ])('refuses %j (%s) with INVALID_INPUT', (name, why) => {
    expect(() => sanitizeIsoFileName(name)).toThrow(expect.objectContaining({ code: ErrorCode.INVALID_INPUT }));
    expect(() => sanitizeIsoFileName(name)).toThrow(why);
  });

  it('refuses what is not a string', () => {
    expect(() => sanitizeIsoFileName(42)).toThrow(expect.objectContaining({ code: ErrorCode.INVALID_INPUT }));
  });
});
