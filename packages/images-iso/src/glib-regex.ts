/**
 * Translates a GLib regular expression (GRegex, which is PCRE) into a JavaScript RegExp.
 *
 * osinfo-db writes its ISO volume-id, system-id, publisher-id and application-id patterns for
 * GRegex. Most of PCRE is JavaScript too; what differs, and what this translation does:
 *
 * - Identity escapes of characters that are not regex syntax (`\ `, `\"`, `\%`) become the plain
 *   character, so the result also compiles in JavaScript's strict (`u`) mode. Escaped syntax
 *   characters (`\+`, `\.`, `\(`) stay escaped: in osinfo-db `\d\+?` means a digit and an optional
 *   literal '+', exactly as GRegex reads it.
 * - `\A` → `^`, `\Z` and `\z` → `$` (volume ids hold no newlines), `\h` → `[ \t]`, `\e` and `\a` →
 *   their control characters, `\x{HHHH}` → `\uHHHH`, `\Q…\E` → the quoted text escaped.
 * - POSIX classes inside brackets (`[[:digit:]]`, `[[:alpha:]_]`, …) → their ASCII ranges.
 * - `(?P<name>…)` → `(?<name>…)`, `(?P=name)` → `\k<name>`, `(?#comment)` removed.
 * - A leading `(?i)` (and other leading flag groups of i, m, s) → the RegExp's own flags.
 * - Atomic groups `(?>…)` and possessive quantifiers (`*+`, `++`, `?+`, `{n}+`) become their plain
 *   counterparts: they match the same strings except in contrived patterns (none in osinfo-db).
 *
 * What JavaScript cannot express (mid-pattern flag changes, recursion, conditionals, `\G`, `\K`,
 * callouts, backtracking verbs) throws GlibRegexError; the loader then skips that one pattern.
 */

export class GlibRegexError extends Error {
  override readonly name = 'GlibRegexError';
}

const SYNTAX = new Set(['^', '$', '\\', '.', '*', '+', '?', '(', ')', '[', ']', '{', '}', '|', '/', '-']);
/** Escapes that mean the same in PCRE and JavaScript. */
const SHARED_ESCAPES = new Set(['d', 'D', 'w', 'W', 's', 'S', 'b', 'B', 'n', 'r', 't', 'f', 'v', '0']);

const POSIX_CLASSES: Record<string, string> = {
  alpha: 'A-Za-z',
  digit: '0-9',
  alnum: 'A-Za-z0-9',
  upper: 'A-Z',
  lower: 'a-z',
  space: ' \\t\\n\\r\\f\\v',
  blank: ' \\t',
  punct: '!-\\/:-@\\[-`{-~',
  xdigit: '0-9A-Fa-f',
  word: 'A-Za-z0-9_',
  cntrl: '\\x00-\\x1f\\x7f',
  print: ' -~',
  graph: '!-~',
};

const escapeLiteral = (text: string): string => text.replace(/[\\^$.*+?()[\]{}|/-]/g, '\\$&');

export interface TranslatedRegex {
  source: string;
  flags: string;
}

