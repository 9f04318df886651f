/**
 * The checks tests use before driving a program or a locale: they find what is there, and for
 * what is not they fail with the Debian package and the command to run — never an install.
 */
import { describe, expect, it } from 'vitest';
import { findOnPath, missingTools, requireLocale, requireTools } from './system.js';

describe('requireTools', () => {
  it('passes for programs on PATH and finds them where a shell would', () => {
    expect(() => requireTools({ program: 'sh', debianPackage: 'dash' })).not.toThrow();
    expect(findOnPath('sh')).toMatch(/^\/(usr\/)?bin\/sh$/);
  });

  it('names every missing program, its Debian package and one apt-get line for them all', () => {
    const tools = [
      { program: 'quantix-no-such-tool', debianPackage: 'quantix-tools' },
      { program: 'sh', debianPackage: 'dash' },
      { program: 'quantix-no-such-helper', debianPackage: 'quantix-tools' },
    ];
    expect(missingTools(tools).map((t) => t.program)).toEqual(['quantix-no-such-tool', 'quantix-no-such-helper']);
    expect(() => requireTools(...tools)).toThrow(
      'This test needs programs that are not installed: quantix-no-such-tool (Debian package quantix-tools), ' +
        'quantix-no-such-helper (Debian package quantix-tools). Install them with: apt-get install -y --no-install-recommends quantix-tools',
    );
  });
});

describe('requireLocale', () => {
  it('accepts an installed locale however its codeset is spelled', () => {
    expect(() => requireLocale('C.UTF-8')).not.toThrow();
    expect(() => requireLocale('C.utf8')).not.toThrow();
  });

  it('names the localedef command for a locale that is not there', () => {
    expect(() => requireLocale('xx_YY.UTF-8')).toThrow('localedef -i xx_YY -f UTF-8 xx_YY.UTF-8');
  });
});
