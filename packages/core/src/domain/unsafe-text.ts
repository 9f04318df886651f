/**
 * Characters no name may hold: controls (C0 U+0000–U+001F, DEL, C1 U+0080–U+009F), the bidirectional
 * formatting characters (U+061C, U+200E–U+200F, U+202A–U+202E, U+2066–U+2069) and the line and
 * paragraph separators. They make one name look like another (U+202E shows `gpj.exe` as `exe.jpg`),
 * break log lines and terminals (ESC starts the sequences that clear a screen or retitle a window),
 * and have no place in a name a person reads. No zod here: the CLI's light entry loads this.
 */
const UNSAFE_NAME_CHARACTER = /[\p{Cc}\p{Bidi_Control}\u2028\u2029]/u;
/** The same, for replacing every one. */
const UNSAFE_NAME_CHARACTERS = new RegExp(UNSAFE_NAME_CHARACTER.source, 'gu');

/** Whether `text` holds a character that no name may hold (see UNSAFE_NAME_CHARACTER). */
export function hasUnsafeNameCharacter(text: string): boolean {
  return UNSAFE_NAME_CHARACTER.test(text);
}

/** `text` with every character no name may hold replaced by U+FFFD, for names taken from files. */
export function replaceUnsafeNameCharacters(text: string): string {
  return text.replace(UNSAFE_NAME_CHARACTERS, '\uFFFD');
}

/**
 * Labels taken from a file (an ISO's volume id, what a scan found) with every character no name
 * may hold replaced by U+FFFD, in keys and values: such labels are not refused, so one odd file
 * fails no scan or upload, and none reaches a screen as a terminal escape.
 */
export function replaceUnsafeLabelCharacters(labels: Record<string, string>): Record<string, string> {
  return Object.fromEntries(
    Object.entries(labels).map(([key, value]) => [
      replaceUnsafeNameCharacters(key),
      replaceUnsafeNameCharacters(value),
    ]),
  );
}

/**
 * `text` as a terminal may be given it: every character no name may hold replaced by U+FFFD but
 * line feeds and tabs, which lay out what a command prints. For what comes from the API (names,
 * labels, messages of records written before they were checked) on its way to a screen.
 */
export function terminalSafe(text: string): string {
  return text.replace(UNSAFE_NAME_CHARACTERS, (c) => (c === '\n' || c === '\t' ? c : '\uFFFD'));
}

/**
 * JSON text as a terminal may be given it, meaning the same: every character no name may hold
 * written as a `\u` escape. JSON.stringify leaves DEL, C1 controls and bidi overrides raw inside
 * strings; the line feeds that lay out indented JSON are outside strings and stay.
 */
export function terminalSafeJson(json: string): string {
  return json.replace(UNSAFE_NAME_CHARACTERS, (c) =>
    c === '\n' ? c : `\\u${(c.codePointAt(0) ?? 0).toString(16).padStart(4, '0')}`,
  );
}

export const UNSAFE_NAME_MESSAGE = 'must not contain control or bidirectional formatting characters (such as U+202E)';
