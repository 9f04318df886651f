import { z } from 'zod';
import { ErrorCode, QuantixError } from '../errors.js';
import { hasUnsafeNameCharacter, UNSAFE_NAME_MESSAGE } from './unsafe-text.js';

export { hasUnsafeNameCharacter, replaceUnsafeNameCharacters, UNSAFE_NAME_MESSAGE } from './unsafe-text.js';

/** Ids are opaque strings: UUIDs by default, or a caller-chosen slug. */
export const idSchema = z
  .string()
  .min(1, 'must not be empty')
  .max(128)
  .regex(/^[A-Za-z0-9][A-Za-z0-9._:-]*$/, 'may contain only letters, digits and . _ : -');

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

/**
 * A label's value: shown in tables and terminals like a name, so it holds none of the characters
 * no name may hold (an ISO's volume id once carried terminal escapes into `images show`).
 */
export const labelValueSchema = z
  .string()
  .max(512)
  .refine((text) => !hasUnsafeNameCharacter(text), UNSAFE_NAME_MESSAGE);

export const labelsSchema = z.record(labelKeySchema, labelValueSchema);

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
