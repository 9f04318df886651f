import { z } from 'zod';
import { ErrorCode, QuantixError } from '../errors.js';

/** Ids are opaque strings: UUIDs by default, or a caller-chosen slug. */
export const idSchema = z
  .string()
  .min(1, 'must not be empty')
  .max(128)
  .regex(/^[A-Za-z0-9][A-Za-z0-9._:-]*$/, 'may contain only letters, digits and . _ : -');

/**
 * Characters no name may hold: controls (C0 U+0000–U+001F, DEL, C1 U+0080–U+009F), the bidirectional
 * formatting characters (U+061C, U+200E–U+200F, U+202A–U+202E, U+2066–U+2069) and the line and
 * paragraph separators. They make one name look like another (U+202E shows `gpj.exe` as `exe.jpg`),
 * break log lines and terminals, and have no place in a name a person reads.
 */
const UNSAFE_NAME_CHARACTER = /[\p{Cc}\p{Bidi_Control}\u2028\u2029]/u;

/** Whether `text` holds a character that no name may hold (see UNSAFE_NAME_CHARACTER). */
export function hasUnsafeNameCharacter(text: string): boolean {
  return UNSAFE_NAME_CHARACTER.test(text);
}

/** `text` with every character no name may hold replaced by U+FFFD, for names taken from files. */
export function replaceUnsafeNameCharacters(text: string): string {
  return text.replace(new RegExp(UNSAFE_NAME_CHARACTER.source, 'gu'), '\uFFFD');
}

export const UNSAFE_NAME_MESSAGE = 'must not contain control or bidirectional formatting characters (such as U+202E)';

export const nameSchema = z
  .string()
  .trim()
  .min(1, 'must not be empty')
  .max(200, 'must be at most 200 characters')
  .refine((text) => !hasUnsafeNameCharacter(text), UNSAFE_NAME_MESSAGE);

export const labelKeySchema = z
  .string()
  .min(1)
  .max(128)
  .refine((text) => !hasUnsafeNameCharacter(text), UNSAFE_NAME_MESSAGE);

export const labelsSchema = z.record(labelKeySchema, z.string().max(512));

export const byteCountSchema = z.number().int('must be a whole number').nonnegative('must not be negative');

/** Parses `input` with `schema`, turning a failure into INVALID_INPUT that lists every issue. */
export function parseOrThrow<T>(schema: z.ZodType<T>, input: unknown, what: string): T {
  const result = schema.safeParse(input);
  if (result.success) return result.data;
  const issues = result.error.issues.map((issue) => ({
    path: issue.path.map(String).join('.') || '(root)',
    message: issue.message,
  }));
  const summary = issues.map((i) => `${i.path}: ${i.message}`).join('; ');
  throw new QuantixError(ErrorCode.INVALID_INPUT, `Invalid ${what}: ${summary}`, { details: { issues } });
}
