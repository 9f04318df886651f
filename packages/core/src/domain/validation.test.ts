import { describe, expect, it } from 'vitest';
import { ErrorCode, isQuantixError } from '../errors.js';
import { validateDiscoveredImage, validateImagePatch, validateNewImage } from './image.js';
import { validateNewNode } from './node.js';
import { validateNewPool, validatePoolPatch } from './pool.js';
import { hasUnsafeNameCharacter, replaceUnsafeNameCharacters } from './validation.js';
import { validateNewVm } from './vm.js';

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (error) {
    return isQuantixError(error) ? error.code : 'not a QuantixError';
  }
  return undefined;
}

// Each shows one name as another, or breaks the line it is printed on.
const UNSAFE = [
  ['U+202E right-to-left override', 'invoice\u202Eosi.exe'],
  ['U+2066 left-to-right isolate', 'a\u2066b'],
  ['U+2069 pop directional isolate', 'a\u2069b'],
  ['U+200F right-to-left mark', 'a\u200Fb'],
  ['U+061C Arabic letter mark', 'a\u061Cb'],
  ['U+0000 NUL', 'a\u0000b'],
  ['U+001B escape', 'a\u001B[31mred'],
  ['newline', 'two\nlines'],
  ['U+007F delete', 'a\u007Fb'],
  ['U+0085 next line (C1)', 'a\u0085b'],
  ['U+009B CSI (C1)', 'a\u009Bb'],
  ['U+2028 line separator', 'a\u2028b'],
] as const;

describe('names refuse control and bidirectional formatting characters', () => {
  it.each(UNSAFE)('refuses %s in pool, image and node names and label keys', (_what, name) => {
    expect(hasUnsafeNameCharacter(name)).toBe(true);
    expect(codeOf(() => validateNewPool({ name, type: 'local' }))).toBe(ErrorCode.INVALID_INPUT);
    expect(codeOf(() => validatePoolPatch({ name }))).toBe(ErrorCode.INVALID_INPUT);
    expect(codeOf(() => validateNewPool({ name: 'ok', type: 'local', labels: { [name]: 'v' } }))).toBe(
      ErrorCode.INVALID_INPUT,
    );
    expect(codeOf(() => validateNewImage({ name, kind: 'iso' }))).toBe(ErrorCode.INVALID_INPUT);
    expect(codeOf(() => validateImagePatch({ name }))).toBe(ErrorCode.INVALID_INPUT);
    expect(codeOf(() => validateNewNode({ hostname: name }))).toBe(ErrorCode.INVALID_INPUT);
    expect(codeOf(() => validateNewNode({ hostname: 'hv1', labels: { [name]: 'x' } }))).toBe(ErrorCode.INVALID_INPUT);
    expect(codeOf(() => validateNewVm({ name, nodeId: 'n1' }))).toBe(ErrorCode.INVALID_INPUT);
  });

  it('names the field and says why', () => {
    try {
      validateNewPool({ name: 'isos\u202Egpj', type: 'local' });
      expect.unreachable();
    } catch (error) {
      expect(isQuantixError(error) && error.details.issues).toEqual([
        { path: 'name', message: expect.stringContaining('bidirectional') },
      ]);
    }
  });

  it('keeps names in any script, with accents, emoji and spaces', () => {
    for (const name of ['ISOs für Ubuntu', 'イメージ', 'صور', 'images 🚀', 'a\tb'.replace('\t', ' ')]) {
      expect(hasUnsafeNameCharacter(name)).toBe(false);
      expect(validateNewPool({ name, type: 'local' }).name).toBe(name);
    }
  });

  it('replaces them in names taken from files instead of failing the scan', () => {
    const found = validateDiscoveredImage({
      poolId: 'p',
      relPath: 'isos/evil\u202Eosi.exe.iso',
      kind: 'iso',
      sizeBytes: 1,
    });
    expect(found.name).toBe('evil\uFFFDosi.exe.iso');
    expect(found.relPath).toBe('isos/evil\u202Eosi.exe.iso');
    const named = validateDiscoveredImage({
      poolId: 'p',
      relPath: 'a.iso',
      kind: 'iso',
      sizeBytes: 1,
      name: 'X\u0007Y',
    });
    expect(named.name).toBe('X\uFFFDY');
    expect(replaceUnsafeNameCharacters('ok')).toBe('ok');
  });
});
