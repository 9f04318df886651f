import { describe, expect, it } from 'vitest';
import { ErrorCode, isQuantixError } from '../errors.js';
import { assertRelPath, isValidRelPath } from './paths.js';

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (error) {
    return isQuantixError(error) ? error.code : 'not a QuantixError';
  }
  return undefined;
}

describe('assertRelPath', () => {
  it.each([
    'ubuntu.iso',
    'iso/debian-12.iso',
    'a b/ç/日本.qcow2',
    'deep/er/and/deeper/x.img',
    '..hidden-but-not-dotdot.iso',
  ])('accepts the pool-relative path %j', (relPath) => {
    expect(assertRelPath(relPath)).toBe(relPath);
  });

  it.each([
    ['', 'empty'],
    ['/etc/passwd', 'absolute'],
    ['../outside.iso', 'parent at start'],
    ['iso/../../outside.iso', 'parent in the middle'],
    ['iso/..', 'parent at end'],
    ['./x.iso', 'dot segment'],
    ['a//b.iso', 'empty segment'],
    ['trailing/', 'trailing slash'],
    ['C:\\Windows\\x.iso', 'windows absolute'],
    ['a\\..\\b', 'backslash separator'],
    ['nul\0byte', 'NUL byte'],
    ['x'.repeat(5000), 'too long'],
  ])('refuses %j (%s) with PATH_ESCAPES_POOL', (relPath) => {
    expect(codeOf(() => assertRelPath(relPath))).toBe(ErrorCode.PATH_ESCAPES_POOL);
    expect(isValidRelPath(relPath)).toBe(false);
  });

  it('names the offending path in the message', () => {
    expect(() => assertRelPath('../etc/shadow')).toThrow(/"\.\.\/etc\/shadow" contains '\.\.'/);
  });
});