/** The JavaScript source and flags of a GLib pattern; GlibRegexError when it has no equivalent. */
export function translateGlibRegex(pattern: string): TranslatedRegex {
  let flags = '';
  let rest = pattern;
  // Leading inline flags apply to the whole pattern; JavaScript carries them as RegExp flags.
  for (let match = /^\(\?([imsx]+)\)/.exec(rest); match; match = /^\(\?([imsx]+)\)/.exec(rest)) {
    const group = match[1] as string;
    if (group.includes('x')) throw new GlibRegexError(`extended mode (?x) is not supported: ${pattern}`);
    for (const flag of group) if (!flags.includes(flag)) flags += flag;
    rest = rest.slice(match[0].length);
  }

  let out = '';
  let inClass = false;
  /** The last thing written was an unescaped quantifier, so a '+' now makes it possessive. */
  let afterQuantifier = false;
  let i = 0;
  const unsupported = (what: string): never => {
    throw new GlibRegexError(`${what} has no JavaScript equivalent, in ${JSON.stringify(pattern)}`);
  };

  while (i < rest.length) {
    const c = rest[i] as string;
    const quantified: boolean = afterQuantifier;
    afterQuantifier = false;
    if (c === '\\') {
      const next = rest[i + 1];
      if (next === undefined) unsupported('a trailing backslash');
      const n = next as string;
      if (n === 'Q') {
        const end = rest.indexOf('\\E', i + 2);
        const literal = rest.slice(i + 2, end === -1 ? undefined : end);
        out += escapeLiteral(literal);
        i = end === -1 ? rest.length : end + 2;
        continue;
      }
      if (n === 'x' && rest[i + 2] === '{') {
        const close = rest.indexOf('}', i + 3);
        const code = Number.parseInt(rest.slice(i + 3, close), 16);
        if (close === -1 || Number.isNaN(code) || code > 0xffff) unsupported('\\x{…} beyond U+FFFF');
        out += `\\u${code.toString(16).padStart(4, '0')}`;
        i = close + 1;
        continue;
      }
      i += 2;
      if (SHARED_ESCAPES.has(n) || /[1-9]/.test(n)) out += `\\${n}`;
      else if (n === 'x' || n === 'u' || n === 'c') {
        out += `\\${n}`; // \xHH; the following hex digits are copied as they come
      } else if (n === 'A') out += inClass ? 'A' : '^';
      else if (n === 'Z' || n === 'z') out += inClass ? n : '$';
      else if (n === 'h') out += inClass ? ' \\t' : '[ \\t]';
      else if (n === 'e') out += '\\x1b';
      else if (n === 'a') out += '\\x07';
      else if (n === 'k' && rest[i] === '<') out += '\\k';
      else if (/[A-Za-z]/.test(n)) unsupported(`the escape \\${n}`);
      else out += SYNTAX.has(n) ? `\\${n}` : n;
      continue;
    }

    if (inClass) {
      if (c === '[' && rest[i + 1] === ':') {
        const close = rest.indexOf(':]', i + 2);
        const name = close === -1 ? '' : rest.slice(i + 2, close);
        const negated = name.startsWith('^');
        const ranges = POSIX_CLASSES[negated ? name.slice(1) : name];
        if (!ranges || negated) unsupported(`the POSIX class [:${name}:]`);
        out += ranges;
        i = close + 2;
        continue;
      }
      if (c === ']') inClass = false;
      out += c === '[' || c === '/' ? `\\${c}` : c;
      i += 1;
      continue;
    }

    if (c === '[') {
      inClass = true;
      out += '[';
      i += 1;
      // A ']' first in a class (after an optional '^') is a literal in PCRE, an empty class in JavaScript.
      if (rest[i] === '^') {
        out += '^';
        i += 1;
      }
      if (rest[i] === ']') {
        out += '\\]';
        i += 1;
      }
      continue;
    }

    if (c === '(' && rest[i + 1] === '?') {
      const head = rest.slice(i + 2, i + 4);
      if (head.startsWith('#')) {
        const close = rest.indexOf(')', i);
        i = close === -1 ? rest.length : close + 1;
        continue;
      }
      if (head.startsWith('>')) {
        out += '(?:';
        i += 3;
        continue;
      }
      if (head === 'P<') {
        out += '(?<';
        i += 4;
        continue;
      }
      if (head === 'P=') {
        const close = rest.indexOf(')', i);
        out += `\\k<${rest.slice(i + 4, close)}>`;
        i = close + 1;
        continue;
      }
      if (/^[:=!]|^<[=!]|^<[A-Za-z]/.test(head)) {
        out += '(?';
        i += 2;
        continue;
      }
      unsupported(`the group (?${head}…`);
    }

    if (c === '+' && quantified) {
      // Possessive quantifier: drop the '+' (see the note above).
      i += 1;
      continue;
    }
    if (c === '*' || c === '+' || c === '?') afterQuantifier = !quantified;
    else if (c === '}' && /\{\d+(,\d*)?$/.test(out)) afterQuantifier = true;
    out += c === '/' ? '\\/' : c;
    i += 1;
  }
  if (inClass) unsupported('an unterminated character class');
  return { source: out, flags };
}

/** Compiles a GLib pattern; GlibRegexError when it cannot be translated or does not compile. */
export function compileGlibRegex(pattern: string): RegExp {
  const { source, flags } = translateGlibRegex(pattern);
  try {
    return new RegExp(source, flags);
  } catch (error) {
    throw new GlibRegexError(`${JSON.stringify(pattern)} does not compile: ${(error as Error).message}`);
  }
}

/**
 * The longest run of literal text every match of a (translated, JavaScript) pattern must contain,
 * or null when there is none worth checking. Matching 2,000 osinfo-db patterns against one label
 * is mostly patterns that cannot match; `label.includes(literal)` rules those out far cheaper
 * than running them. Conservative: a top-level alternation, the `i` flag, or anything it does
 * not understand gives null, which means "always run the pattern".
 */
export function requiredLiteral(source: string, flags = ''): string | null {
  if (flags.includes('i')) return null;
  let longest = '';
  let run = '';
  const endRun = () => {
    if (run.length > longest.length) longest = run;
    run = '';
  };
  /** Index just past the group or class that starts at `start`, or -1 when unbalanced. */
  const skipBracketed = (start: number): number => {
    let depth = 0;
    let inClass = false;
    for (let j = start; j < source.length; j++) {
      const c = source[j];
      if (c === '\\') {
        j += 1;
      } else if (inClass) {
        if (c === ']') {
          inClass = false;
          if (depth === 0) return j + 1;
        }
      } else if (c === '[') {
        inClass = true;
      } else if (c === '(') {
        depth += 1;
      } else if (c === ')') {
        depth -= 1;
        if (depth === 0) return j + 1;
      }
    }
    return -1;
  };
  /** Skips a quantifier at `j`; returns [index after it, whether it allows zero repetitions]. */
  const quantifier = (j: number): [number, boolean] | null => {
    const c = source[j];
    if (c === '?' || c === '*') return [source[j + 1] === '?' ? j + 2 : j + 1, true];
    if (c === '+') return [source[j + 1] === '?' ? j + 2 : j + 1, false];
    if (c === '{') {
      const m = /^\{(\d+)(,\d*)?\}\??/.exec(source.slice(j));
      if (m) return [j + m[0].length, Number(m[1]) === 0];
    }
    return null;
  };

  let i = 0;
  while (i < source.length) {
    const c = source[i] as string;
    if (c === '|') return null;
    if (c === '(' || c === '[') {
      endRun();
      const after = skipBracketed(i);
      if (after === -1) return null;
      i = quantifier(after)?.[0] ?? after;
      continue;
    }
    let literal: string | null = null;
    let next = i + 1;
    if (c === '\\') {
      const e = source[i + 1] ?? '';
      next = i + 2;
      if (/[\\^$.*+?()[\]{}|/-]/.test(e)) literal = e;
      else if (/[dDwWsSbB]/.test(e)) literal = null;
      else return null; // \x, \u, \k, back-references: not worth understanding here
    } else if (c === '.' || c === '^' || c === '$') {
      literal = null;
    } else if (c === '*' || c === '+' || c === '?' || c === '{' || c === ')' || c === ']') {
      return null; // a quantifier with nothing to quantify, or stray syntax: give up
    } else {
      literal = c;
    }
    const q = quantifier(next);
    if (literal === null) {
      endRun();
      i = q?.[0] ?? next;
      continue;
    }
    if (q) {
      // An optional character ends the run before it; a repeated one ends it after one copy.
      if (!q[1]) run += literal;
      endRun();
      i = q[0];
      continue;
    }
    run += literal;
    i = next;
  }
  endRun();
  return longest.length >= 2 ? longest : null;
}
