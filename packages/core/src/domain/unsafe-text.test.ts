import { describe, expect, it } from 'vitest';
import { terminalSafe, terminalSafeJson } from './unsafe-text.js';

describe('text for a terminal', () => {
  const hostile = 'EVIL\x1b[2J\x1b]0;pwned\x07 \u202Egpj.exe\x9b1m\x7f';

  it('replaces escapes, bell, C1 controls, DEL and bidi overrides; keeps line feeds and tabs', () => {
    expect(terminalSafe(`${hostile}\n\tnext`)).toBe(
      'EVIL\uFFFD[2J\uFFFD]0;pwned\uFFFD \uFFFDgpj.exe\uFFFD1m\uFFFD\n\tnext',
    );
  });

  it('writes them as \\u escapes in JSON, which still parses to the same value', () => {
    const json = terminalSafeJson(JSON.stringify({ label: hostile }, null, 2));
    expect([...json].filter((c) => c !== '\n' && /[\p{Cc}\p{Bidi_Control}]/u.test(c))).toEqual([]);
    expect(json).toContain('\n  "label"');
    expect(JSON.parse(json)).toEqual({ label: hostile });
  });
});
