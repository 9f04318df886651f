import { describe, expect, it } from 'vitest';
import { compileGlibRegex, GlibRegexError, requiredLiteral, translateGlibRegex } from './glib-regex.js';

describe('translateGlibRegex', () => {
  it.each([
    // [GLib pattern, a string GRegex matches, a string it does not]
    ['Ubuntu 22.04(.\\d\\+?)?(.\\d\\+?)? LTS amd64', 'Ubuntu 22.04.1 LTS amd64', 'Ubuntu 22.04.10 LTS amd64'],
    ['Ubuntu 22.04(.\\d\\+?)?(.\\d\\+?)? LTS amd64', 'Ubuntu 22.04.1+ LTS amd64', 'Ubuntu 20.04 LTS amd64'],
    ['^("Terminal"|Server|"Desktop\\ Personal")$', '"Desktop Personal"', 'Desktop Personal'],
    ['Asianux Server (7 (?!SP[123])|(4 ?!SP[67])).+', 'Asianux Server 7 x86_64', 'Asianux Server 7 SP2'],
    ['ARCH LINUX <HTTPS?://(WWW.)?ARCHLINUX.ORG>', 'ARCH LINUX <HTTPS://WWW.ARCHLINUX.ORG>', 'ARCH LINUX'],
    [
      'Copyright \\(c\\) 2021 Theo de Raadt, The OpenBSD project',
      'Copyright (c) 2021 Theo de Raadt, The OpenBSD project',
      'Copyright c 2021',
    ],
    ['GUIX_X86_64-LINUX_\\w{7}', 'GUIX_X86_64-LINUX_1a2b3c4', 'GUIX_X86_64-LINUX_1a2'],
    ['\\D+-3-1-\\d+', 'Endless-3-1-7', '3-3-1-7'],
  ])('%s matches as GRegex would', (pattern, yes, no) => {
    const regex = compileGlibRegex(pattern);
    expect(regex.test(yes), yes).toBe(true);
    expect(regex.test(no), no).toBe(false);
  });

  it('translates what PCRE has and JavaScript spells differently', () => {
    expect(translateGlibRegex('\\Afoo\\Z')).toEqual({ source: '^foo$', flags: '' });
    expect(translateGlibRegex('(?i)debian')).toEqual({ source: 'debian', flags: 'i' });
    expect(translateGlibRegex('[[:digit:]]+[[:alpha:]_]')).toEqual({ source: '[0-9]+[A-Za-z_]', flags: '' });
    expect(translateGlibRegex('(?P<major>\\d+)\\.(?P=major)').source).toBe('(?<major>\\d+)\\.\\k<major>');
    expect(translateGlibRegex('a(?#comment)b').source).toBe('ab');
    expect(translateGlibRegex('(?>ab)c').source).toBe('(?:ab)c');
    expect(translateGlibRegex('\\d++x\\++').source).toBe('\\d+x\\++');
    expect(translateGlibRegex('\\Qa.b*\\E!').source).toBe('a\\.b\\*!');
    expect(translateGlibRegex('\\x{41}\\h').source).toBe('\\u0041[ \\t]');
    expect(translateGlibRegex('[]a]').source).toBe('[\\]a]');
    // Identity escapes of non-syntax characters become plain, so strict (u) mode accepts the result.
    expect(() => new RegExp(translateGlibRegex('a\\ b\\"c\\%').source, 'u')).not.toThrow();
  });

  it('refuses what JavaScript cannot express, with GlibRegexError', () => {
    for (const pattern of ['a(?i)b', '(?R)', '(?(1)a|b)', 'a\\Gb', 'a\\Kb', '[[:nonsense:]]', '[abc', 'x\\']) {
      expect(() => compileGlibRegex(pattern), pattern).toThrow(GlibRegexError);
    }
  });
});

describe('requiredLiteral', () => {
  it.each([
    ['Ubuntu-Server 22\\.04(\\.\\d\\+?)? LTS amd64', 'Ubuntu-Server 22.04'],
    ['^Rocky-9-([0-9]|[1-9][0-9])-x86_64-dvd$', '-x86_64-dvd'],
    ['Debian 6\\.0\\.1?\\d amd64 1', 'Debian 6.0.'],
    ['CESE_X64FREE_', 'CESE_X64FREE_'],
    ['ab+cdef', 'cdef'],
    ['x{0,3}yz', 'yz'],
  ])('of %s is %s', (source, literal) => {
    expect(requiredLiteral(source)).toBe(literal);
  });

  it('is null when any literal could be skipped', () => {
    for (const source of ['(a|b)c', 'foo|bar', '^(J_)?(CCSN?A|C?CCOMA)_', '\\x41bc', 'a.b.c']) {
      expect(requiredLiteral(source), source).toBeNull();
    }
    expect(requiredLiteral('debian', 'i')).toBeNull();
  });
});
