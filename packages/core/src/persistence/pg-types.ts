/**
 * How values read from PostgreSQL become JavaScript values: `pg`'s own parsers, but for
 * `timestamptz`. `pg` parses each timestamp with a regular expression and builds the Date from
 * its groups (~1.1–1.5 µs and a match array per value); a page of 50 images holds 150 of them.
 * Reading the digits where PostgreSQL's ISO output puts them takes ~0.2–0.3 µs and allocates
 * nothing but the Date. Any other form (a year before 100 or after 9999, BC, infinity, an offset
 * with seconds) goes to `pg`'s parser, so the values are the same either way.
 */

/** PostgreSQL's type id of `timestamp with time zone`. */
const TIMESTAMPTZ_OID = 1184;

type ValueParser = (value: string) => unknown;
/** pg's `types.getTypeParser`. */
type PgTypeParser = (oid: number, format?: 'text' | 'binary') => ValueParser;

/** Two decimal digits of `text` at `at`. */
function twoDigits(text: string, at: number): number {
  return (text.charCodeAt(at) - 48) * 10 + text.charCodeAt(at + 1) - 48;
}

/**
 * A `timestamptz` in PostgreSQL's ISO output (`2026-12-05 04:11:12.123456+00`, offsets `±hh` or
 * `±hh:mm`) read digit by digit; undefined for any other form. Milliseconds are cut, not
 * rounded, as `pg` does.
 */
export function parseIsoTimestamptz(text: string): Date | undefined {
  const length = text.length;
  // 'YYYY-MM-DD HH:MM:SS' then an optional fraction, then the offset.
  if (length < 22 || text.charCodeAt(4) !== 45 || text.charCodeAt(10) !== 32 || text.charCodeAt(16) !== 58) {
    return undefined;
  }
  let at = 19;
  let millis = 0;
  if (text.charCodeAt(at) === 46) {
    let scale = 100;
    at++;
    for (let code = text.charCodeAt(at); code >= 48 && code <= 57; code = text.charCodeAt(++at)) {
      millis += (code - 48) * scale;
      scale /= 10;
    }
  }
  const sign = text.charCodeAt(at);
  const offsetLength = length - at;
  if ((sign !== 43 && sign !== 45) || (offsetLength !== 3 && offsetLength !== 6)) return undefined;
  const offsetMinutes =
    (sign === 45 ? -1 : 1) * (twoDigits(text, at + 1) * 60 + (offsetLength === 6 ? twoDigits(text, at + 4) : 0));
  const year = twoDigits(text, 0) * 100 + twoDigits(text, 2);
  // Date.UTC reads years 0–99 as 1900–1999.
  if (year < 100) return undefined;
  const utc = Date.UTC(
    year,
    twoDigits(text, 5) - 1,
    twoDigits(text, 8),
    twoDigits(text, 11),
    twoDigits(text, 14),
    twoDigits(text, 17),
    Math.trunc(millis),
  );
  return Number.isNaN(utc) ? undefined : new Date(utc - offsetMinutes * 60_000);
}

/**
 * The `types` option of a `pg` client: `fallback` (pg's `types.getTypeParser`) for every type
 * but text `timestamptz`, which is read by parseIsoTimestamptz first.
 */
export function pgTypesWithFastTimestamps(fallback: PgTypeParser): {
  getTypeParser: (oid: number, format?: string) => ValueParser;
} {
  const timestamptz = fallback(TIMESTAMPTZ_OID, 'text');
  const fastTimestamptz = (value: string) => parseIsoTimestamptz(value) ?? timestamptz(value);
  return {
    getTypeParser: (oid, format) =>
      format === 'binary' ? fallback(oid, 'binary') : oid === TIMESTAMPTZ_OID ? fastTimestamptz : fallback(oid, 'text'),
  };
}
